// Batched attention's two products (cpu.h gl_float_kernels att_qk / att_pv) at the avx2 level, as at the avx512
// level (avx512_float.cpp) with 8 lanes: every output lane one FMA chain in index order, bit-identical to the scalar
// reference (ops.cpp). Built with avx2.cpp's per-file flags (CMakeLists.txt); the two functions at the end are in
// avx2.cpp's float table.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

namespace {

#define ATT_UNROLL _Pragma("GCC unroll 16")  // the tiles' accumulators stay in registers

template <int R, int V>
inline void att_qk_tile(int64_t hd, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds) {
    __m256 a[R][V];
    ATT_UNROLL
    for (int r = 0; r < R; ++r)
        ATT_UNROLL
        for (int v = 0; v < V; ++v) a[r][v] = _mm256_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) {
        __m256 k[V];
        ATT_UNROLL
        for (int v = 0; v < V; ++v) k[v] = _mm256_loadu_ps(kt + d * ldk + 8 * v);
        ATT_UNROLL
        for (int r = 0; r < R; ++r) {
            const __m256 qb = _mm256_broadcast_ss(q + r * ldq + d);
            ATT_UNROLL
            for (int v = 0; v < V; ++v) a[r][v] = _mm256_fmadd_ps(qb, k[v], a[r][v]);
        }
    }
    ATT_UNROLL
    for (int r = 0; r < R; ++r)
        ATT_UNROLL
        for (int v = 0; v < V; ++v) _mm256_storeu_ps(s + r * lds + 8 * v, a[r][v]);
}

template <int R>
void att_qk_rows(int64_t hd, int64_t n, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds) {
    for (int64_t j = 0; j < n; j += 16) att_qk_tile<R, 2>(hd, q, ldq, kt + j, ldk, s + j, lds);
}

void att_qk_impl(int64_t nq, int64_t hd, int64_t n, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds) {
    for (int64_t j = 0; j < n; j += 64) {  // kᵀ in slices of 64 keys, L1-resident for every query row
        const int64_t nj = n - j < 64 ? n - j : 64;
        int64_t i = 0;
        for (; i + 4 <= nq; i += 4) att_qk_rows<4>(hd, nj, q + i * ldq, ldq, kt + j, ldk, s + i * lds + j, lds);
        for (; i < nq; ++i) att_qk_rows<1>(hd, nj, q + i * ldq, ldq, kt + j, ldk, s + i * lds + j, lds);
    }
}

template <int R, int V>
inline void att_pv_tile(int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo, bool cont) {
    __m256 a[R][V];
    ATT_UNROLL
    for (int r = 0; r < R; ++r)
        ATT_UNROLL
        for (int c = 0; c < V; ++c) a[r][c] = cont ? _mm256_loadu_ps(o + r * ldo + 8 * c) : _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
        __m256 x[V];
        ATT_UNROLL
        for (int c = 0; c < V; ++c) x[c] = _mm256_loadu_ps(v + j * ldv + 8 * c);
        ATT_UNROLL
        for (int r = 0; r < R; ++r) {
            const __m256 pb = _mm256_broadcast_ss(p + r * ldp + j);
            ATT_UNROLL
            for (int c = 0; c < V; ++c) a[r][c] = _mm256_fmadd_ps(pb, x[c], a[r][c]);
        }
    }
    ATT_UNROLL
    for (int r = 0; r < R; ++r)
        ATT_UNROLL
        for (int c = 0; c < V; ++c) _mm256_storeu_ps(o + r * ldo + 8 * c, a[r][c]);
}

template <int R>
void att_pv_rows(int64_t hd, int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo, bool cont) {
    for (int64_t c = 0; c < hd; c += 16) att_pv_tile<R, 2>(n, p, ldp, v + c, ldv, o + c, ldo, cont);  // 8 accumulators of 16 registers
}

void att_pv_impl(int64_t nq, int64_t hd, int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo) {
    for (int64_t j = 0; j < n; j += 64) {  // v in slices of 64 rows, continuing each output's FMA chain from o
        const int64_t nj = n - j < 64 ? n - j : 64;
        int64_t i = 0;
        for (; i + 4 <= nq; i += 4) att_pv_rows<4>(hd, nj, p + i * ldp + j, ldp, v + j * ldv, ldv, o + i * ldo, ldo, j > 0);
        for (; i < nq; ++i) att_pv_rows<1>(hd, nj, p + i * ldp + j, ldp, v + j * ldv, ldv, o + i * ldo, ldo, j > 0);
    }
}

}  // namespace

void gl_att_qk_avx2(int64_t nq, int64_t hd, int64_t n, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds) {
    att_qk_impl(nq, hd, n, q, ldq, kt, ldk, s, lds);
}
void gl_att_pv_avx2(int64_t nq, int64_t hd, int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo) {
    att_pv_impl(nq, hd, n, p, ldp, v, ldv, o, ldo);
}
