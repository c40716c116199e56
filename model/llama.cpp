#include "model/llama.h"

#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"
#include "model/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace quill {

// ---- weights --------------------------------------------------------------------------------------------------

static gl_tensor weight_2d(const ModelFile & mf, const std::string & name, int64_t ne0, int64_t ne1) {
    const TensorData & t = mf.get(name);
    if (t.ne.size() != 2 || t.ne[0] != ne0 || t.ne[1] != ne1)
        throw_error("%s: tensor '%s' has shape [%lld x %lld], expected [%lld x %lld]", mf.path.c_str(), name.c_str(),
                    (long long) t.ne[0], (long long) (t.ne.size() > 1 ? t.ne[1] : 1), (long long) ne0, (long long) ne1);
    return gl_tensor_make(t.type, ne0, ne1, t.data, t.name.c_str());
}

// The static activation grid of a linear (formats/SPEC.md: "<weight>.input_scale"), when the file has one.
static void read_input_scale(const ModelFile & mf, const std::string & weight, gl_tensor & w) {
    const std::string name = input_scale_name(weight);
    const TensorData * t = mf.find(name);
    if (!t) return;
    if (t->type != GL_TYPE_F32 || t->ne.size() != 1 || t->ne[0] != 2)
        throw_error("%s: tensor '%s' must be an f32 vector of 2 values (activation scale, zero point)", mf.path.c_str(), name.c_str());
    if (gl_get_type_traits(w.type)->vec_dot_type != GL_TYPE_A8_ROW)
        throw_error("%s: tensor '%s' is a static int8 activation grid, but '%s' has type %s, whose activations are not a8_row",
                    mf.path.c_str(), name.c_str(), weight.c_str(), gl_type_name(w.type));
    float v[2];
    memcpy(v, t->data, sizeof v);
    // NaN fails every comparison: each test passes only for a finite value in range.
    if (!(v[0] > 0.0f && v[0] <= 1e30f) || !(v[1] >= -128.0f && v[1] <= 127.0f && v[1] == std::floor(v[1])))
        throw_error("%s: tensor '%s' holds scale %g and zero point %g; the scale must be in (0, 1e30] and the zero point an "
                    "integer in -128 .. 127", mf.path.c_str(), name.c_str(), (double) v[0], (double) v[1]);
    w.act_s = v[0];
    w.act_z = (int32_t) v[1];
}

// Vectors (norms, biases, RoPE factors) are read as f32; files that store them as f16/bf16 (HF checkpoints, some
// GGUFs) get a widened copy the model owns.
const float * LlamaModel::vector_f32(const ModelFile & mf, const std::string & name, int64_t n) {
    const TensorData & t = mf.get(name);
    if (t.n_elements() != n || t.ne.size() != 1)
        throw_error("%s: tensor '%s' must be a vector of %lld values", mf.path.c_str(), name.c_str(), (long long) n);
    if (t.type == GL_TYPE_F32) return (const float *) t.data;
    if (t.type != GL_TYPE_F16 && t.type != GL_TYPE_BF16)
        throw_error("%s: tensor '%s' has type %s; vectors must be f32, f16 or bf16", mf.path.c_str(), name.c_str(), gl_type_name(t.type));
    auto buf = std::make_shared<std::vector<float>>((size_t) n);
    gl_get_type_traits(t.type)->to_float(t.data, buf->data(), n);
    widened_.push_back(buf);
    return buf->data();
}

LlamaModel::LlamaModel(const ModelFile & mf, bool x16) {
    const Metadata & m = mf.meta;
    const std::string arch = m.get_str("general.architecture", "llama");
    hp.arch = arch_find(arch);
    if (!hp.arch)
        throw_error("%s: architecture '%s' is not supported (quill runs %s)", mf.path.c_str(), arch.c_str(), arch_names().c_str());
    const Arch & A = *hp.arch;
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
        hp.n_head <= 0 || hp.n_head_kv <= 0 || hp.n_head % hp.n_head_kv != 0 || hp.n_head > lim ||
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
    if (!m.has(key("attention.key_length")) && hp.n_embd % hp.n_head != 0)
        throw_error("%s: embedding length %lld is not a multiple of the head count %lld", mf.path.c_str(), (long long) hp.n_embd,
                    (long long) hp.n_head);
    hp.head_dim = m.get_int(key("attention.key_length"), hp.n_embd / hp.n_head);
    const int64_t v_dim = m.get_int(key("attention.value_length"), hp.head_dim);
    hp.n_rot = m.get_int(key("rope.dimension_count"), hp.head_dim);
    // Bounded before any product (n_head * head_dim with a key_length of 2^62 overflowed, fuzz_gguf) and to what
    // gl_attention takes.
    if (hp.head_dim <= 0 || hp.head_dim > GL_ATTENTION_MAX_HEAD_DIM || hp.n_rot <= 0 || hp.n_rot > hp.head_dim || hp.n_rot % 2 != 0 ||
        hp.n_head * hp.head_dim > lim)
        throw_error("%s: invalid head dimension %lld / rope dimensions %lld", mf.path.c_str(), (long long) hp.head_dim, (long long) hp.n_rot);
    if (v_dim != hp.head_dim)
        throw_error("%s: value head size %lld differs from the key head size %lld, which quill does not support", mf.path.c_str(),
                    (long long) v_dim, (long long) hp.head_dim);
    const std::string scaling = m.get_str(key("rope.scaling.type"), "none");
    if (scaling == "linear") {
        const double f = m.get_float(key("rope.scaling.factor"), 1.0);
        if (!(std::isfinite(f) && f > 0 && f <= 1e6)) throw_error("%s: invalid rope scaling factor %g", mf.path.c_str(), f);
        hp.rope_freq_scale = (float) (1.0 / f);
    } else if (scaling != "none" && scaling != "") {
        throw_error("%s: rope scaling '%s' is not supported (none, linear)", mf.path.c_str(), scaling.c_str());
    }
    hp.rope_mode = A.rope == RopeStyle::HALVES ? GL_ROPE_NEOX : GL_ROPE_NORM;
    if (A.embd_scale) hp.embd_scale = sqrtf((float) hp.n_embd);
    hp.logit_softcap = (float) m.get_float(key("final_logit_softcapping"), 0.0);
    if (!(std::isfinite(hp.logit_softcap) && hp.logit_softcap >= 0.0f))
        throw_error("%s: invalid %s %g", mf.path.c_str(), key("final_logit_softcapping").c_str(), (double) hp.logit_softcap);
    // Sliding-window layers (Gemma 3): the window, which layers are global, and their RoPE base.
    int64_t swa_pattern = 0;
    float swa_base = hp.rope_base;
    if (A.swa_pattern > 0) {
        hp.n_swa = m.get_int(key("attention.sliding_window"), 0);
        swa_pattern = m.get_int(key("attention.sliding_window_pattern"), A.swa_pattern);
        swa_base = (float) m.get_float(key("rope.freq_base_swa"), A.swa_rope_base > 0 ? A.swa_rope_base : hp.rope_base);
        if (hp.n_swa < 0 || hp.n_swa > (1 << 24) || swa_pattern < 1 || swa_pattern > 4096)
            throw_error("%s: invalid sliding window %lld / pattern %lld", mf.path.c_str(), (long long) hp.n_swa, (long long) swa_pattern);
        if (!(std::isfinite(swa_base) && swa_base > 1.0f))
            throw_error("%s: invalid sliding-window RoPE base %g", mf.path.c_str(), (double) swa_base);
    }

    const TensorData & emb = mf.get(k_tensor_token_embd);
    if (emb.ne.size() != 2) throw_error("%s: %s must be 2-D", mf.path.c_str(), k_tensor_token_embd);
    hp.n_vocab = emb.ne[1];
    tok_embd = weight_2d(mf, k_tensor_token_embd, hp.n_embd, hp.n_vocab);
    output_norm = vector_f32(mf, k_tensor_output_norm, hp.n_embd);
    output = mf.find(k_tensor_output) ? weight_2d(mf, k_tensor_output, hp.n_embd, hp.n_vocab) : tok_embd;
    if (mf.find(k_tensor_rope_freqs)) {
        rope_freqs = vector_f32(mf, k_tensor_rope_freqs, hp.n_rot / 2);
        for (int64_t i = 0; i < hp.n_rot / 2; ++i) {
            if (!(std::isfinite(rope_freqs[i]) && rope_freqs[i] > 0.0f))
                throw_error("%s: rope_freqs.weight[%lld] is %g; RoPE frequency factors must be finite and positive", mf.path.c_str(),
                            (long long) i, (double) rope_freqs[i]);
        }
    }

    const BlockDims dims{hp.n_embd, hp.n_ff, hp.n_head, hp.n_head_kv, hp.head_dim};
    for (int64_t l = 0; l < hp.n_layer; ++l) {
        LlamaLayer L;
        for (const ArchLayerTensor & at : A.layer) {
            const std::string name = layer_tensor_name(l, at.role);
            const std::vector<int64_t> ne = layer_tensor_shape(at.role, dims);
            if (gl_tensor * w = L.linear(at.role)) {
                *w = weight_2d(mf, name, ne[0], ne[1]);
                read_input_scale(mf, name, *w);
                weight_bytes += gl_tensor_nbytes(*w);
                continue;
            }
            const float * vec = vector_f32(mf, name, ne[0]);
            weight_bytes += (size_t) ne[0] * sizeof(float);
            switch (at.role) {
                case LayerTensor::ATTN_NORM: L.attn_norm = vec; break;
                case LayerTensor::ATTN_Q_BIAS: L.bq = vec; break;
                case LayerTensor::ATTN_K_BIAS: L.bk = vec; break;
                case LayerTensor::ATTN_V_BIAS: L.bv = vec; break;
                case LayerTensor::ATTN_Q_NORM: L.q_norm = vec; break;
                case LayerTensor::ATTN_K_NORM: L.k_norm = vec; break;
                case LayerTensor::POST_ATTN_NORM: L.post_attn_norm = vec; break;
                case LayerTensor::FFN_NORM: L.ffn_norm = vec; break;
                case LayerTensor::POST_FFW_NORM: L.post_ffw_norm = vec; break;
                default: GL_ASSERT(false);
            }
        }
        GL_ASSERT(L.attn_norm && L.ffn_norm);  // every architecture entry has both
        L.rope_freqs = rope_freqs;
        L.rope_base = hp.rope_base;
        const bool sliding = swa_pattern > 0 && hp.n_swa > 0 && (l + 1) % swa_pattern != 0;
        if (sliding) {
            L.window = hp.n_swa;
            L.rope_base = swa_base;
        }
        layers.push_back(L);
    }
    weight_bytes += output.nb1 * (size_t) output.ne1 + tok_embd.nb1 + (size_t) hp.n_embd * sizeof(float);
    if (x16) {
        for (LlamaLayer & L : layers) {
            for (const ArchLayerTensor & at : A.layer) {
                if (gl_tensor * w = L.linear(at.role)) to_x16(*w);
            }
        }
        if (output.data != tok_embd.data) to_x16(output);
    }
}

void LlamaModel::to_x16(gl_tensor & w) {
    if (w.x16 || !gl_x16_ok(w.type, w.ne0, w.ne1)) return;
    const size_t bytes = gl_tensor_nbytes(w);
    gl_buffer buf(bytes);
    gl_x16_pack(w.type, w.ne0, w.ne1, w.data, buf.data());
    w.data = buf.data();
    w.x16 = true;
    x16_bytes += bytes;
    x16_.push_back(std::move(buf));
}

void LlamaModel::embed(int32_t token, float * out) const {
    gl_get_row(tok_embd, token, out);
    if (hp.embd_scale != 1.0f) gl_scale(out, hp.n_embd, hp.embd_scale);
}

void check_vocab_matches(const Tokenizer & tok, const LlamaModel & model, const std::string & path) {
    if (tok.n_vocab() != model.hp.n_vocab)
        throw_error("%s: the tokenizer has %d tokens but the model's embedding has %lld rows", path.c_str(), tok.n_vocab(),
                    (long long) model.hp.n_vocab);
}

void validate_runnable(const ModelFile & mf) {
    const LlamaModel model(mf, false);
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
    const int64_t B = params_.n_batch;
    size_t wd = gl_mul_mat_scratch_size(model.output, B);  // the output layer shares the blocks' scratch
    for (const LlamaLayer & L : model.layers) wd = std::max(wd, block_wdata_size(L, B));
    scratch_.init(hp, B, params_.n_ctx, wd);
    x_.alloc((size_t) B * (size_t) hp.n_embd * sizeof(float));
    xn_.alloc((size_t) B * (size_t) hp.n_embd * sizeof(float));
    logits_.alloc((size_t) B * (size_t) hp.n_vocab * sizeof(float));
}

void Context::clear_seq(int32_t seq) {
    if (seq < 0 || seq >= kv_.n_seq) throw_error("sequence %d out of range", seq);
    kv_.len[(size_t) seq] = 0;
}

void Context::truncate_seq(int32_t seq, int32_t n) {
    if (seq < 0 || seq >= kv_.n_seq) throw_error("sequence %d out of range", seq);
    if (n < 0) throw_error("cannot keep %d positions of sequence %d", n, seq);
    int32_t & len = kv_.len[(size_t) seq];
    len = std::min(len, n);
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

    const int64_t E = hp.n_embd;
    float * x = x_.f32();
    for (int64_t t = 0; t < n; ++t) model_.embed(b.token[t], x + t * E);
    const BlockBatch bb{n, b.pos.data(), b.seq.data()};
    for (int64_t l = 0; l < hp.n_layer; ++l) block_forward(hp, model_.layers[(size_t) l], bb, kv_, l, x, scratch_);
    len.swap(new_len);

    // Final norm and output projection for the tokens that asked for logits, gathered into consecutive rows.
    n_out_ = 0;
    float * xn = xn_.f32();
    for (int64_t t = 0; t < n; ++t) {
        if (!b.want_logits[t]) continue;
        gl_rms_norm(x + t * E, model_.output_norm, E, hp.eps, xn + n_out_ * E);
        ++n_out_;
    }
    if (n_out_ == 0) return;
    gl_mul_mat(model_.output, xn, (int64_t) n_out_, logits_.f32(), scratch_.wdata());
    if (hp.logit_softcap > 0.0f) gl_softcap(logits_.f32(), (int64_t) n_out_ * hp.n_vocab, hp.logit_softcap);
}

}  // namespace quill
