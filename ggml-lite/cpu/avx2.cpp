// AVX2 + FMA + F16C kernels. Built with -mavx2 -mfma -mf16c (this file only; see CMakeLists.txt) and used only
// when the CPU has them (ggml-lite/cpu.cpp). Keep this file free of inline functions from shared headers and of
// std:: templates, so no AVX2 code can leak into the rest of the program through the linker: everything here is
// static (internal linkage) except the two tables at the end.
//
// What must match the scalar reference (ggml-lite/types.cpp) bit for bit: the activation quantizers (Q8_0, F16,
// BF16) and every to_float. Dot products, gemm, axpy and the float ops sum in a different order (and with FMA), so
// they match within rounding; tests/test_kernels.cpp holds the tolerances.
#include "ggml-lite/cpu.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

// ---- helpers --------------------------------------------------------------------------------------------------

// fp16 -> fp32 of one value (F16C). Used for block scales only: a signalling-NaN scale comes out quiet here
// but any product with it is the same quiet NaN as in the scalar code.
static inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

static inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// Keeps the compiler from contracting a rounded product into a later FMA (the file is built with FMA enabled and
// GCC contracts by default); used where the scalar reference rounds the product first.
static inline __m256 opaque(__m256 v) {
    __asm__("" : "+x"(v));
    return v;
}

// 8 fp16 -> 8 fp32, bit-identical to the scalar table: F16C quiets signalling NaNs, the reference keeps the
// payload as it is, so NaN lanes (rare) are rebuilt from the bits.
static inline __m256 f16x8_to_f32(__m128i h) {
    __m256 v = _mm256_cvtph_ps(h);
    __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    if (__builtin_expect(_mm256_movemask_ps(nan) != 0, 0)) {
        __m256i h32 = _mm256_cvtepu16_epi32(h);
        __m256i bits = _mm256_or_si256(
            _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(h32, _mm256_set1_epi32(0x8000)), 16), _mm256_set1_epi32(0x7f800000)),
            _mm256_slli_epi32(_mm256_and_si256(h32, _mm256_set1_epi32(0x3ff)), 13));
        v = _mm256_blendv_ps(v, _mm256_castsi256_ps(bits), nan);
    }
    return v;
}

// 8 fp32 -> 8 fp16, round to nearest even, bit-identical to gl_fp32_to_fp16: F16C keeps the top of a NaN's
// payload, the reference makes every NaN sign|0x7e00.
static inline __m128i f32x8_to_f16(__m256 v) {
    __m128i h = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    if (__builtin_expect(_mm256_movemask_ps(nan) != 0, 0)) {
        __m256i sign = _mm256_and_si256(_mm256_srli_epi32(_mm256_castps_si256(v), 16), _mm256_set1_epi32(0x8000));
        __m256i qn = _mm256_or_si256(sign, _mm256_set1_epi32(0x7e00));
        __m256i wide = _mm256_cvtepu16_epi32(h);
        wide = _mm256_blendv_epi8(wide, qn, _mm256_castps_si256(nan));
        // 32 -> 16 bits: values fit, so an unsigned saturating pack and a lane fix-up give the low halves
        __m256i packed = _mm256_permute4x64_epi64(_mm256_packus_epi32(wide, wide), 0x08);
        h = _mm256_castsi256_si128(packed);
    }
    return h;
}

static inline __m256 bf16x8_to_f32(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// 8 fp32 -> 8 bf16 as gl_fp32_to_bf16: round to nearest even on the bits, NaN -> (bits >> 16) | 64.
static inline __m128i f32x8_to_bf16(__m256 v) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i absu = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    const __m256i nan = _mm256_cmpgt_epi32(absu, _mm256_set1_epi32(0x7f800000));
    const __m256i qn = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    r = _mm256_blendv_epi8(r, qn, nan);
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08));
}

// Tails of float-like rows: up to 7 elements through a zero-padded buffer.
static inline __m256 load_f32_tail(const float * x, int64_t n) {
    float buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(buf, x, (size_t) n * sizeof(float));
    return _mm256_loadu_ps(buf);
}
static inline __m128i load_u16_tail(const uint16_t * x, int64_t n) {
    uint16_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    memcpy(buf, x, (size_t) n * sizeof(uint16_t));
    return _mm_loadu_si128((const __m128i *) buf);
}

// 32 Q4_0 codes of one block as signed bytes in [-8, 7], in element order (low nibbles first).
static inline __m256i q4_unpack(const uint8_t * qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *) qs);
    const __m256i x = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
    return _mm256_sub_epi8(_mm256_and_si256(x, _mm256_set1_epi8(0x0f)), _mm256_set1_epi8(8));
}

// Sum of x[i] * y[i] over 32 signed bytes, as 8 int32 partial sums. maddubs takes an unsigned operand, so it gets
// |x| and y carries x's sign. Exact for x in [-128, 127] and y in [-127, 127] (activations never hold -128).
static inline __m256i dot_i8(__m256i x, __m256i y) {
    const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// The same with |x| precomputed (x reused against several y).
static inline __m256i dot_i8_abs(__m256i ax, __m256i x, __m256i y) {
    const __m256i p = _mm256_maddubs_epi16(ax, _mm256_sign_epi8(y, x));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

// ---- expf -----------------------------------------------------------------------------------------------------
// e^x = 2^k · e^r with k = round(x / ln 2), r = x - k ln 2 in [-ln2/2, ln2/2] (ln 2 in two parts, so r is exact
// to well below an ulp), e^r by its Taylor series to degree 7 (truncation error < 6e-9 relative). 2^k is applied
// as two exponent-field scalings, which covers results in the subnormal range and overflow to +inf.
// NaN in, NaN out; -inf gives 0, +inf gives +inf. Within 2 ulp of libm over the float range.
static inline __m256 exp_ps(__m256 x) {
    const __m256 hi = _mm256_set1_ps(89.0f), lo = _mm256_set1_ps(-104.0f);
    x = _mm256_min_ps(hi, x);  // second operand wins on NaN: a NaN x stays NaN
    x = _mm256_max_ps(lo, x);
    const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
    p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
    // k in [-150, 129]: 2^k = 2^k1 · 2^k2 with k1 = k >> 1, both factors normal
    const __m256i ki = _mm256_cvtps_epi32(k);
    const __m256i k1 = _mm256_srai_epi32(ki, 1);
    const __m256i k2 = _mm256_sub_epi32(ki, k1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// ---- F32 ------------------------------------------------------------------------------------------------------

static float dot_f32(int64_t n, const float * x, const float * y) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), a0);
    if (i < n) a1 = _mm256_fmadd_ps(load_f32_tail(x + i, n - i), load_f32_tail(y + i, n - i), a1);
    return hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static void f32_vec_dot(int64_t n, float * s, const void * x, const void * y) {
    *s = dot_f32(n, (const float *) x, (const float *) y);
}

static void f32_axpy(int64_t n, float a, const void * vx, float * y) {
    const float * x = (const float *) vx;
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

// ---- F16 ------------------------------------------------------------------------------------------------------

static void f16_to_float(const void * vx, float * y, int64_t n) {
    const uint16_t * x = (const uint16_t *) vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f16x8_to_f32(_mm_loadu_si128((const __m128i *) (x + i))));
    if (i < n) {
        float buf[8];
        _mm256_storeu_ps(buf, f16x8_to_f32(load_u16_tail(x + i, n - i)));
        memcpy(y + i, buf, (size_t) (n - i) * sizeof(float));
    }
}

static void f16_from_float(const float * x, void * vy, int64_t n) {
    uint16_t * y = (uint16_t *) vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *) (y + i), f32x8_to_f16(_mm256_loadu_ps(x + i)));
    if (i < n) {
        uint16_t buf[8];
        _mm_storeu_si128((__m128i *) buf, f32x8_to_f16(load_f32_tail(x + i, n - i)));
        memcpy(y + i, buf, (size_t) (n - i) * sizeof(uint16_t));
    }
}

static inline __m256 ld_f16(const uint16_t * p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) p)); }

// Dot products widen with plain F16C: a NaN stays a NaN, only its payload could differ, which a sum cannot show.
static void f16_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const uint16_t * x = (const uint16_t *) vx;
    const uint16_t * y = (const uint16_t *) vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ld_f16(x + i), ld_f16(y + i), a0);
        a1 = _mm256_fmadd_ps(ld_f16(x + i + 8), ld_f16(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(ld_f16(x + i + 16), ld_f16(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(ld_f16(x + i + 24), ld_f16(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(ld_f16(x + i), ld_f16(y + i), a0);
    if (i < n) a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(load_u16_tail(x + i, n - i)), _mm256_cvtph_ps(load_u16_tail(y + i, n - i)), a1);
    *s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static void f16_axpy(int64_t n, float a, const void * vx, float * y) {
    const uint16_t * x = (const uint16_t *) vx;
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, ld_f16(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        float buf[8];
        _mm256_storeu_ps(buf, _mm256_fmadd_ps(va, _mm256_cvtph_ps(load_u16_tail(x + i, n - i)), load_f32_tail(y + i, n - i)));
        memcpy(y + i, buf, (size_t) (n - i) * sizeof(float));
    }
}

// ---- BF16 -----------------------------------------------------------------------------------------------------

static void bf16_to_float(const void * vx, float * y, int64_t n) {
    const uint16_t * x = (const uint16_t *) vx;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, bf16x8_to_f32(_mm_loadu_si128((const __m128i *) (x + i))));
    if (i < n) {
        float buf[8];
        _mm256_storeu_ps(buf, bf16x8_to_f32(load_u16_tail(x + i, n - i)));
        memcpy(y + i, buf, (size_t) (n - i) * sizeof(float));
    }
}

static void bf16_from_float(const float * x, void * vy, int64_t n) {
    uint16_t * y = (uint16_t *) vy;
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm_storeu_si128((__m128i *) (y + i), f32x8_to_bf16(_mm256_loadu_ps(x + i)));
    if (i < n) {
        uint16_t buf[8];
        _mm_storeu_si128((__m128i *) buf, f32x8_to_bf16(load_f32_tail(x + i, n - i)));
        memcpy(y + i, buf, (size_t) (n - i) * sizeof(uint16_t));
    }
}

static inline __m256 ld_bf16(const uint16_t * p) { return bf16x8_to_f32(_mm_loadu_si128((const __m128i *) p)); }

static void bf16_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const uint16_t * x = (const uint16_t *) vx;
    const uint16_t * y = (const uint16_t *) vy;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_fmadd_ps(ld_bf16(x + i), ld_bf16(y + i), a0);
        a1 = _mm256_fmadd_ps(ld_bf16(x + i + 8), ld_bf16(y + i + 8), a1);
        a2 = _mm256_fmadd_ps(ld_bf16(x + i + 16), ld_bf16(y + i + 16), a2);
        a3 = _mm256_fmadd_ps(ld_bf16(x + i + 24), ld_bf16(y + i + 24), a3);
    }
    for (; i + 8 <= n; i += 8) a0 = _mm256_fmadd_ps(ld_bf16(x + i), ld_bf16(y + i), a0);
    if (i < n) a1 = _mm256_fmadd_ps(bf16x8_to_f32(load_u16_tail(x + i, n - i)), bf16x8_to_f32(load_u16_tail(y + i, n - i)), a1);
    *s = hsum_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static void bf16_axpy(int64_t n, float a, const void * vx, float * y) {
    const uint16_t * x = (const uint16_t *) vx;
    const __m256 va = _mm256_set1_ps(a);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, ld_bf16(x + i), _mm256_loadu_ps(y + i)));
    if (i < n) {
        float buf[8];
        _mm256_storeu_ps(buf, _mm256_fmadd_ps(va, bf16x8_to_f32(load_u16_tail(x + i, n - i)), load_f32_tail(y + i, n - i)));
        memcpy(y + i, buf, (size_t) (n - i) * sizeof(float));
    }
}

// ---- float-like gemm ------------------------------------------------------------------------------------------
// R weight rows × T activation rows, 8 elements at a time; every loaded and widened vector is used R or T times.
// The last n % 8 elements go through zero-padded buffers.

// Row loaders and weight-block loaders are types (template arguments); the anonymous namespace keeps their member
// functions out of the linker's view (another file may use the same names with other instruction sets).
namespace {
struct f32_row {
    static inline __m256 load(const void * p, int64_t i) { return _mm256_loadu_ps((const float *) p + i); }
    static inline __m256 tail(const void * p, int64_t i, int64_t k) { return load_f32_tail((const float *) p + i, k); }
    static const size_t size = 4;
};
struct f16_row {
    static inline __m256 load(const void * p, int64_t i) { return ld_f16((const uint16_t *) p + i); }
    static inline __m256 tail(const void * p, int64_t i, int64_t k) { return _mm256_cvtph_ps(load_u16_tail((const uint16_t *) p + i, k)); }
    static const size_t size = 2;
};
struct bf16_row {
    static inline __m256 load(const void * p, int64_t i) { return ld_bf16((const uint16_t *) p + i); }
    static inline __m256 tail(const void * p, int64_t i, int64_t k) { return bf16x8_to_f32(load_u16_tail((const uint16_t *) p + i, k)); }
    static const size_t size = 2;
};
}  // namespace

template <typename L, int R, int T>
static void float_tile(int64_t n, const uint8_t * w, size_t ws, const uint8_t * a, size_t as, float * y, int64_t ys) {
    __m256 acc[R][T];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 wv[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) wv[r] = L::load(w + r * ws, i);
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
            const __m256 av = L::load(a + t * as, i);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], av, acc[r][t]);
        }
    }
    if (i < n) {
        __m256 wv[R];
        for (int r = 0; r < R; ++r) wv[r] = L::tail(w + r * ws, i, n - i);
        for (int t = 0; t < T; ++t) {
            const __m256 av = L::tail(a + t * as, i, n - i);
            for (int r = 0; r < R; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], av, acc[r][t]);
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) y[t * ys + r] = hsum_ps(acc[r][t]);
}

// ---- Q8_0 -----------------------------------------------------------------------------------------------------

static void q8_0_to_float(const void * vx, float * y, int64_t n) {
    const gl_block_q8_0 * x = (const gl_block_q8_0 *) vx;
    for (int64_t b = 0; b < n / GL_QK8_0; ++b) {
        const __m256 d = _mm256_set1_ps(h2f(x[b].d));
#pragma GCC unroll 4
        for (int j = 0; j < GL_QK8_0; j += 8) {
            const __m256i q = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *) (x[b].qs + j)));
            _mm256_storeu_ps(y + b * GL_QK8_0 + j, _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
        }
    }
}

// roundf of 8 floats: half away from zero. t - trunc(t) is exact, so the tie test is exact.
static inline __m256i round_half_away(__m256 t) {
    const __m256 tr = _mm256_round_ps(t, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 frac = _mm256_andnot_ps(sign, _mm256_sub_ps(t, tr));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 one = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(t, sign));
    return _mm256_cvttps_epi32(_mm256_add_ps(tr, _mm256_and_ps(up, one)));
}

// The activation quantizer, byte-identical to q8_0_from_float: d = amax / 127 (a division, as there), the scale
// stored as fp16, q = roundf(x * (1/d)) with the unrounded d.
static void q8_0_from_float(const float * x, void * vy, int64_t n) {
    gl_block_q8_0 * y = (gl_block_q8_0 *) vy;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < n / GL_QK8_0; ++b) {
        const float * xb = x + b * GL_QK8_0;
        __m256 v[4];
        __m256 m = _mm256_setzero_ps();
        for (int k = 0; k < 4; ++k) {
            v[k] = _mm256_loadu_ps(xb + 8 * k);
            m = _mm256_max_ps(_mm256_andnot_ps(sign, v[k]), m);  // NaN lanes leave m alone, as fmaxf does
        }
        const float amax = hmax_ps(m);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; ++k) q[k] = round_half_away(opaque(_mm256_mul_ps(v[k], vid)));
        // int32 -> int8 by keeping the low byte, as the scalar (int8_t) cast of the 32-bit conversion does (finite
        // values are within [-127, 127]; a NaN or an overflowed x * id gives 0x80000000 there and here, so 0).
        // The packs work per 128-bit lane; the permute restores the order.
        const __m256i lo = _mm256_set1_epi32(0xff);
        const __m256i p = _mm256_packus_epi16(_mm256_packus_epi32(_mm256_and_si256(q[0], lo), _mm256_and_si256(q[1], lo)),
                                              _mm256_packus_epi32(_mm256_and_si256(q[2], lo), _mm256_and_si256(q[3], lo)));
        _mm256_storeu_si256((__m256i *) y[b].qs, _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7)));
    }
}

static void q8_0_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const gl_block_q8_0 * x = (const gl_block_q8_0 *) vx;
    const gl_block_q8_0 * y = (const gl_block_q8_0 *) vy;
    const int64_t nb = n / GL_QK8_0;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i p0 = dot_i8(_mm256_loadu_si256((const __m256i *) x[b].qs), _mm256_loadu_si256((const __m256i *) y[b].qs));
        const __m256i p1 = dot_i8(_mm256_loadu_si256((const __m256i *) x[b + 1].qs), _mm256_loadu_si256((const __m256i *) y[b + 1].qs));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(h2f(x[b + 1].d) * h2f(y[b + 1].d)), a1);
    }
    if (b < nb) {
        const __m256i p0 = dot_i8(_mm256_loadu_si256((const __m256i *) x[b].qs), _mm256_loadu_si256((const __m256i *) y[b].qs));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), a0);
    }
    *s = hsum_ps(_mm256_add_ps(a0, a1));
}

// ---- Q4_0 -----------------------------------------------------------------------------------------------------

static void q4_0_to_float(const void * vx, float * y, int64_t n) {
    const gl_block_q4_0 * x = (const gl_block_q4_0 *) vx;
    for (int64_t b = 0; b < n / GL_QK4_0; ++b) {
        const __m256 d = _mm256_set1_ps(h2f(x[b].d));
        const __m256i q = q4_unpack(x[b].qs);
        const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
        float * yb = y + b * GL_QK4_0;
        _mm256_storeu_ps(yb + 0, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
        _mm256_storeu_ps(yb + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
        _mm256_storeu_ps(yb + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
        _mm256_storeu_ps(yb + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
    }
}

static void q4_0_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const gl_block_q4_0 * x = (const gl_block_q4_0 *) vx;
    const gl_block_q8_0 * y = (const gl_block_q8_0 *) vy;
    const int64_t nb = n / GL_QK4_0;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i p0 = dot_i8(q4_unpack(x[b].qs), _mm256_loadu_si256((const __m256i *) y[b].qs));
        const __m256i p1 = dot_i8(q4_unpack(x[b + 1].qs), _mm256_loadu_si256((const __m256i *) y[b + 1].qs));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(h2f(x[b + 1].d) * h2f(y[b + 1].d)), a1);
    }
    if (b < nb) {
        const __m256i p0 = dot_i8(q4_unpack(x[b].qs), _mm256_loadu_si256((const __m256i *) y[b].qs));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(h2f(x[b].d) * h2f(y[b].d)), a0);
    }
    *s = hsum_ps(_mm256_add_ps(a0, a1));
}

// ---- quantized gemm -------------------------------------------------------------------------------------------
// R weight rows × T activation rows per tile, all blocks of the row: each weight block is loaded (and for Q4_0
// unpacked) once and used against T activation blocks, each activation block against R weight blocks.

namespace {
struct q8_0_w {
    typedef gl_block_q8_0 block;
    static inline __m256i load(const block & b) { return _mm256_loadu_si256((const __m256i *) b.qs); }
};
struct q4_0_w {
    typedef gl_block_q4_0 block;
    static inline __m256i load(const block & b) { return q4_unpack(b.qs); }
};
}  // namespace

template <typename W, int R, int T>
static void quant_tile(int64_t n, const uint8_t * w, size_t ws, const uint8_t * a, size_t as, float * y, int64_t ys) {
    typedef typename W::block wblock;
    const int64_t nb = n / GL_QK8_0;
    __m256 acc[R][T];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        __m256i xv[R], xa[R];
        float dr[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const wblock & blk = ((const wblock *) (w + r * ws))[b];
            xv[r] = W::load(blk);
            xa[r] = _mm256_sign_epi8(xv[r], xv[r]);
            dr[r] = h2f(blk.d);
        }
#pragma GCC unroll 8
        for (int t = 0; t < T; ++t) {
            const gl_block_q8_0 & yb = ((const gl_block_q8_0 *) (a + t * as))[b];
            const __m256i yv = _mm256_loadu_si256((const __m256i *) yb.qs);
            const float dt = h2f(yb.d);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const __m256i p = dot_i8_abs(xa[r], xv[r], yv);
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dr[r] * dt), acc[r][t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) y[t * ys + r] = hsum_ps(acc[r][t]);
}

// ---- tile dispatch --------------------------------------------------------------------------------------------

typedef void (*tile_fn)(int64_t n, const uint8_t * w, size_t ws, const uint8_t * a, size_t as, float * y, int64_t ys);

// Every tile shape up to 4 × 4, so the edges of the output get exact-size tiles of the same kernel.
#define TILE_ROW(K, L, R) {K<L, R, 1>, K<L, R, 2>, K<L, R, 3>, K<L, R, 4>}
#define TILES(K, L) {TILE_ROW(K, L, 1), TILE_ROW(K, L, 2), TILE_ROW(K, L, 3), TILE_ROW(K, L, 4)}

static const tile_fn k_tiles_f32[4][4] = TILES(float_tile, f32_row);
static const tile_fn k_tiles_f16[4][4] = TILES(float_tile, f16_row);
static const tile_fn k_tiles_bf16[4][4] = TILES(float_tile, bf16_row);
static const tile_fn k_tiles_q8_0[4][4] = TILES(quant_tile, q8_0_w);
static const tile_fn k_tiles_q4_0[4][4] = TILES(quant_tile, q4_0_w);

// Walks the nr × nt output in tiles of at most R × T: tokens outside, rows inside, so the T activation rows stay
// in L1 while the chunk's weight rows (ops.cpp hands out 16 at a time) pass by.
static inline void gemm_tiled(const tile_fn (*tiles)[4], int64_t R, int64_t T, int64_t n, int64_t nr, int64_t nt, const void * w,
                              size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    for (int64_t t0 = 0; t0 < nt; t0 += T) {
        const int64_t tt = nt - t0 < T ? nt - t0 : T;
        for (int64_t r0 = 0; r0 < nr; r0 += R) {
            const int64_t rr = nr - r0 < R ? nr - r0 : R;
            tiles[rr - 1][tt - 1](n, (const uint8_t *) w + r0 * ws, ws, (const uint8_t *) act + t0 * as, as, y + t0 * ys + r0, ys);
        }
    }
}

static void f32_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_f32, 4, 3, n, nr, nt, w, ws, act, as, y, ys);
}
static void f16_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_f16, 4, 3, n, nr, nt, w, ws, act, as, y, ys);
}
static void bf16_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_bf16, 4, 3, n, nr, nt, w, ws, act, as, y, ys);
}
static void q8_0_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_q8_0, 4, 2, n, nr, nt, w, ws, act, as, y, ys);
}
static void q4_0_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_q4_0, 4, 2, n, nr, nt, w, ws, act, as, y, ys);
}

// ---- float ops ------------------------------------------------------------------------------------------------

static void rms_norm(const float * x, const float * weight, int64_t n, float eps, float * y) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
        a0 = _mm256_fmadd_ps(v0, v0, a0);
        a1 = _mm256_fmadd_ps(v1, v1, a1);
    }
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    float sum = hsum_ps(_mm256_add_ps(a0, a1));
    for (; i < n; ++i) sum += x[i] * x[i];
    const float mean = sum / (float) n;
    const float scale = 1.0f / _mm_cvtss_f32(_mm_sqrt_ss(_mm_set_ss(mean + eps)));
    const __m256 vs = _mm256_set1_ps(scale);
    i = 0;
    if (weight) {
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), _mm256_loadu_ps(weight + i)));
        for (; i < n; ++i) y[i] = (x[i] * scale) * weight[i];
    } else {
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), vs));
        for (; i < n; ++i) y[i] = x[i] * scale;
    }
}

// x = softmax(x * scale): max of the scaled values, e^(x·scale - max) stored and summed, then normalised.
static void softmax(float * x, int64_t n, float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 m = _mm256_set1_ps(-__builtin_inff());
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs), m);
    if (i < n) {
        // padding lanes hold -inf so they never win
        __m256 v = _mm256_mul_ps(load_f32_tail(x + i, n - i), vs);
        const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        const __m256 valid = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int) (n - i)), lane));
        v = _mm256_blendv_ps(_mm256_set1_ps(-__builtin_inff()), v, valid);
        m = _mm256_max_ps(v, m);
    }
    const __m256 vmax = _mm256_set1_ps(hmax_ps(m));
    __m256 sum = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        const __m256 e = exp_ps(_mm256_sub_ps(opaque(_mm256_mul_ps(_mm256_loadu_ps(x + i), vs)), vmax));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float total = hsum_ps(sum);
    if (i < n) {
        float buf[8];
        _mm256_storeu_ps(buf, exp_ps(_mm256_sub_ps(opaque(_mm256_mul_ps(load_f32_tail(x + i, n - i), vs)), vmax)));
        for (int64_t k = 0; k < n - i; ++k) {
            x[i + k] = buf[k];
            total += buf[k];
        }
    }
    const __m256 inv = _mm256_set1_ps(1.0f / total);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), inv));
    for (; i < n; ++i) x[i] *= _mm256_cvtss_f32(inv);
}

// silu(g) * u = g / (1 + e^-g) * u
static inline __m256 swiglu8(__m256 g, __m256 u) {
    const __m256 e = exp_ps(_mm256_xor_ps(g, _mm256_set1_ps(-0.0f)));
    return _mm256_mul_ps(_mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e)), u);
}

static void swiglu(const float * gate, const float * up, int64_t n, float * out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, swiglu8(_mm256_loadu_ps(gate + i), _mm256_loadu_ps(up + i)));
    if (i < n) {
        float buf[8];
        _mm256_storeu_ps(buf, swiglu8(load_f32_tail(gate + i, n - i), load_f32_tail(up + i, n - i)));
        memcpy(out + i, buf, (size_t) (n - i) * sizeof(float));
    }
}

// ---- the tables -----------------------------------------------------------------------------------------------

const gl_type_kernels gl_kernels_avx2[GL_TYPE_COUNT] = {
    /* F32  */ {f32_vec_dot, nullptr, nullptr, f32_gemm, f32_axpy},
    /* F16  */ {f16_vec_dot, f16_from_float, f16_to_float, f16_gemm, f16_axpy},
    /* BF16 */ {bf16_vec_dot, bf16_from_float, bf16_to_float, bf16_gemm, bf16_axpy},
    /* Q8_0 */ {q8_0_vec_dot, q8_0_from_float, q8_0_to_float, q8_0_gemm, nullptr},
    /* Q4_0 */ {q4_0_vec_dot, nullptr, q4_0_to_float, q4_0_gemm, nullptr},
};
static_assert(GL_TYPE_COUNT == 5, "add the new type's AVX2 kernels");

const gl_float_kernels gl_float_avx2 = {dot_f32, rms_norm, softmax, swiglu};
