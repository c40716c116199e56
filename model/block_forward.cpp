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
    size_t n = 0;
    for (const std::vector<float> & v : w) n += v.size();
    return n;
}

LlamaLayer BlockWeightsF32::layer() const {
    LlamaLayer L = base;
    for (int r = 0; r < (int) LayerTensor::COUNT; ++r) {
        gl_tensor * t = L.linear((LayerTensor) r);
        if (!t) continue;
        GL_ASSERT((int64_t) w[r].size() == t->ne0 * t->ne1);
        *t = gl_tensor_make(GL_TYPE_F32, t->ne0, t->ne1, w[r].data(), t->name);
    }
    return L;
}

BlockWeightsF32 block_weights_f32(const LlamaModel & model, int64_t layer) {
    GL_ASSERT(layer >= 0 && layer < model.hp.n_layer);
    BlockWeightsF32 bw;
    bw.base = model.layers[(size_t) layer];
    for (int r = 0; r < (int) LayerTensor::COUNT; ++r) {
        const gl_tensor * t = bw.base.linear((LayerTensor) r);
        if (!t) continue;
        std::vector<float> & out = bw.w[r];
        out.resize((size_t) (t->ne0 * t->ne1));
        for (int64_t row = 0; row < t->ne1; ++row) gl_get_row(*t, row, out.data() + row * t->ne0);
    }
    return bw;
}

// ---- the block over calibration sequences ------------------------------------------------------------------------

void block_forward(const LlamaHparams & hp, const LlamaLayer & L, float * x, int64_t n_seq, int64_t seq_len, const BlockRecorder & rec,
                   bool update) {
    GL_ASSERT(seq_len > 0 && seq_len <= (1 << 22));
    const int64_t E = hp.n_embd;
    KvCache kv;
    kv.init(1, hp.n_head_kv, hp.head_dim, (int32_t) seq_len, 1, GL_TYPE_F32);
    BlockScratch s;
    s.init(hp, seq_len, seq_len, block_wdata_size(L, seq_len));
    gl_buffer xs((size_t) (seq_len * E) * sizeof(float));
    std::vector<int32_t> pos((size_t) seq_len), seq((size_t) seq_len, 0);
    for (int64_t t = 0; t < seq_len; ++t) pos[(size_t) t] = (int32_t) t;
    const BlockBatch b{seq_len, pos.data(), seq.data()};
    for (int64_t sq = 0; sq < n_seq; ++sq) {
        float * xseq = x + sq * seq_len * E;
        std::copy(xseq, xseq + seq_len * E, xs.f32());
        block_forward(hp, L, b, kv, 0, xs.f32(), s, rec ? &rec : nullptr);
        if (update) std::copy(xs.f32(), xs.f32() + seq_len * E, xseq);
    }
}

}  // namespace quill
