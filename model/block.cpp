#include "model/block.h"

#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"

#include <algorithm>
#include <cmath>
#include <omp.h>

namespace quill {

// gl_attention_batch's scratch holds at most this many cache rows per task (about 2·head_dim + 64 floats each:
// 10 MiB per thread at head_dim 128); a prompt chunk that sees more rows takes gl_attention token by token.
constexpr int64_t kAttBatchMaxRows = 8192;

gl_tensor * LlamaLayer::linear(LayerTensor role) {
    switch (role) {
        case LayerTensor::ATTN_Q: return &wq;
        case LayerTensor::ATTN_K: return &wk;
        case LayerTensor::ATTN_V: return &wv;
        case LayerTensor::ATTN_OUT: return &wo;
        case LayerTensor::FFN_GATE: return &w_gate;
        case LayerTensor::FFN_UP: return &w_up;
        case LayerTensor::FFN_DOWN: return &w_down;
        default: return nullptr;
    }
}

const char * linear_input_name(LinearInput which) {
    static const char * names[] = {"attn_qkv", "attn_output", "ffn_gate_up", "ffn_down"};
    GL_ASSERT((int) which >= 0 && which < LinearInput::COUNT);
    return names[(int) which];
}

int64_t linear_input_dim(const LlamaHparams & hp, LinearInput which) {
    switch (which) {
        case LinearInput::QKV: return hp.n_embd;
        case LinearInput::ATTN_OUT: return hp.q_dim();
        case LinearInput::GATE_UP: return hp.n_embd;
        case LinearInput::DOWN: return hp.n_ff;
        default: GL_ASSERT(false);
    }
    return 0;
}

size_t block_wdata_size(const LlamaLayer & L, int64_t n_tok) {
    size_t wd = 0;
    for (const gl_tensor * w : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) wd = std::max(wd, gl_mul_mat_scratch_size(*w, n_tok));
    return wd;
}

void BlockScratch::init(const LlamaHparams & hp, int64_t n_batch, int64_t n_ctx, size_t wdata_bytes) {
    GL_ASSERT(n_batch > 0 && n_ctx > 0);
    n_batch_ = n_batch;
    n_ctx_ = n_ctx;
    head_dim_ = hp.head_dim;
    const size_t B = (size_t) n_batch * sizeof(float);
    xb_.alloc(B * (size_t) std::max(hp.n_embd, hp.q_dim()));
    q_.alloc(B * (size_t) hp.q_dim());
    k_.alloc(B * (size_t) hp.kv_dim());
    v_.alloc(B * (size_t) hp.kv_dim());
    att_.alloc(B * (size_t) hp.q_dim());
    hb_.alloc(B * (size_t) hp.n_ff);
    hb2_.alloc(B * (size_t) hp.n_ff);
    wdata_.alloc(wdata_bytes);
    att_threads_ = 0;
    att_scratch_.release();
    // Prompt batches: about 64 queries per task (the group's heads × tokens) share one widening of the head's rows.
    const int64_t group = hp.n_head / hp.n_head_kv;
    att_chunk_ = std::min<int64_t>(64, std::max<int64_t>(4, 64 / group));
    att_tasks_.assign((size_t) (3 * n_batch * hp.n_head_kv), 0);
    att_batched_.assign((size_t) n_batch, 0);
    att_batch_per_ = gl_attention_batch_scratch(std::min<int64_t>(n_ctx, kAttBatchMaxRows), hp.head_dim, att_chunk_ * group);
    att_batch_threads_ = 0;
    att_batch_scratch_.release();
}

float * BlockScratch::att_batch_scratch_for(int threads) {
    if (threads > att_batch_threads_) {
        att_batch_scratch_.alloc((size_t) threads * att_batch_per_ * sizeof(float));
        att_batch_threads_ = threads;
    }
    return att_batch_scratch_.f32();
}

// Attention scratch per thread, for the threads the parallel loop will run (the count may change between calls:
// quill bench sets it after building the Context). Grows when the thread count does, never per token.
float * BlockScratch::att_scratch_for(int threads) {
    if (threads > att_threads_) {
        att_scratch_.alloc((size_t) threads * (size_t) (n_ctx_ + head_dim_) * sizeof(float));
        att_threads_ = threads;
    }
    return att_scratch_.f32();
}

// RMSNorm of each of n rows of `width` values in place, in groups of `group` (per head when group < width).
static void norm_rows(float * x, int64_t n_rows, int64_t width, int64_t group, const float * w, float eps) {
    for (int64_t r = 0; r < n_rows * (width / group); ++r) gl_rms_norm(x + r * group, w, group, eps, x + r * group);
}

void block_forward(const LlamaHparams & hp, const LlamaLayer & L, const BlockBatch & b, KvCache & kv, int64_t kv_layer, float * x,
                   BlockScratch & s, const BlockRecorder * rec) {
    const int64_t n = b.n, E = hp.n_embd, HD = hp.head_dim, q_dim = hp.q_dim(), kv_dim = hp.kv_dim(), F = hp.n_ff;
    GL_ASSERT(n > 0 && n <= s.n_batch_ && HD == s.head_dim_ && kv.n_ctx <= s.n_ctx_);
    float * xb = s.xb_.f32(), * q = s.q_.f32(), * k = s.k_.f32(), * v = s.v_.f32(), * att = s.att_.f32();
    float * hb = s.hb_.f32(), * hb2 = s.hb2_.f32();
    void * wdata = s.wdata_.data();

    // ---- attention
    for (int64_t t = 0; t < n; ++t) gl_rms_norm(x + t * E, L.attn_norm, E, hp.eps, xb + t * E);
    if (rec) (*rec)(LinearInput::QKV, xb, n, E);
    {
        const gl_tensor * w[3] = {&L.wq, &L.wk, &L.wv};
        float * const y[3] = {q, k, v};
        gl_mul_mat_multi(w, y, 3, xb, n, wdata);
    }
    if (L.bq) gl_add_bias(q, L.bq, n, q_dim);
    if (L.bk) gl_add_bias(k, L.bk, n, kv_dim);
    if (L.bv) gl_add_bias(v, L.bv, n, kv_dim);
    if (L.q_norm) norm_rows(q, n, q_dim, HD, L.q_norm, hp.eps);
    if (L.k_norm) norm_rows(k, n, kv_dim, HD, L.k_norm, hp.eps);
    for (int64_t t = 0; t < n; ++t) {
        gl_rope(q + t * q_dim, hp.n_head, HD, hp.n_rot, b.pos[t], L.rope_base, hp.rope_freq_scale, L.rope_freqs, hp.rope_mode);
        gl_rope(k + t * kv_dim, hp.n_head_kv, HD, hp.n_rot, b.pos[t], L.rope_base, hp.rope_freq_scale, L.rope_freqs, hp.rope_mode);
        kv.write(kv_layer, b.seq[t], b.pos[t], k + t * kv_dim, v + t * kv_dim);
    }
    const float kq_scale = 1.0f / sqrtf((float) HD);
    const int att_threads = omp_get_max_threads();
    // Runs of at least kAttBatchMin consecutive positions of one sequence (a prompt) take gl_attention_batch in tasks
    // of att_chunk_ tokens × one KV head; the other tokens (decode steps, short runs) take gl_attention one by one.
    constexpr int64_t kAttBatchMin = 8;
    const int64_t group = hp.n_head / hp.n_head_kv;
    int64_t n_tasks = 0, n_single = n;
    if (n >= kAttBatchMin && gl_attention_batch_ok(kv.type, kv.type, HD)) {
        int64_t * task = s.att_tasks_.data();
        for (int64_t t0 = 0, t1; t0 < n; t0 = t1) {
            for (t1 = t0 + 1; t1 < n && b.seq[t1] == b.seq[t0] && b.pos[t1] == b.pos[t1 - 1] + 1;) ++t1;
            const bool batched = t1 - t0 >= kAttBatchMin;
            for (int64_t t = t0; t < t1; ++t) s.att_batched_[(size_t) t] = batched;
            if (!batched) continue;
            n_single -= t1 - t0;
            for (int64_t c0 = t0; c0 < t1; c0 += s.att_chunk_) {
                const int64_t nt = std::min(s.att_chunk_, t1 - c0), last = b.pos[c0 + nt - 1] + 1;
                const int64_t first = L.window > 0 ? std::max<int64_t>(0, b.pos[c0] + 1 - L.window) : 0;
                if (last - first > kAttBatchMaxRows) {  // past the scratch's rows (long contexts): one by one
                    for (int64_t t = c0; t < c0 + nt; ++t) s.att_batched_[(size_t) t] = 0;
                    n_single += nt;
                    continue;
                }
                for (int64_t h = 0; h < hp.n_head_kv; ++h, ++n_tasks) {
                    task[3 * n_tasks] = c0;
                    task[3 * n_tasks + 1] = nt;
                    task[3 * n_tasks + 2] = h;
                }
            }
        }
    } else {
        std::fill(s.att_batched_.begin(), s.att_batched_.begin() + n, 0);
    }
    if (n_tasks > 0) {
        float * scratch = s.att_batch_scratch_for(att_threads);
        const int64_t * task = s.att_tasks_.data();
#pragma omp parallel for schedule(dynamic)
        for (int64_t i = n_tasks - 1; i >= 0; --i) {  // the latest tokens (the most rows) first
            const int tid = omp_get_thread_num();
            GL_ASSERT(tid < att_threads);
            const int64_t c0 = task[3 * i], nt = task[3 * i + 1], h = task[3 * i + 2];
            int64_t lo[64], hi[64];
            GL_ASSERT(nt <= 64);
            for (int64_t t = 0; t < nt; ++t) {
                hi[t] = b.pos[c0 + t] + 1;
                lo[t] = L.window > 0 ? std::max<int64_t>(0, hi[t] - L.window) : 0;
            }
            const int64_t off = c0 * q_dim + h * group * HD;
            gl_attention_batch(q + off, q_dim, nt, group, HD, h, kv.k_view(kv_layer, b.seq[c0]), kv.v_view(kv_layer, b.seq[c0]), lo, hi,
                               kq_scale, att + off, q_dim, scratch + (size_t) tid * s.att_batch_per_);
        }
    }
    const size_t att_per_thread = (size_t) (s.n_ctx_ + HD);
    float * att_scratch = s.att_scratch_for(att_threads);
    // Fewer single tokens than threads (decode steps): each token's KV heads are separate tasks (gl_attention on the
    // head's query group, the views moved to the head), so one token's attention runs on every thread; it was one
    // thread's work while the others waited (15% of a TinyLlama token at 1,024 tokens of context). The same per-head
    // arithmetic either way.
    const int64_t split = n_single < att_threads ? hp.n_head_kv : 1;
#pragma omp parallel for schedule(dynamic) if (n_single * split > 1)
    for (int64_t task = 0; task < n * split; ++task) {
        const int64_t t = task / split, h0 = task % split * (hp.n_head_kv / split), nh = hp.n_head_kv / split;
        if (s.att_batched_[(size_t) t]) continue;
        const int tid = omp_get_thread_num();
        GL_ASSERT(tid < att_threads);
        // A sliding-window layer sees positions (pos - window, pos]: the views start at the first one.
        const int64_t first = L.window > 0 ? std::max<int64_t>(0, b.pos[t] + 1 - L.window) : 0;
        gl_kv_view kview = kv.k_view(kv_layer, b.seq[t]), vview = kv.v_view(kv_layer, b.seq[t]);
        kview.data = (const uint8_t *) kview.data + (size_t) first * kview.stride + gl_row_size(kview.type, h0 * HD);
        vview.data = (const uint8_t *) vview.data + (size_t) first * vview.stride + gl_row_size(vview.type, h0 * HD);
        const int64_t off = t * q_dim + h0 * group * HD;
        gl_attention(q + off, nh * group, nh, HD, kview, vview, b.pos[t] + 1 - first, kq_scale, att + off,
                     att_scratch + (size_t) tid * att_per_thread);
    }
    if (rec) (*rec)(LinearInput::ATTN_OUT, att, n, q_dim);
    gl_mul_mat(L.wo, att, n, xb, wdata);
    if (L.post_attn_norm) norm_rows(xb, n, E, E, L.post_attn_norm, hp.eps);
    gl_add(x, xb, n * E);

    // ---- MLP
    for (int64_t t = 0; t < n; ++t) gl_rms_norm(x + t * E, L.ffn_norm, E, hp.eps, xb + t * E);
    if (rec) (*rec)(LinearInput::GATE_UP, xb, n, E);
    {
        const gl_tensor * w[2] = {&L.w_gate, &L.w_up};
        float * const y[2] = {hb, hb2};
        gl_mul_mat_multi(w, y, 2, xb, n, wdata);
    }
    if (hp.arch && hp.arch->act == Activation::GELU_TANH) gl_geglu(hb, hb2, n * F, hb);
    else gl_swiglu(hb, hb2, n * F, hb);
    if (rec) (*rec)(LinearInput::DOWN, hb, n, F);
    gl_mul_mat(L.w_down, hb, n, xb, wdata);
    if (L.post_ffw_norm) norm_rows(xb, n, E, E, L.post_ffw_norm, hp.eps);
    gl_add(x, xb, n * E);
}

}  // namespace quill
