#include "model/llama.h"

#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"
#include "model/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <omp.h>

namespace quill {

// ---- weights --------------------------------------------------------------------------------------------------

static gl_tensor weight_2d(const ModelFile & mf, const std::string & name, int64_t ne0, int64_t ne1) {
    const TensorData & t = mf.get(name);
    if (t.ne.size() != 2 || t.ne[0] != ne0 || t.ne[1] != ne1)
        throw_error("%s: tensor '%s' has shape [%lld x %lld], expected [%lld x %lld]", mf.path.c_str(), name.c_str(),
                    (long long) t.ne[0], (long long) (t.ne.size() > 1 ? t.ne[1] : 1), (long long) ne0, (long long) ne1);
    return gl_tensor_make(t.type, ne0, ne1, t.data, t.name.c_str());
}

static const float * vector_f32(const ModelFile & mf, const std::string & name, int64_t n) {
    const TensorData & t = mf.get(name);
    if (t.type != GL_TYPE_F32 || t.n_elements() != n)
        throw_error("%s: tensor '%s' must be an f32 vector of %lld values", mf.path.c_str(), name.c_str(), (long long) n);
    return (const float *) t.data;
}

LlamaModel::LlamaModel(const ModelFile & mf) {
    const Metadata & m = mf.meta;
    const std::string arch = m.get_str("general.architecture", "llama");
    if (arch != "llama") throw_error("%s: architecture '%s' is not supported (quill runs the llama family)", mf.path.c_str(), arch.c_str());
    auto key = [&](const char * k) { return arch + "." + k; };
    hp.n_embd = m.get_int_req(key("embedding_length"));
    hp.n_ff = m.get_int_req(key("feed_forward_length"));
    hp.n_layer = m.get_int_req(key("block_count"));
    hp.n_head = m.get_int_req(key("attention.head_count"));
    hp.n_head_kv = m.get_int(key("attention.head_count_kv"), hp.n_head);
    hp.n_ctx_train = m.get_int(key("context_length"), 2048);
    hp.eps = (float) m.get_float(key("attention.layer_norm_rms_epsilon"), 1e-5);
    hp.rope_base = (float) m.get_float(key("rope.freq_base"), 10000.0);
    const int64_t lim = 1 << 20;
    if (hp.n_embd <= 0 || hp.n_embd > lim || hp.n_ff <= 0 || hp.n_ff > lim || hp.n_layer <= 0 || hp.n_layer > 4096 ||
        hp.n_head <= 0 || hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0 || hp.n_embd % hp.n_head != 0 ||
        hp.n_ctx_train <= 0 || hp.n_ctx_train > (1 << 24))
        throw_error("%s: inconsistent hyper-parameters (embd %lld, ff %lld, layers %lld, heads %lld/%lld, ctx %lld)", mf.path.c_str(),
                    (long long) hp.n_embd, (long long) hp.n_ff, (long long) hp.n_layer, (long long) hp.n_head, (long long) hp.n_head_kv,
                    (long long) hp.n_ctx_train);
    // NaN fails every comparison, so each test is written to pass only for a finite value in range.
    if (!(std::isfinite(hp.eps) && hp.eps > 0.0f && hp.eps < 1.0f))
        throw_error("%s: invalid RMSNorm epsilon %g (%s must be in (0, 1))", mf.path.c_str(), (double) hp.eps,
                    key("attention.layer_norm_rms_epsilon").c_str());
    if (!(std::isfinite(hp.rope_base) && hp.rope_base > 1.0f))
        throw_error("%s: invalid RoPE base %g (%s must be a finite number above 1)", mf.path.c_str(), (double) hp.rope_base,
                    key("rope.freq_base").c_str());
    hp.head_dim = m.get_int(key("attention.key_length"), hp.n_embd / hp.n_head);
    hp.n_rot = m.get_int(key("rope.dimension_count"), hp.head_dim);
    // Bounded before any product (n_head * head_dim with a key_length of 2^62 overflowed, fuzz_gguf) and to what
    // gl_attention takes.
    if (hp.head_dim <= 0 || hp.head_dim > GL_ATTENTION_MAX_HEAD_DIM || hp.n_rot <= 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0 ||
        hp.n_head * hp.head_dim > lim)
        throw_error("%s: invalid head dimension %lld / rope dimensions %lld", mf.path.c_str(), (long long) hp.head_dim, (long long) hp.n_rot);
    const std::string scaling = m.get_str(key("rope.scaling.type"), "none");
    if (scaling == "linear") {
        const double f = m.get_float(key("rope.scaling.factor"), 1.0);
        if (!(std::isfinite(f) && f > 0 && f <= 1e6)) throw_error("%s: invalid rope scaling factor %g", mf.path.c_str(), f);
        hp.rope_freq_scale = (float) (1.0 / f);
    } else if (scaling != "none" && scaling != "") {
        throw_error("%s: rope scaling '%s' is not supported (none, linear)", mf.path.c_str(), scaling.c_str());
    }

    const TensorData & emb = mf.get("token_embd.weight");
    if (emb.ne.size() != 2) throw_error("%s: token_embd.weight must be 2-D", mf.path.c_str());
    hp.n_vocab = emb.ne[1];
    tok_embd = weight_2d(mf, "token_embd.weight", hp.n_embd, hp.n_vocab);
    output_norm = vector_f32(mf, "output_norm.weight", hp.n_embd);
    output = mf.find("output.weight") ? weight_2d(mf, "output.weight", hp.n_embd, hp.n_vocab) : tok_embd;
    if (mf.find("rope_freqs.weight")) {
        rope_freqs = vector_f32(mf, "rope_freqs.weight", hp.n_rot / 2);
        for (int64_t i = 0; i < hp.n_rot / 2; ++i) {
            if (!(std::isfinite(rope_freqs[i]) && rope_freqs[i] > 0.0f))
                throw_error("%s: rope_freqs.weight[%lld] is %g; RoPE frequency factors must be finite and positive", mf.path.c_str(),
                            (long long) i, (double) rope_freqs[i]);
        }
    }

    const int64_t q_dim = hp.n_head * hp.head_dim, kv_dim = hp.kv_dim();
    for (int64_t l = 0; l < hp.n_layer; ++l) {
        auto n = [&](const char * s) { return strfmt("blk.%lld.%s.weight", (long long) l, s); };
        LlamaLayer L;
        L.attn_norm = vector_f32(mf, n("attn_norm"), hp.n_embd);
        L.wq = weight_2d(mf, n("attn_q"), hp.n_embd, q_dim);
        L.wk = weight_2d(mf, n("attn_k"), hp.n_embd, kv_dim);
        L.wv = weight_2d(mf, n("attn_v"), hp.n_embd, kv_dim);
        L.wo = weight_2d(mf, n("attn_output"), q_dim, hp.n_embd);
        L.ffn_norm = vector_f32(mf, n("ffn_norm"), hp.n_embd);
        L.w_gate = weight_2d(mf, n("ffn_gate"), hp.n_embd, hp.n_ff);
        L.w_up = weight_2d(mf, n("ffn_up"), hp.n_embd, hp.n_ff);
        L.w_down = weight_2d(mf, n("ffn_down"), hp.n_ff, hp.n_embd);
        for (const gl_tensor * w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) weight_bytes += gl_tensor_nbytes(*w);
        weight_bytes += 2 * (size_t) hp.n_embd * sizeof(float);
        layers.push_back(L);
    }
    weight_bytes += output.nb1 * (size_t) output.ne1 + tok_embd.nb1 + (size_t) hp.n_embd * sizeof(float);
}

void check_vocab_matches(const Tokenizer & tok, const LlamaModel & model, const std::string & path) {
    if (tok.n_vocab() != model.hp.n_vocab)
        throw_error("%s: the tokenizer has %d tokens but the model's embedding has %lld rows", path.c_str(), tok.n_vocab(),
                    (long long) model.hp.n_vocab);
}

void validate_runnable(const ModelFile & mf) {
    const LlamaModel model(mf);
    const Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    check_vocab_matches(tok, model, mf.path);
}

// ---- context --------------------------------------------------------------------------------------------------

Context::Context(const LlamaModel & model, const ContextParams & params) : model_(model), params_(params) {
    const LlamaHparams & hp = model.hp;
    if (params_.n_ctx <= 0) params_.n_ctx = (int32_t) hp.n_ctx_train;
    if (params_.n_ctx > (1 << 22)) throw_error("context size %d is too large", params_.n_ctx);
    if (params_.n_batch <= 0) params_.n_batch = 512;
    if (params_.n_seq <= 0 || params_.n_seq > 1024) throw_error("invalid number of sequences %d", params_.n_seq);
    kv_.init(hp.n_layer, hp.n_head_kv, hp.head_dim, params_.n_ctx, params_.n_seq, params_.kv_type);
    const size_t B = (size_t) params_.n_batch;
    const int64_t q_dim = hp.n_head * hp.head_dim;
    x_.resize(B * hp.n_embd);
    xb_.resize(B * std::max(hp.n_embd, q_dim));
    q_.resize(B * q_dim);
    k_.resize(B * hp.kv_dim());
    v_.resize(B * hp.kv_dim());
    att_.resize(B * q_dim);
    hb_.resize(B * hp.n_ff);
    hb2_.resize(B * hp.n_ff);
    logits_.resize(B * hp.n_vocab);
    size_t wd = 0;
    for (const LlamaLayer & L : model.layers) {
        for (const gl_tensor * w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) wd = std::max(wd, gl_mul_mat_scratch_size(*w, (int64_t) B));
    }
    wd = std::max(wd, gl_mul_mat_scratch_size(model.output, (int64_t) B));
    wdata_.resize(wd);
    out_rows_.resize(B);
}

void Context::clear_seq(int32_t seq) {
    if (seq < 0 || seq >= kv_.n_seq) throw_error("sequence %d out of range", seq);
    kv_.len[(size_t) seq] = 0;
}

void Context::decode(const Batch & b) {
    const LlamaHparams & hp = model_.hp;
    const int64_t n = (int64_t) b.size();
    if (n == 0) return;
    if (n > params_.n_batch) throw_error("batch of %lld tokens exceeds n_batch %d", (long long) n, params_.n_batch);
    if (b.pos.size() != b.token.size() || b.seq.size() != b.token.size() || b.want_logits.size() != b.token.size())
        throw_error("malformed batch");
    // Validate everything before touching the cache, so a bad batch changes nothing.
    std::vector<int32_t> & len = kv_.len;
    std::vector<int32_t> & new_len = new_len_;  // sized once; no allocation per decode
    new_len = len;
    for (int64_t t = 0; t < n; ++t) {
        if (b.token[t] < 0 || b.token[t] >= hp.n_vocab) throw_error("token id %d out of range (vocabulary of %lld)", b.token[t], (long long) hp.n_vocab);
        if (b.seq[t] < 0 || b.seq[t] >= kv_.n_seq) throw_error("sequence %d out of range (%d sequences)", b.seq[t], kv_.n_seq);
        if (b.pos[t] < 0 || b.pos[t] >= kv_.n_ctx) throw_error("position %d is past the context size %d", b.pos[t], kv_.n_ctx);
        int32_t & L = new_len[(size_t) b.seq[t]];
        if (b.pos[t] > L) throw_error("position %d of sequence %d leaves a gap (sequence has %d positions)", b.pos[t], b.seq[t], L);
        L = std::max(L, b.pos[t] + 1);
    }

    const int64_t E = hp.n_embd, q_dim = hp.n_head * hp.head_dim, kv_dim = hp.kv_dim(), F = hp.n_ff;
    for (int64_t t = 0; t < n; ++t) gl_get_row(model_.tok_embd, b.token[t], &x_[t * E]);
    const float kq_scale = 1.0f / sqrtf((float) hp.head_dim);
    const gl_from_float_fn kv_store = gl_kernels(kv_.type).quantize_act;  // the dispatched converter
    // Attention scratch per thread, sized from the threads the parallel loop below will run (the count may have
    // changed since the Context was built: quill bench sets it afterwards); grows once, not per token.
    const int att_threads = omp_get_max_threads();
    const size_t att_per_thread = (size_t) (kv_.n_ctx + hp.head_dim);
    if (att_scratch_.size() < (size_t) att_threads * att_per_thread) att_scratch_.resize((size_t) att_threads * att_per_thread);

    for (int64_t l = 0; l < hp.n_layer; ++l) {
        const LlamaLayer & L = model_.layers[(size_t) l];
        for (int64_t t = 0; t < n; ++t) gl_rms_norm(&x_[t * E], L.attn_norm, E, hp.eps, &xb_[t * E]);
        gl_mul_mat(L.wq, xb_.data(), n, q_.data(), wdata_.data());
        gl_mul_mat(L.wk, xb_.data(), n, k_.data(), wdata_.data());
        gl_mul_mat(L.wv, xb_.data(), n, v_.data(), wdata_.data());
        for (int64_t t = 0; t < n; ++t) {
            gl_rope(&q_[t * q_dim], hp.n_head, hp.head_dim, hp.n_rot, b.pos[t], hp.rope_base, hp.rope_freq_scale, model_.rope_freqs, GL_ROPE_NORM);
            gl_rope(&k_[t * kv_dim], hp.n_head_kv, hp.head_dim, hp.n_rot, b.pos[t], hp.rope_base, hp.rope_freq_scale, model_.rope_freqs, GL_ROPE_NORM);
            kv_store(&k_[t * kv_dim], kv_.k_row(l, b.seq[t], b.pos[t]), kv_dim);
            kv_store(&v_[t * kv_dim], kv_.v_row(l, b.seq[t], b.pos[t]), kv_dim);
        }
#pragma omp parallel for schedule(dynamic) if (n > 1)
        for (int64_t t = 0; t < n; ++t) {
            const int tid = omp_get_thread_num();
            GL_ASSERT(tid < att_threads);
            float * scratch = &att_scratch_[(size_t) tid * att_per_thread];
            gl_attention(&q_[t * q_dim], hp.n_head, hp.n_head_kv, hp.head_dim, kv_.k_view(l, b.seq[t]), kv_.v_view(l, b.seq[t]),
                         b.pos[t] + 1, kq_scale, &att_[t * q_dim], scratch);
        }
        gl_mul_mat(L.wo, att_.data(), n, xb_.data(), wdata_.data());
        for (int64_t i = 0; i < n * E; ++i) x_[i] += xb_[i];

        for (int64_t t = 0; t < n; ++t) gl_rms_norm(&x_[t * E], L.ffn_norm, E, hp.eps, &xb_[t * E]);
        gl_mul_mat(L.w_gate, xb_.data(), n, hb_.data(), wdata_.data());
        gl_mul_mat(L.w_up, xb_.data(), n, hb2_.data(), wdata_.data());
        for (int64_t i = 0; i < n * F; ++i) hb_[i] = gl_silu(hb_[i]) * hb2_[i];
        gl_mul_mat(L.w_down, hb_.data(), n, xb_.data(), wdata_.data());
        for (int64_t i = 0; i < n * E; ++i) x_[i] += xb_[i];
    }
    len.swap(new_len);

    // Final norm and output projection for the tokens that asked for logits, gathered into consecutive rows.
    n_out_ = 0;
    for (int64_t t = 0; t < n; ++t) {
        if (!b.want_logits[t]) continue;
        gl_rms_norm(&x_[t * E], model_.output_norm, E, hp.eps, &xb_[n_out_ * E]);
        ++n_out_;
    }
    if (n_out_ > 0) gl_mul_mat(model_.output, xb_.data(), (int64_t) n_out_, logits_.data(), wdata_.data());
}

}  // namespace quill
