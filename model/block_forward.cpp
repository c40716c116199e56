#include "model/block_forward.h"

#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <omp.h>

namespace quill {

// ---- float A·Bᵀ -------------------------------------------------------------------------------------------------
// A 4×4 register tile of dot products along contiguous rows, in GCC vector extensions: compiled twice (AVX2+FMA and
// baseline x86-64) from one body, and picked per call by the CPU dispatch level (ggml-lite/cpu.h; QUILL_CPU applies),
// so the file needs no per-file -m flags. (target_clones("arch=...") would not do: its resolver tests the CPU model.)

// The vectors never cross a function boundary (every helper is always_inline), so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float v8f __attribute__((vector_size(32)));

__attribute__((always_inline)) static inline v8f load8(const float * p) {
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

__attribute__((always_inline)) static inline float hsum8(v8f v) {
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

template <int MR, int NR>
__attribute__((always_inline)) static inline void tile(int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc, bool add) {
    v8f acc[MR][NR];
    for (int a = 0; a < MR; ++a)
        for (int b = 0; b < NR; ++b) acc[a][b] = v8f{0, 0, 0, 0, 0, 0, 0, 0};
    int64_t l = 0;
    for (; l + 8 <= k; l += 8) {
        v8f bv[NR];
        for (int b = 0; b < NR; ++b) bv[b] = load8(B + b * ldb + l);
        for (int a = 0; a < MR; ++a) {
            const v8f av = load8(A + a * lda + l);
            for (int b = 0; b < NR; ++b) acc[a][b] += av * bv[b];
        }
    }
    for (int a = 0; a < MR; ++a) {
        for (int b = 0; b < NR; ++b) {
            float s = hsum8(acc[a][b]);
            for (int64_t t = l; t < k; ++t) s += A[a * lda + t] * B[b * ldb + t];
            C[a * ldc + b] = add ? C[a * ldc + b] + s : s;
        }
    }
}

template <int MR>
__attribute__((always_inline)) static inline void tile_row(int NR, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc, bool add) {
    switch (NR) {
        case 4: tile<MR, 4>(k, A, lda, B, ldb, C, ldc, add); break;
        case 3: tile<MR, 3>(k, A, lda, B, ldb, C, ldc, add); break;
        case 2: tile<MR, 2>(k, A, lda, B, ldb, C, ldc, add); break;
        default: tile<MR, 1>(k, A, lda, B, ldb, C, ldc, add); break;
    }
}

// One block of C (mb × nb) over one slice of k.
__attribute__((always_inline)) static inline void gemm_block_impl(int64_t mb, int64_t nb, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc,
                       bool add) {
    for (int64_t i = 0; i < mb; i += 4) {
        const int MR = (int) std::min<int64_t>(4, mb - i);
        for (int64_t j = 0; j < nb; j += 4) {
            const int NR = (int) std::min<int64_t>(4, nb - j);
            const float * a = A + i * lda;
            const float * b = B + j * ldb;
            float * c = C + i * ldc + j;
            switch (MR) {
                case 4: tile_row<4>(NR, k, a, lda, b, ldb, c, ldc, add); break;
                case 3: tile_row<3>(NR, k, a, lda, b, ldb, c, ldc, add); break;
                case 2: tile_row<2>(NR, k, a, lda, b, ldb, c, ldc, add); break;
                default: tile_row<1>(NR, k, a, lda, b, ldb, c, ldc, add); break;
            }
        }
    }
}

__attribute__((target("avx2,fma"))) static void gemm_block_avx2(int64_t mb, int64_t nb, int64_t k, const float * A, int64_t lda,
                                                                 const float * B, int64_t ldb, float * C, int64_t ldc, bool add) {
    gemm_block_impl(mb, nb, k, A, lda, B, ldb, C, ldc, add);
}
static void gemm_block_base(int64_t mb, int64_t nb, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C,
                            int64_t ldc, bool add) {
    gemm_block_impl(mb, nb, k, A, lda, B, ldb, C, ldc, add);
}
static void gemm_block(int64_t mb, int64_t nb, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc,
                       bool add) {
    if (gl_cpu_level_get() >= GL_CPU_AVX2) gemm_block_avx2(mb, nb, k, A, lda, B, ldb, C, ldc, add);
    else gemm_block_base(mb, nb, k, A, lda, B, ldb, C, ldc, add);
}

void gemm_nt_f32(int64_t m, int64_t n, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc,
                 bool accumulate) {
    const int64_t MB = 64, NB = 64, KC = 1024;
    const int64_t mt = (m + MB - 1) / MB, nt = (n + NB - 1) / NB;
    // Small products stay on one thread: on a busy machine an OpenMP barrier can cost a scheduler time slice.
    const bool parallel = m * n * k >= (1 << 23);
#pragma omp parallel for schedule(dynamic) if (parallel)
    for (int64_t t = 0; t < mt * nt; ++t) {
        const int64_t i0 = (t / nt) * MB, j0 = (t % nt) * NB;
        const int64_t mb = std::min(MB, m - i0), nb = std::min(NB, n - j0);
        if (k == 0) {
            if (!accumulate)
                for (int64_t i = 0; i < mb; ++i) std::fill(C + (i0 + i) * ldc + j0, C + (i0 + i) * ldc + j0 + nb, 0.0f);
            continue;
        }
        for (int64_t l0 = 0; l0 < k; l0 += KC) {
            const int64_t kc = std::min(KC, k - l0);
            gemm_block(mb, nb, kc, A + i0 * lda + l0, lda, B + j0 * ldb + l0, ldb, C + i0 * ldc + j0, ldc, accumulate || l0 > 0);
        }
    }
}

// ---- weights ----------------------------------------------------------------------------------------------------

size_t BlockWeightsF32::n_floats() const {
    return attn_norm.size() + ffn_norm.size() + wq.size() + wk.size() + wv.size() + wo.size() + w_gate.size() + w_up.size() + w_down.size();
}

static std::vector<float> widen(const gl_tensor & t) {
    std::vector<float> out((size_t) (t.ne0 * t.ne1));
    for (int64_t r = 0; r < t.ne1; ++r) gl_get_row(t, r, out.data() + r * t.ne0);
    return out;
}

BlockWeightsF32 block_weights_f32(const LlamaModel & model, int64_t layer) {
    GL_ASSERT(layer >= 0 && layer < model.hp.n_layer);
    const LlamaLayer & L = model.layers[(size_t) layer];
    const int64_t E = model.hp.n_embd;
    BlockWeightsF32 w;
    w.attn_norm.assign(L.attn_norm, L.attn_norm + E);
    w.ffn_norm.assign(L.ffn_norm, L.ffn_norm + E);
    w.wq = widen(L.wq);
    w.wk = widen(L.wk);
    w.wv = widen(L.wv);
    w.wo = widen(L.wo);
    w.w_gate = widen(L.w_gate);
    w.w_up = widen(L.w_up);
    w.w_down = widen(L.w_down);
    return w;
}

const char * linear_input_name(LinearInput which) {
    static const char * names[] = {"attn_qkv", "attn_output", "ffn_gate_up", "ffn_down"};
    return names[(int) which];
}

int64_t linear_input_dim(const LlamaHparams & hp, LinearInput which) {
    switch (which) {
        case LinearInput::QKV: return hp.n_embd;
        case LinearInput::ATTN_OUT: return hp.n_head * hp.head_dim;
        case LinearInput::GATE_UP: return hp.n_embd;
        case LinearInput::DOWN: return hp.n_ff;
        default: GL_ASSERT(false);
    }
    return 0;
}

// ---- the block --------------------------------------------------------------------------------------------------

void block_forward(const LlamaHparams & hp, const float * rope_freqs, const BlockWeightsF32 & w, float * x, int64_t n_seq,
                   int64_t seq_len, const BlockRecorder & rec, bool update) {
    const int64_t E = hp.n_embd, HD = hp.head_dim, q_dim = hp.n_head * HD, kv_dim = hp.kv_dim(), F = hp.n_ff, L = seq_len;
    GL_ASSERT((int64_t) w.wq.size() == q_dim * E && (int64_t) w.wk.size() == kv_dim * E && (int64_t) w.wv.size() == kv_dim * E);
    GL_ASSERT((int64_t) w.wo.size() == E * q_dim && (int64_t) w.w_gate.size() == F * E && (int64_t) w.w_up.size() == F * E);
    GL_ASSERT((int64_t) w.w_down.size() == E * F && (int64_t) w.attn_norm.size() == E && (int64_t) w.ffn_norm.size() == E);
    std::vector<float> xs((size_t) (L * E)), xb((size_t) (L * std::max(E, q_dim))), q((size_t) (L * q_dim)), k((size_t) (L * kv_dim)),
        v((size_t) (L * kv_dim)), att((size_t) (L * q_dim)), h((size_t) (L * F)), h2((size_t) (L * F));
    std::vector<float> scores((size_t) (L * L)), vt((size_t) (HD * L));
    const float kq_scale = 1.0f / sqrtf((float) HD);
    const int64_t group = hp.n_head / hp.n_head_kv;

    for (int64_t s = 0; s < n_seq; ++s) {
        float * xseq = x + s * L * E;
        std::copy(xseq, xseq + L * E, xs.begin());

        for (int64_t t = 0; t < L; ++t) gl_rms_norm(&xs[t * E], w.attn_norm.data(), E, hp.eps, &xb[t * E]);
        if (rec) rec(LinearInput::QKV, xb.data(), L, E);
        gemm_nt_f32(L, q_dim, E, xb.data(), E, w.wq.data(), E, q.data(), q_dim, false);
        gemm_nt_f32(L, kv_dim, E, xb.data(), E, w.wk.data(), E, k.data(), kv_dim, false);
        gemm_nt_f32(L, kv_dim, E, xb.data(), E, w.wv.data(), E, v.data(), kv_dim, false);
        for (int64_t t = 0; t < L; ++t) {
            gl_rope(&q[t * q_dim], hp.n_head, HD, hp.n_rot, t, hp.rope_base, hp.rope_freq_scale, rope_freqs, GL_ROPE_NORM);
            gl_rope(&k[t * kv_dim], hp.n_head_kv, HD, hp.n_rot, t, hp.rope_base, hp.rope_freq_scale, rope_freqs, GL_ROPE_NORM);
        }
        // Causal attention, one head at a time as two products: S = Q_h·K_hᵀ (rows t, columns j), the softmax of
        // each row over j <= t (the rest zeroed), then O_h = S·V_h (V_h transposed once per kv head).
        for (int64_t hh = 0; hh < hp.n_head; ++hh) {
            const int64_t kvh = hh / group;
            if (hh % group == 0) {
                for (int64_t j = 0; j < L; ++j)
                    for (int64_t e = 0; e < HD; ++e) vt[(size_t) (e * L + j)] = v[(size_t) (j * kv_dim + kvh * HD + e)];
            }
            gemm_nt_f32(L, L, HD, &q[(size_t) (hh * HD)], q_dim, &k[(size_t) (kvh * HD)], kv_dim, scores.data(), L, false);
#pragma omp parallel for schedule(static) if (L >= 1024)
            for (int64_t t = 0; t < L; ++t) {
                float * st = &scores[(size_t) (t * L)];
                gl_softmax(st, t + 1, kq_scale);
                std::fill(st + t + 1, st + L, 0.0f);
            }
            gemm_nt_f32(L, HD, L, scores.data(), L, vt.data(), L, &att[(size_t) (hh * HD)], q_dim, false);
        }
        if (rec) rec(LinearInput::ATTN_OUT, att.data(), L, q_dim);
        gemm_nt_f32(L, E, q_dim, att.data(), q_dim, w.wo.data(), q_dim, xb.data(), E, false);
        for (int64_t i = 0; i < L * E; ++i) xs[i] += xb[i];

        for (int64_t t = 0; t < L; ++t) gl_rms_norm(&xs[t * E], w.ffn_norm.data(), E, hp.eps, &xb[t * E]);
        if (rec) rec(LinearInput::GATE_UP, xb.data(), L, E);
        gemm_nt_f32(L, F, E, xb.data(), E, w.w_gate.data(), E, h.data(), F, false);
        gemm_nt_f32(L, F, E, xb.data(), E, w.w_up.data(), E, h2.data(), F, false);
        for (int64_t i = 0; i < L * F; ++i) h[i] = gl_silu(h[i]) * h2[i];
        if (rec) rec(LinearInput::DOWN, h.data(), L, F);
        gemm_nt_f32(L, E, F, h.data(), F, w.w_down.data(), F, xb.data(), E, false);
        for (int64_t i = 0; i < L * E; ++i) xs[i] += xb[i];

        if (update) std::copy(xs.begin(), xs.end(), xseq);
    }
}

}  // namespace quill
