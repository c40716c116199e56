// AVX-512 float ops (dot, rms_norm, softmax, swiglu, batched attention's two products) with a vectorised expf: the gl_float_avx512 table.
// Built with the same per-file flags as avx512.cpp (see CMakeLists.txt) and used only when the CPU has them.
// Same rule: no inline functions from shared headers, no std:: templates; only the table is exported.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

// GCC 12's AVX-512 headers build "undefined" vectors as self-initialised locals (__m512 __Y = __Y), which -Wall
// reports once inlined here. They are intended; the warnings say nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

inline __mmask16 tail16(int64_t k) { return (__mmask16) ((1u << k) - 1); }

float dot_f32_impl(int64_t n, const float * x, const float * y) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps(), a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16), a1);
        a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 32), _mm512_loadu_ps(y + i + 32), a2);
        a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 48), _mm512_loadu_ps(y + i + 48), a3);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i), a0);
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i), a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// ---- float ops ------------------------------------------------------------------------------------------------------

// e^x for 16 lanes, within ~2 ulp of expf: x = n ln2 + r (|r| <= ln2 / 2, two-constant Cody-Waite), e^r by a degree-7
// Taylor polynomial (truncation < 1e-8 relative), and 2^n applied with scalef, which rounds once into the denormal
// range and gives 0 / inf beyond it. NaN propagates; the clamp only keeps +-inf from turning r into NaN.
inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_set1_ps(-110.0f), x);  // the second operand is returned for NaN
    x = _mm512_min_ps(_mm512_set1_ps(110.0f), x);
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

void rms_norm(const float * x, const float * weight, int64_t n, float eps, float * y) {
    const float sum = dot_f32_impl(n, x, x);
    const float mean = sum / (float) n;
    const float scale = 1.0f / _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(mean + eps)));
    const __m512 vs = _mm512_set1_ps(scale);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16) 0xFFFF : tail16(n - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
        if (weight) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, weight + i));
        _mm512_mask_storeu_ps(y + i, m, v);
    }
}

void softmax(float * x, int64_t n, float scale) {
    if (n <= 0) return;
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 vmax = _mm512_set1_ps(-__builtin_inff());
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16) 0xFFFF : tail16(n - i);
        const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), vs);
        _mm512_mask_storeu_ps(x + i, m, v);
        vmax = _mm512_mask_max_ps(vmax, m, vmax, v);
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmax));
    __m512 vsum = _mm512_setzero_ps();
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16) 0xFFFF : tail16(n - i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), mx));
        _mm512_mask_storeu_ps(x + i, m, e);
        vsum = _mm512_mask_add_ps(vsum, m, vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16) 0xFFFF : tail16(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), inv));
    }
}

// out = silu(gate) * up = gate / (1 + e^-gate) * up.
void swiglu(const float * gate, const float * up, int64_t n, float * out) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16) 0xFFFF : tail16(n - i);
        const __m512 g = _mm512_maskz_loadu_ps(m, gate + i);
        const __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
        const __m512 s = _mm512_div_ps(g, _mm512_add_ps(one, e));
        _mm512_mask_storeu_ps(out + i, m, _mm512_mul_ps(s, _mm512_maskz_loadu_ps(m, up + i)));
    }
}

// ---- batched attention products (cpu.h gl_float_kernels att_qk / att_pv): R rows at a time, every output lane one
// FMA chain in index order, as the reference.

// R query rows × V vectors of 16 keys: s = q · kt over d.
#define ATT_UNROLL _Pragma("GCC unroll 16")  // the tiles' accumulators stay in registers

template <int R, int V>
inline void qk_tile(int64_t hd, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds) {
    __m512 a[R][V];
    ATT_UNROLL
    for (int r = 0; r < R; ++r)
        ATT_UNROLL
        for (int v = 0; v < V; ++v) a[r][v] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; ++d) {
        __m512 k[V];
        ATT_UNROLL
        for (int v = 0; v < V; ++v) k[v] = _mm512_loadu_ps(kt + d * ldk + 16 * v);
        ATT_UNROLL
        for (int r = 0; r < R; ++r) {
            const __m512 qb = _mm512_set1_ps(q[r * ldq + d]);
            ATT_UNROLL
            for (int v = 0; v < V; ++v) a[r][v] = _mm512_fmadd_ps(qb, k[v], a[r][v]);
        }
    }
    ATT_UNROLL
    for (int r = 0; r < R; ++r)
        ATT_UNROLL
        for (int v = 0; v < V; ++v) _mm512_storeu_ps(s + r * lds + 16 * v, a[r][v]);
}

template <int R>
inline void qk_rows(int64_t hd, int64_t n, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds) {
    int64_t j = 0;
    for (; j + 64 <= n; j += 64) qk_tile<R, 4>(hd, q, ldq, kt + j, ldk, s + j, lds);
    for (; j < n; j += 16) qk_tile<R, 1>(hd, q, ldq, kt + j, ldk, s + j, lds);
}

// Keys in slices of 64 (hd × 64 floats of kᵀ stay in L1 for every query row), query rows 4 at a time.
void att_qk(int64_t nq, int64_t hd, int64_t n, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds) {
    for (int64_t j = 0; j < n; j += 64) {
        const int64_t nj = n - j < 64 ? n - j : 64;
        int64_t i = 0;
        for (; i + 4 <= nq; i += 4) qk_rows<4>(hd, nj, q + i * ldq, ldq, kt + j, ldk, s + i * lds + j, lds);
        for (; i < nq; ++i) qk_rows<1>(hd, nj, q + i * ldq, ldq, kt + j, ldk, s + i * lds + j, lds);
    }
}

// R probability rows × V vectors of 16 output dims: o = p · v over j.
template <int R, int V>
inline void pv_tile(int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo, bool cont) {
    __m512 a[R][V];
    ATT_UNROLL
    for (int r = 0; r < R; ++r)
        ATT_UNROLL
        for (int c = 0; c < V; ++c) a[r][c] = cont ? _mm512_loadu_ps(o + r * ldo + 16 * c) : _mm512_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
        __m512 x[V];
        ATT_UNROLL
        for (int c = 0; c < V; ++c) x[c] = _mm512_loadu_ps(v + j * ldv + 16 * c);
        ATT_UNROLL
        for (int r = 0; r < R; ++r) {
            const __m512 pb = _mm512_set1_ps(p[r * ldp + j]);
            ATT_UNROLL
            for (int c = 0; c < V; ++c) a[r][c] = _mm512_fmadd_ps(pb, x[c], a[r][c]);
        }
    }
    ATT_UNROLL
    for (int r = 0; r < R; ++r)
        ATT_UNROLL
        for (int c = 0; c < V; ++c) _mm512_storeu_ps(o + r * ldo + 16 * c, a[r][c]);
}

template <int R>
inline void pv_rows(int64_t hd, int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo, bool cont) {
    int64_t c = 0;
    for (; c + 64 <= hd; c += 64) pv_tile<R, 4>(n, p, ldp, v + c, ldv, o + c, ldo, cont);
    for (; c < hd; c += 16) pv_tile<R, 1>(n, p, ldp, v + c, ldv, o + c, ldo, cont);
}

// Rows of v in slices of 64 (64 × hd floats stay in L1 for every probability row); each slice continues the
// outputs' FMA chains from o (a float stored and reloaded is exact: the same chain as one pass).
void att_pv(int64_t nq, int64_t hd, int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo) {
    for (int64_t j = 0; j < n; j += 64) {
        const int64_t nj = n - j < 64 ? n - j : 64;
        int64_t i = 0;
        for (; i + 4 <= nq; i += 4) pv_rows<4>(hd, nj, p + i * ldp + j, ldp, v + j * ldv, ldv, o + i * ldo, ldo, j > 0);
        for (; i < nq; ++i) pv_rows<1>(hd, nj, p + i * ldp + j, ldp, v + j * ldv, ldv, o + i * ldo, ldo, j > 0);
    }
}

}  // namespace

// geglu and add: the AVX2 ones.
const gl_float_kernels gl_float_avx512 = {dot_f32_impl, rms_norm, softmax, swiglu, nullptr, nullptr, att_qk, att_pv};
