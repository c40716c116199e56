// The bodies of the quantizers' dense kernels (gl_linalg_kernels in ggml-lite/cpu.h), in GCC vector extensions.
// Included by exactly two files, each compiling them for its level: ggml-lite/linalg.cpp (the scalar level, baseline
// x86-64) and ggml-lite/cpu/linalg_avx2.cpp (-mavx2 -mfma -mf16c). One body for both keeps every level's result a
// fixed function of its inputs (no dependence on thread count); the levels differ only by FMA contraction.
// Everything here is always_inline and static: each including file gets its own copy, built with its own flags.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>

// The vectors never cross a function boundary (every helper is always_inline), so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace gl_linalg_impl {

typedef float   v8f __attribute__((vector_size(32)));
typedef double  v4d __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

#define GL_LINALG_INLINE __attribute__((always_inline)) static inline

template <typename V, typename T> GL_LINALG_INLINE V loadv(const T * p) {
    V v;
    memcpy(&v, p, sizeof v);
    return v;
}
template <typename V, typename T> GL_LINALG_INLINE void storev(T * p, V v) { memcpy(p, &v, sizeof v); }

// ---- vectors ---------------------------------------------------------------------------------------------------

// y[i] += a·x[i]
GL_LINALG_INLINE void axpy_f32(int64_t n, float a, const float * x, float * y) {
    int64_t i = 0;
    const v8f av = {a, a, a, a, a, a, a, a};
    for (; i + 8 <= n; i += 8) storev(y + i, loadv<v8f>(y + i) + av * loadv<v8f>(x + i));
    for (; i < n; ++i) y[i] += a * x[i];
}

GL_LINALG_INLINE void axpy_f64(int64_t n, double a, const double * x, double * y) {
    int64_t i = 0;
    const v4d av = {a, a, a, a};
    for (; i + 4 <= n; i += 4) storev(y + i, loadv<v4d>(y + i) + av * loadv<v4d>(x + i));
    for (; i < n; ++i) y[i] += a * x[i];
}

GL_LINALG_INLINE double dot_f64(int64_t n, const double * x, const double * y) {
    v4d acc0 = {0, 0, 0, 0}, acc1 = {0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        acc0 += loadv<v4d>(x + i) * loadv<v4d>(y + i);
        acc1 += loadv<v4d>(x + i + 4) * loadv<v4d>(y + i + 4);
    }
    acc0 += acc1;
    double s = (acc0[0] + acc0[2]) + (acc0[1] + acc0[3]);
    for (; i < n; ++i) s += x[i] * y[i];
    return s;
}

// A[i][j] -= Σ_l A[i][k0+l]·A[j][k0+l] (l < kb) for the rows i0 <= i < i0+4 (< n) and j0 <= j <= i: one row tile
// of the trailing update of the blocked Cholesky.
GL_LINALG_INLINE void syrk_tile_f64(double * A, int64_t n, int64_t i0, int64_t j0, int64_t k0, int64_t kb) {
    const int64_t i1 = std::min(n, i0 + 4);
    for (int64_t j = j0; j <= i1 - 1; j += 4) {
        const int64_t jn = std::min<int64_t>(4, i1 - j);  // columns of this tile (j..j+jn-1), all <= the last row
        if (i1 - i0 == 4 && jn == 4) {
            v4d acc[4][4];
            for (int a = 0; a < 4; ++a)
                for (int b = 0; b < 4; ++b) acc[a][b] = v4d{0, 0, 0, 0};
            int64_t l = 0;
            for (; l + 4 <= kb; l += 4) {
                v4d bv[4];
                for (int b = 0; b < 4; ++b) bv[b] = loadv<v4d>(A + (j + b) * n + k0 + l);
                for (int a = 0; a < 4; ++a) {
                    const v4d av = loadv<v4d>(A + (i0 + a) * n + k0 + l);
                    for (int b = 0; b < 4; ++b) acc[a][b] += av * bv[b];
                }
            }
            for (int a = 0; a < 4; ++a) {
                for (int b = 0; b < 4; ++b) {
                    double s = (acc[a][b][0] + acc[a][b][2]) + (acc[a][b][1] + acc[a][b][3]);
                    for (int64_t t = l; t < kb; ++t) s += A[(i0 + a) * n + k0 + t] * A[(j + b) * n + k0 + t];
                    if (j + b <= i0 + a) A[(i0 + a) * n + j + b] -= s;
                }
            }
        } else {
            for (int64_t i = i0; i < i1; ++i)
                for (int64_t jj = j; jj < j + jn && jj <= i; ++jj) A[i * n + jj] -= dot_f64(kb, A + i * n + k0, A + jj * n + k0);
        }
    }
}

// ---- nearest centroid (GPTVQ) ----------------------------------------------------------------------------------
// Nearest centroid of each of n D-dimensional vectors X (n × D) sharing the coordinate weights w (D), eight vectors per
// SIMD lane group and one centroid per step. cA holds k entries of D + 1 floats: Σ_t w_t·c_mt², then c_m. The
// weighted distance Σ_t w_t·x_t² + Σ_t w_t·c_mt² − 2·Σ_t w_t·x_t·c_mt (clamped at 0) is a non-negative float, so
// its bit pattern orders like the value; its low ib bits are replaced by m (k <= 2^ib) and the arg-min and the
// second-smallest are plain integer minima: no blends, no per-vector reduction. Distances that agree in all but the
// low ib mantissa bits (a relative 2^(ib−23), 3e-5 for k = 256) tie and go to the lower index. out[i] = the nearest
// index; second[i] (when non-null) = the second-smallest distance, truncated (so never above the true one) or +inf.
template <int D>
GL_LINALG_INLINE void vq_nearest(int64_t n, const float * X, const float * w, int k, int ib, const float * cA, int32_t * out, float * second) {
    const int32_t low = (int32_t) ((1u << ib) - 1u);
    const v8i keep = {~low, ~low, ~low, ~low, ~low, ~low, ~low, ~low};
    const v8i lowv = {low, low, low, low, low, low, low, low};
    const v8i one = {1, 1, 1, 1, 1, 1, 1, 1};
    const v8i big = {INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX, INT32_MAX};
    const v8f zero = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t i0 = 0; i0 < n; i0 += 8) {
        const int lanes = (int) std::min<int64_t>(8, n - i0);
        v8f y[D], off = zero;
        for (int t = 0; t < D; ++t) y[t] = zero;
        for (int l = 0; l < lanes; ++l) {
            for (int t = 0; t < D; ++t) {
                const float x = X[(i0 + l) * D + t];
                y[t][l] = -2.0f * w[t] * x;
                off[l] += w[t] * x * x;
            }
        }
        v8i best = big, sec = big, mv = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int m = 0; m < k; ++m, mv += one) {
            const float * e = cA + m * (D + 1);
            v8f s = off + e[0];
            for (int t = 0; t < D; ++t) s += y[t] * e[1 + t];
            s = s > zero ? s : zero;
            const v8i u = ((v8i) s & keep) | mv;
            const v8i hi = best > u ? best : u;
            sec = sec < hi ? sec : hi;
            best = best < u ? best : u;
        }
        const v8i bi = best & lowv, sb = sec & keep;
        for (int l = 0; l < lanes; ++l) {
            out[i0 + l] = bi[l];
            if (second) {
                const int32_t bits = sb[l];  // by value: clang refuses the address of a vector element
                float v;
                memcpy(&v, &bits, sizeof v);
                second[i0 + l] = sec[l] == INT32_MAX ? std::numeric_limits<float>::infinity() : v;
            }
        }
    }
}

// ---- float A·Bᵀ: one block of C ----------------------------------------------------------------------------------
// A 4×4 register tile of dot products along contiguous rows.

GL_LINALG_INLINE float hsum8(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

template <int MR, int NR>
GL_LINALG_INLINE void gemm_tile(int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc, bool add) {
    v8f acc[MR][NR];
    for (int a = 0; a < MR; ++a)
        for (int b = 0; b < NR; ++b) acc[a][b] = v8f{0, 0, 0, 0, 0, 0, 0, 0};
    int64_t l = 0;
    for (; l + 8 <= k; l += 8) {
        v8f bv[NR];
        for (int b = 0; b < NR; ++b) bv[b] = loadv<v8f>(B + b * ldb + l);
        for (int a = 0; a < MR; ++a) {
            const v8f av = loadv<v8f>(A + a * lda + l);
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
GL_LINALG_INLINE void gemm_tile_row(int NR, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc, bool add) {
    switch (NR) {
        case 4: gemm_tile<MR, 4>(k, A, lda, B, ldb, C, ldc, add); break;
        case 3: gemm_tile<MR, 3>(k, A, lda, B, ldb, C, ldc, add); break;
        case 2: gemm_tile<MR, 2>(k, A, lda, B, ldb, C, ldc, add); break;
        default: gemm_tile<MR, 1>(k, A, lda, B, ldb, C, ldc, add); break;
    }
}

// C (mb × nb) = A·Bᵀ over one slice of k (+ C when add).
GL_LINALG_INLINE void gemm_nt_block(int64_t mb, int64_t nb, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C,
                                    int64_t ldc, bool add) {
    for (int64_t i = 0; i < mb; i += 4) {
        const int MR = (int) std::min<int64_t>(4, mb - i);
        for (int64_t j = 0; j < nb; j += 4) {
            const int NR = (int) std::min<int64_t>(4, nb - j);
            const float * a = A + i * lda;
            const float * b = B + j * ldb;
            float * c = C + i * ldc + j;
            switch (MR) {
                case 4: gemm_tile_row<4>(NR, k, a, lda, b, ldb, c, ldc, add); break;
                case 3: gemm_tile_row<3>(NR, k, a, lda, b, ldb, c, ldc, add); break;
                case 2: gemm_tile_row<2>(NR, k, a, lda, b, ldb, c, ldc, add); break;
                default: gemm_tile_row<1>(NR, k, a, lda, b, ldb, c, ldc, add); break;
            }
        }
    }
}

// The level's table: out-of-line copies of the bodies above, compiled with the including file's flags.
// Expands to the definition of `const gl_linalg_kernels NAME`.
#define GL_LINALG_TABLE(NAME)                                                                                          \
    namespace {                                                                                                        \
    void k_gemm_nt_block(int64_t mb, int64_t nb, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, \
                         float * C, int64_t ldc, bool add) {                                                          \
        gl_linalg_impl::gemm_nt_block(mb, nb, k, A, lda, B, ldb, C, ldc, add);                                         \
    }                                                                                                                  \
    void k_axpy_f32(int64_t n, float a, const float * x, float * y) { gl_linalg_impl::axpy_f32(n, a, x, y); }          \
    void k_axpy_f64(int64_t n, double a, const double * x, double * y) { gl_linalg_impl::axpy_f64(n, a, x, y); }       \
    double k_dot_f64(int64_t n, const double * x, const double * y) { return gl_linalg_impl::dot_f64(n, x, y); }       \
    void k_syrk_tile_f64(double * A, int64_t n, int64_t i0, int64_t j0, int64_t k0, int64_t kb) {                      \
        gl_linalg_impl::syrk_tile_f64(A, n, i0, j0, k0, kb);                                                           \
    }                                                                                                                  \
    template <int D>                                                                                                   \
    void k_vq_nearest(int64_t n, const float * X, const float * w, int k, int ib, const float * cA, int32_t * out,     \
                      float * second) {                                                                                \
        gl_linalg_impl::vq_nearest<D>(n, X, w, k, ib, cA, out, second);                                                \
    }                                                                                                                  \
    }                                                                                                                  \
    const gl_linalg_kernels NAME = {k_gemm_nt_block, k_axpy_f32,      k_axpy_f64,       k_dot_f64,                     \
                                    k_syrk_tile_f64, {k_vq_nearest<1>, k_vq_nearest<2>, k_vq_nearest<4>}};

}  // namespace gl_linalg_impl
