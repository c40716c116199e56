// The quantizers' dense kernels (ops.h gl_gemm_nt_f32 ...): the scalar level's table (ggml-lite/cpu/linalg_impl.h
// built for baseline x86-64, no -m flags) and the dispatching entry points.
#include "ggml-lite/cpu.h"
#include "ggml-lite/common.h"
#include "ggml-lite/cpu/linalg_impl.h"
#include "ggml-lite/ops.h"

#include <algorithm>

GL_LINALG_TABLE(gl_linalg_scalar)

void gl_gemm_nt_f32(int64_t m, int64_t n, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc,
                    bool accumulate) {
    const auto block = gl_linalg_ops().gemm_nt_block;
    const int64_t MB = 64, NB = 64, KC = 1024;
    const int64_t mt = (m + MB - 1) / MB, nt = (n + NB - 1) / NB;
    // Small products stay on one thread: on a busy machine an OpenMP barrier can cost a scheduler time slice.
    // Each 64×64 block of C is one task over the whole of k, so the sums do not depend on the threads.
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
            block(mb, nb, kc, A + i0 * lda + l0, lda, B + j0 * ldb + l0, ldb, C + i0 * ldc + j0, ldc, accumulate || l0 > 0);
        }
    }
}

void gl_axpy_f32(int64_t n, float a, const float * x, float * y) { gl_linalg_ops().axpy_f32(n, a, x, y); }
void gl_axpy_f64(int64_t n, double a, const double * x, double * y) { gl_linalg_ops().axpy_f64(n, a, x, y); }
double gl_dot_f64(int64_t n, const double * x, const double * y) { return gl_linalg_ops().dot_f64(n, x, y); }
void gl_syrk_tile_f64(double * A, int64_t n, int64_t i0, int64_t j0, int64_t k0, int64_t kb) { gl_linalg_ops().syrk_tile_f64(A, n, i0, j0, k0, kb); }

void gl_vq_nearest(int dim, int64_t n, const float * X, const float * w, int k, int ib, const float * cA, int32_t * out, float * second) {
    GL_ASSERT(dim == 1 || dim == 2 || dim == 4);
    gl_linalg_ops().vq_nearest[dim == 1 ? 0 : dim == 2 ? 1 : 2](n, X, w, k, ib, cA, out, second);
}
