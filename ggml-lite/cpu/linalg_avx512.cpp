// The quantizers' dense kernels at the AVX-512 level: only the float A·Bᵀ block (the GPTVQ codebook fine-tune's
// (Q − W)·H and GPTQ's products are nearly all of a quantize run); the other entries fall back to the AVX2 table.
// Built with the AVX-512 flags (CMakeLists.txt); internal linkage except the table.
//
// gemm_nt_block: an outer-product register tile of 8 rows of C × 32 columns (16 zmm accumulators). B's columns of
// the block are packed once per call into a k × 32 panel (so one l step is two aligned loads), A's 8 rows are read
// in place, one broadcast per row and step. Every C element is one sequential sum over l, so the result does not
// depend on the tile or the threads; it differs from the scalar reference only in summation order.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

#include <cstring>

namespace {

constexpr int64_t MR = 8, NR = 32, KMAX = 1024;  // gl_gemm_nt_f32 calls with k <= 1024 (its KC)

template <int R>
inline void tile(int64_t k, const float * A, int64_t lda, const float * bp, float * C, int64_t ldc, int64_t nc, bool add) {
    __m512 acc[R][2];
    for (int i = 0; i < R; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int64_t l = 0; l < k; ++l) {
        const __m512 b0 = _mm512_load_ps(bp + l * NR), b1 = _mm512_load_ps(bp + l * NR + 16);
#pragma GCC unroll 8
        for (int i = 0; i < R; ++i) {
            const __m512 a = _mm512_set1_ps(A[i * lda + l]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
    }
    const __mmask16 m0 = (__mmask16) (nc >= 16 ? 0xFFFF : (1u << nc) - 1), m1 = (__mmask16) (nc >= 32 ? 0xFFFF : nc <= 16 ? 0 : (1u << (nc - 16)) - 1);
    for (int i = 0; i < R; ++i) {
        float * c = C + i * ldc;
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (add) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, c));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, c + 16));
        }
        _mm512_mask_storeu_ps(c, m0, v0);
        _mm512_mask_storeu_ps(c + 16, m1, v1);
    }
}

void gemm_nt_block(int64_t mb, int64_t nb, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc,
                   bool add) {
    if (k > KMAX) {  // not how gl_gemm_nt_f32 calls it, but the contract allows it: slices of KMAX
        for (int64_t l0 = 0; l0 < k; l0 += KMAX)
            gemm_nt_block(mb, nb, k - l0 < KMAX ? k - l0 : KMAX, A + l0, lda, B + l0, ldb, C, ldc, add || l0 > 0);
        return;
    }
    alignas(64) static thread_local float bp[KMAX * NR];
    for (int64_t j0 = 0; j0 < nb; j0 += NR) {
        const int64_t nc = nb - j0 < NR ? nb - j0 : NR;
        for (int64_t l = 0; l < k; ++l) {
            float * d = bp + l * NR;
            for (int64_t j = 0; j < nc; ++j) d[j] = B[(j0 + j) * ldb + l];
            for (int64_t j = nc; j < NR; ++j) d[j] = 0.0f;
        }
        for (int64_t i0 = 0; i0 < mb; i0 += MR) {
            const float * a = A + i0 * lda;
            float * c = C + i0 * ldc + j0;
            switch (mb - i0 < MR ? mb - i0 : MR) {
                case 1: tile<1>(k, a, lda, bp, c, ldc, nc, add); break;
                case 2: tile<2>(k, a, lda, bp, c, ldc, nc, add); break;
                case 3: tile<3>(k, a, lda, bp, c, ldc, nc, add); break;
                case 4: tile<4>(k, a, lda, bp, c, ldc, nc, add); break;
                case 5: tile<5>(k, a, lda, bp, c, ldc, nc, add); break;
                case 6: tile<6>(k, a, lda, bp, c, ldc, nc, add); break;
                case 7: tile<7>(k, a, lda, bp, c, ldc, nc, add); break;
                default: tile<8>(k, a, lda, bp, c, ldc, nc, add); break;
            }
        }
    }
}

}  // namespace

const gl_linalg_kernels gl_linalg_avx512 = {gemm_nt_block, nullptr, nullptr, nullptr, nullptr, {nullptr, nullptr, nullptr}};
