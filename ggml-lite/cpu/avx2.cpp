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

// A block scale in all 8 lanes, from the fp16 table that types.cpp fills at start-up (a data array, not an inline
// function): a broadcast load, no conversion. Same values as F16C for every non-NaN scale.
static inline __m256 bcast_f16(uint16_t h) { return _mm256_broadcast_ss(&gl_fp16_table[h]); }

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

// Row loaders are types (template arguments); the anonymous namespace keeps their member functions out of the
// linker's view (another file may use the same names with other instruction sets).
namespace {
struct f32_row {
    static inline __m256 load(const void * p, int64_t i) { return _mm256_loadu_ps((const float *) p + i); }
    static inline __m256 tail(const void * p, int64_t i, int64_t k) { return load_f32_tail((const float *) p + i, k); }
};
struct f16_row {
    static inline __m256 load(const void * p, int64_t i) { return ld_f16((const uint16_t *) p + i); }
    static inline __m256 tail(const void * p, int64_t i, int64_t k) { return _mm256_cvtph_ps(load_u16_tail((const uint16_t *) p + i, k)); }
};
struct bf16_row {
    static inline __m256 load(const void * p, int64_t i) { return ld_bf16((const uint16_t *) p + i); }
    static inline __m256 tail(const void * p, int64_t i, int64_t k) { return bf16x8_to_f32(load_u16_tail((const uint16_t *) p + i, k)); }
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
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_mul_ps(bcast_f16(x[b].d), bcast_f16(y[b].d)), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_mul_ps(bcast_f16(x[b + 1].d), bcast_f16(y[b + 1].d)), a1);
    }
    if (b < nb) {
        const __m256i p0 = dot_i8(_mm256_loadu_si256((const __m256i *) x[b].qs), _mm256_loadu_si256((const __m256i *) y[b].qs));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_mul_ps(bcast_f16(x[b].d), bcast_f16(y[b].d)), a0);
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
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_mul_ps(bcast_f16(x[b].d), bcast_f16(y[b].d)), a0);
        a1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_mul_ps(bcast_f16(x[b + 1].d), bcast_f16(y[b + 1].d)), a1);
    }
    if (b < nb) {
        const __m256i p0 = dot_i8(q4_unpack(x[b].qs), _mm256_loadu_si256((const __m256i *) y[b].qs));
        a0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_mul_ps(bcast_f16(x[b].d), bcast_f16(y[b].d)), a0);
    }
    *s = hsum_ps(_mm256_add_ps(a0, a1));
}

// ---- quantized gemm -------------------------------------------------------------------------------------------

// Q4_0 × Q8_0 works on pairs of blocks. The activations of a pair are prepared once per call (and shared by every
// weight row of the call) as
//   lo = [y_b[0..15]  | y_b+1[0..15]],  hi = [y_b[16..31] | y_b+1[16..31]]   (matching the weights' nibbles),
//   dy = [d_b ×4 | d_b+1 ×4],           c = -8 · dy · (partial sums of y over 8 elements, 4 per block).
// The weights' 16 code bytes of the two blocks form one register: & 0x0f gives both blocks' low nibbles against lo,
// >> 4 the high nibbles against hi. Codes stay unsigned (0..15) for maddubs, and the offset of 8 is applied in float
// through c: Σ (q - 8) y = Σ q y - 8 Σ y. Per pair and token: 2 maddubs, an add, a madd, a convert and 2 FMAs.
namespace {
struct q4_pair {
    __m256i lo, hi;
    __m256 dy, c;
};
}  // namespace

#define Q4_CHUNK_PAIRS 64  // activations prepared per K chunk: 128 blocks (4096 elements), 8 KiB per token

static inline void q4_prep_pair(__m256i lo, __m256i hi, __m256 dy, q4_pair * out) {
    const __m256i ones8 = _mm256_set1_epi8(1);
    const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(ones8, lo), _mm256_maddubs_epi16(ones8, hi));
    const __m256i s = _mm256_madd_epi16(s16, _mm256_set1_epi16(1));
    out->lo = lo;
    out->hi = hi;
    out->dy = dy;
    out->c = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(s), dy), _mm256_set1_ps(-8.0f));
}

// Prepares blocks [0, nb) of one activation row; an odd last block gets a pair with an empty upper half.
static void q4_prep(const gl_block_q8_0 * y, int64_t nb, q4_pair * out) {
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i lo = _mm256_loadu2_m128i((const __m128i *) y[b + 1].qs, (const __m128i *) y[b].qs);
        const __m256i hi = _mm256_loadu2_m128i((const __m128i *) (y[b + 1].qs + 16), (const __m128i *) (y[b].qs + 16));
        q4_prep_pair(lo, hi, _mm256_blend_ps(bcast_f16(y[b].d), bcast_f16(y[b + 1].d), 0xf0), out + b / 2);
    }
    if (b < nb) {
        const __m256i lo = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) y[b].qs));
        const __m256i hi = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) (y[b].qs + 16)));
        q4_prep_pair(lo, hi, _mm256_blend_ps(bcast_f16(y[b].d), _mm256_setzero_ps(), 0xf0), out + b / 2);
    }
}

// One pair of weight blocks (unpacked codes xl/xh, scales dxp) against one prepared pair.
static inline __m256 q4_pair_dot(__m256i xl, __m256i xh, __m256 dxp, const q4_pair & ap, __m256 acc) {
    const __m256i p16 = _mm256_add_epi16(_mm256_maddubs_epi16(xl, ap.lo), _mm256_maddubs_epi16(xh, ap.hi));
    const __m256i p = _mm256_madd_epi16(p16, _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_cvtepi32_ps(p), ap.dy, ap.c), dxp, acc);
}

// T (1 or 2) activation rows, prepared (a[t], chunk-relative), against one weight row of nb blocks from x; writes
// the T dot products. The weights' codes are unpacked once for the T rows; one row alternates two accumulators so
// the FMA latency does not bound the loop.
template <int T>
static void q4_0_row(const gl_block_q4_0 * x, int64_t nb, const q4_pair * const a[T], float * out) {
    enum { S = T == 1 ? 2 : 1 };
    const __m256i m = _mm256_set1_epi8(0x0f);
    __m256 acc[S][T];
    for (int k = 0; k < S; ++k)
        for (int t = 0; t < T; ++t) acc[k][t] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + 2 * S <= nb; b += 2 * S) {
        // 4 KiB ahead (two lines per 72 bytes of weights): the hardware prefetcher alone leaves this loop stalled
        // on memory, 15 -> 20 GB/s from DRAM on one core; no cost when the weights are in cache
        _mm_prefetch((const char *) (x + b) + 4096, _MM_HINT_T0);
        _mm_prefetch((const char *) (x + b) + 4096 + 64, _MM_HINT_T0);
#pragma GCC unroll 2
        for (int k = 0; k < S; ++k) {
            const gl_block_q4_0 * xb = x + b + 2 * k;
            const __m256i xq = _mm256_loadu2_m128i((const __m128i *) xb[1].qs, (const __m128i *) xb[0].qs);
            const __m256i xl = _mm256_and_si256(xq, m), xh = _mm256_and_si256(_mm256_srli_epi16(xq, 4), m);
            const __m256 dxp = _mm256_blend_ps(bcast_f16(xb[0].d), bcast_f16(xb[1].d), 0xf0);
#pragma GCC unroll 2
            for (int t = 0; t < T; ++t) acc[k][t] = q4_pair_dot(xl, xh, dxp, a[t][b / 2 + k], acc[k][t]);
        }
    }
    for (; b < nb; b += 2) {  // at most one pair left, or one odd last block (its pair has an empty upper half)
        __m256i xq;
        __m256 dxp;
        if (b + 1 < nb) {
            xq = _mm256_loadu2_m128i((const __m128i *) x[b + 1].qs, (const __m128i *) x[b].qs);
            dxp = _mm256_blend_ps(bcast_f16(x[b].d), bcast_f16(x[b + 1].d), 0xf0);
        } else {
            xq = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) x[b].qs));
            dxp = _mm256_blend_ps(bcast_f16(x[b].d), _mm256_setzero_ps(), 0xf0);
        }
        const __m256i xl = _mm256_and_si256(xq, m), xh = _mm256_and_si256(_mm256_srli_epi16(xq, 4), m);
        for (int t = 0; t < T; ++t) acc[0][t] = q4_pair_dot(xl, xh, dxp, a[t][b / 2], acc[0][t]);
    }
    for (int t = 0; t < T; ++t) out[t] = hsum_ps(S > 1 ? _mm256_add_ps(acc[0][t], acc[S - 1][t]) : acc[0][t]);
}

// Batches: 4 tokens at a time. For one pair of weight blocks and 4 tokens, the int16 products (each lane a sum of
// 4 products, |q| <= 15, |y| <= 128: at most 7680) are summed across lanes and tokens in int16 (at most 16
// products, 30720: no overflow) and by one madd, giving one int32 per (token, block):
//   [t0 b, t1 b, t2 b, t3 b | t0 b+1, t1 b+1, t2 b+1, t3 b+1]
// so one convert and two FMAs serve 4 tokens (the multiply ports are what limits this kernel). The prepared quad
// holds dy and c in the same lane order.
namespace {
struct q4_quad {
    __m256i lo[4], hi[4];
    __m256 dy, c;
};
}  // namespace

// Prepares blocks [0, nb) of 4 activation rows (y[t], null for a missing token: zeros).
static void q4_prep_quad(const gl_block_q8_0 * const y[4], int64_t nb, q4_quad * out) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < nb; b += 2) {
        const bool two = b + 1 < nb;
        q4_quad & q = out[b / 2];
        __m256i s[4];
        float d[8];
        for (int t = 0; t < 4; ++t) {
            if (!y[t]) {
                q.lo[t] = q.hi[t] = s[t] = _mm256_setzero_si256();
                d[t] = d[t + 4] = 0.0f;
                continue;
            }
            const gl_block_q8_0 & y0 = y[t][b];
            if (two) {
                const gl_block_q8_0 & y1 = y[t][b + 1];
                q.lo[t] = _mm256_loadu2_m128i((const __m128i *) y1.qs, (const __m128i *) y0.qs);
                q.hi[t] = _mm256_loadu2_m128i((const __m128i *) (y1.qs + 16), (const __m128i *) (y0.qs + 16));
                d[t + 4] = gl_fp16_table[y1.d];
            } else {
                q.lo[t] = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) y0.qs));
                q.hi[t] = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) (y0.qs + 16)));
                d[t + 4] = 0.0f;
            }
            d[t] = gl_fp16_table[y0.d];
            s[t] = _mm256_madd_epi16(_mm256_add_epi16(_mm256_maddubs_epi16(ones8, q.lo[t]), _mm256_maddubs_epi16(ones8, q.hi[t])), ones16);
        }
        // Σ y per (token, block) in the kernel's lane order
        const __m256i sum = _mm256_hadd_epi32(_mm256_hadd_epi32(s[0], s[1]), _mm256_hadd_epi32(s[2], s[3]));
        q.dy = _mm256_loadu_ps(d);
        q.c = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(sum), q.dy), _mm256_set1_ps(-8.0f));
    }
}

// 4 tokens' int16 products -> one int32 per (token, block), lane order [t0 t1 t2 t3 | t0 t1 t2 t3]. Shifts, adds
// and blends rather than hadd (which runs at one per 2 cycles): first each 32-bit pair of lanes becomes [t0 t1]
// and [t2 t3], then each 64-bit group [t0 t1 t2 t3], a byte shuffle puts each token's two groups side by side,
// and madd adds them into int32.
static inline __m256i q4_reduce4(const __m256i * p) {
    const __m256i x0 = _mm256_add_epi16(p[0], _mm256_srli_epi32(p[0], 16)), x1 = _mm256_add_epi16(p[1], _mm256_slli_epi32(p[1], 16));
    const __m256i x2 = _mm256_add_epi16(p[2], _mm256_srli_epi32(p[2], 16)), x3 = _mm256_add_epi16(p[3], _mm256_slli_epi32(p[3], 16));
    const __m256i q01 = _mm256_blend_epi16(x0, x1, 0xaa), q23 = _mm256_blend_epi16(x2, x3, 0xaa);
    const __m256i z01 = _mm256_add_epi16(q01, _mm256_srli_epi64(q01, 32)), z23 = _mm256_add_epi16(q23, _mm256_slli_epi64(q23, 32));
    const __m256i h = _mm256_blend_epi32(z01, z23, 0xaa);
    const __m256i sh = _mm256_setr_epi8(0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15, 0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15);
    return _mm256_madd_epi16(_mm256_shuffle_epi8(h, sh), _mm256_set1_epi16(1));
}

// One weight row (nb blocks from x) against 4 prepared tokens: the 4 dot products.
static __m128 q4_0_quad_row(const gl_block_q4_0 * x, int64_t nb, const q4_quad * a) {
    const __m256i m = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b += 2) {
        const q4_quad & q = a[b / 2];
        __m256i xq;
        __m256 dxp;
        if (__builtin_expect(b + 1 < nb, 1)) {
            xq = _mm256_loadu2_m128i((const __m128i *) x[b + 1].qs, (const __m128i *) x[b].qs);
            dxp = _mm256_blend_ps(bcast_f16(x[b].d), bcast_f16(x[b + 1].d), 0xf0);
        } else {
            xq = _mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) x[b].qs));
            dxp = _mm256_blend_ps(bcast_f16(x[b].d), _mm256_setzero_ps(), 0xf0);
        }
        const __m256i xl = _mm256_and_si256(xq, m), xh = _mm256_and_si256(_mm256_srli_epi16(xq, 4), m);
        __m256i p[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; ++t) p[t] = _mm256_add_epi16(_mm256_maddubs_epi16(xl, q.lo[t]), _mm256_maddubs_epi16(xh, q.hi[t]));
        const __m256 v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q4_reduce4(p)), q.dy, q.c);
        acc = _mm256_fmadd_ps(v, dxp, acc);
    }
    return _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));  // lanes t and t + 4: token t
}

#define Q4_QUAD_CHUNK 64  // pairs of blocks prepared at a time: 128 blocks (4096 elements), 20 KiB

// T (1 or 2) activation rows against nr weight rows, row after row: the weights are read once, as one sequential
// stream, which is what the memory-bound case (decode, small batches) needs; interleaving rows defeats the
// hardware prefetcher there.
template <int T>
static void q4_0_gemv(int64_t nb, int64_t nr, const uint8_t * w, size_t ws, const uint8_t * act, size_t as, float * y, int64_t ys) {
    q4_pair buf[T][Q4_CHUNK_PAIRS];
    const q4_pair * bufs[T];
    for (int t = 0; t < T; ++t) bufs[t] = buf[t];
    for (int64_t k0 = 0; k0 < nb; k0 += 2 * Q4_CHUNK_PAIRS) {
        const int64_t kn = nb - k0 < 2 * Q4_CHUNK_PAIRS ? nb - k0 : 2 * Q4_CHUNK_PAIRS;
        for (int t = 0; t < T; ++t) q4_prep((const gl_block_q8_0 *) (act + t * as) + k0, kn, buf[t]);
        for (int64_t r = 0; r < nr; ++r) {
            float v[T];
            q4_0_row<T>((const gl_block_q4_0 *) (w + r * ws) + k0, kn, bufs, v);
            for (int t = 0; t < T; ++t) y[t * ys + r] = k0 > 0 ? y[t * ys + r] + v[t] : v[t];
        }
    }
}

// Batches go 4 tokens at a time (K in chunks prepared once per group, then row after row: tiles of several rows
// measured no faster, the per-token work dominates). A last group of 3 is padded with an empty token; 1 or 2
// left-over tokens go through q4_0_gemv, which costs less per token than a mostly empty group.
static void q4_0_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    const int64_t nb = n / GL_QK4_0;
    const int64_t n_quad = nt % 4 == 3 ? nt : nt - nt % 4;  // tokens that go in groups of 4
    if (n_quad > 0) {
        q4_quad buf[Q4_QUAD_CHUNK];
        for (int64_t t0 = 0; t0 < n_quad; t0 += 4) {
            const int tt = n_quad - t0 < 4 ? (int) (n_quad - t0) : 4;
            for (int64_t k0 = 0; k0 < nb; k0 += 2 * Q4_QUAD_CHUNK) {
                const int64_t kn = nb - k0 < 2 * Q4_QUAD_CHUNK ? nb - k0 : 2 * Q4_QUAD_CHUNK;
                const gl_block_q8_0 * ys4[4];
                for (int t = 0; t < 4; ++t) ys4[t] = t < tt ? (const gl_block_q8_0 *) ((const uint8_t *) act + (t0 + t) * as) + k0 : nullptr;
                q4_prep_quad(ys4, kn, buf);
                for (int64_t r = 0; r < nr; ++r) {
                    float v[4];
                    _mm_storeu_ps(v, q4_0_quad_row((const gl_block_q4_0 *) ((const uint8_t *) w + r * ws) + k0, kn, buf));
                    for (int t = 0; t < tt; ++t) y[(t0 + t) * ys + r] = k0 > 0 ? y[(t0 + t) * ys + r] + v[t] : v[t];
                }
            }
        }
    }
    const uint8_t * rest = (const uint8_t *) act + n_quad * as;
    if (nt - n_quad == 1) q4_0_gemv<1>(nb, nr, (const uint8_t *) w, ws, rest, as, y + n_quad * ys, ys);
    if (nt - n_quad == 2) q4_0_gemv<2>(nb, nr, (const uint8_t *) w, ws, rest, as, y + n_quad * ys, ys);
}

// Tile of 4 rows × 2 tokens (2×4 .. 4×4 measured within 5% of each other). A 4-token variant folding the tokens
// into one register (as Q4_0 does) measured 15% slower here: Q8_0's int16 products are too large to add across
// tokens before madd, and the 32-bit folding costs more than the converts and FMAs it saves.
#define Q8_R 4
#define Q8_T 2

// Q8_0 × Q8_0: R rows × T tokens per tile, all blocks; the sign trick per (row, token, block), the scale product
// from two broadcast table loads.
template <int R, int T>
static void q8_0_tile(int64_t n, const uint8_t * w, size_t ws, const uint8_t * a, size_t as, float * y, int64_t ys) {
    const int64_t nb = n / GL_QK8_0;
    enum { S = R * T < 4 ? 2 : 1 };  // small tiles alternate two accumulator sets (FMA latency)
    __m256 acc[S][R][T];
#pragma GCC unroll 8
    for (int k = 0; k < S; ++k)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
            for (int t = 0; t < T; ++t) acc[k][r][t] = _mm256_setzero_ps();
    int64_t b = 0;
    for (; b + S <= nb; b += S) {
#pragma GCC unroll 8
        for (int k = 0; k < S; ++k)
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                const gl_block_q8_0 & xb = ((const gl_block_q8_0 *) (w + r * ws))[b + k];
                const __m256i x = _mm256_loadu_si256((const __m256i *) xb.qs);
                const __m256i ax = _mm256_sign_epi8(x, x);
                const __m256 dx = bcast_f16(xb.d);
#pragma GCC unroll 8
                for (int t = 0; t < T; ++t) {
                    const gl_block_q8_0 & yb = ((const gl_block_q8_0 *) (a + t * as))[b + k];
                    const __m256i p = dot_i8_abs(ax, x, _mm256_loadu_si256((const __m256i *) yb.qs));
                    acc[k][r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dx, bcast_f16(yb.d)), acc[k][r][t]);
                }
            }
    }
    for (; b < nb; ++b) {
        for (int r = 0; r < R; ++r) {
            const gl_block_q8_0 & xb = ((const gl_block_q8_0 *) (w + r * ws))[b];
            const __m256i x = _mm256_loadu_si256((const __m256i *) xb.qs);
            const __m256i ax = _mm256_sign_epi8(x, x);
            const __m256 dx = bcast_f16(xb.d);
            for (int t = 0; t < T; ++t) {
                const gl_block_q8_0 & yb = ((const gl_block_q8_0 *) (a + t * as))[b];
                const __m256i p = dot_i8_abs(ax, x, _mm256_loadu_si256((const __m256i *) yb.qs));
                acc[0][r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(dx, bcast_f16(yb.d)), acc[0][r][t]);
            }
        }
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            __m256 v = acc[0][r][t];
            if (S > 1) v = _mm256_add_ps(v, acc[S - 1][r][t]);
            y[t * ys + r] = hsum_ps(v);
        }
}

// ---- tile dispatch --------------------------------------------------------------------------------------------

typedef void (*tile_fn)(int64_t n, const uint8_t * w, size_t ws, const uint8_t * a, size_t as, float * y, int64_t ys);

// Every tile shape up to 4 × 4, so the edges of the output get exact-size tiles of the same kernel.
#define TILE_ROW(K, L, R) {K<L, R, 1>, K<L, R, 2>, K<L, R, 3>, K<L, R, 4>}
#define TILES(K, L) {TILE_ROW(K, L, 1), TILE_ROW(K, L, 2), TILE_ROW(K, L, 3), TILE_ROW(K, L, 4)}
#define QTILE_ROW(K, R) {K<R, 1>, K<R, 2>, K<R, 3>, K<R, 4>}
#define QTILES(K) {QTILE_ROW(K, 1), QTILE_ROW(K, 2), QTILE_ROW(K, 3), QTILE_ROW(K, 4)}

static const tile_fn k_tiles_f32[4][4] = TILES(float_tile, f32_row);
static const tile_fn k_tiles_f16[4][4] = TILES(float_tile, f16_row);
static const tile_fn k_tiles_bf16[4][4] = TILES(float_tile, bf16_row);
static const tile_fn k_tiles_q8_0[4][4] = QTILES(q8_0_tile);

// Walks the nr × nt output in tiles of at most R × T: tokens outside, rows inside, so the T activation rows stay
// in L1 while the chunk's weight rows (ops.cpp hands out 16 at a time) pass by. One token goes row by row through
// the vec_dot (one sequential stream of weights, several accumulators; see q4_0_gemm).
static inline void gemm_tiled(const tile_fn (*tiles)[4], gl_vec_dot_fn dot, int64_t R, int64_t T, int64_t n, int64_t nr, int64_t nt,
                              const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    if (nt == 1) {
        for (int64_t r = 0; r < nr; ++r) dot(n, y + r, (const uint8_t *) w + r * ws, act);
        return;
    }
    for (int64_t t0 = 0; t0 < nt; t0 += T) {
        const int64_t tt = nt - t0 < T ? nt - t0 : T;
        for (int64_t r0 = 0; r0 < nr; r0 += R) {
            const int64_t rr = nr - r0 < R ? nr - r0 : R;
            tiles[rr - 1][tt - 1](n, (const uint8_t *) w + r0 * ws, ws, (const uint8_t *) act + t0 * as, as, y + t0 * ys + r0, ys);
        }
    }
}

static void f32_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_f32, f32_vec_dot, 4, 3, n, nr, nt, w, ws, act, as, y, ys);
}
static void f16_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_f16, f16_vec_dot, 4, 3, n, nr, nt, w, ws, act, as, y, ys);
}
static void bf16_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_bf16, bf16_vec_dot, 4, 3, n, nr, nt, w, ws, act, as, y, ys);
}
static void q8_0_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_tiled(k_tiles_q8_0, q8_0_vec_dot, Q8_R, Q8_T, n, nr, nt, w, ws, act, as, y, ys);
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

// The uniform integer types q<b>_g<g>: ggml-lite/cpu/intq_avx2.cpp (explicitly instantiated there).
template <int B, int G> void gl_intq_avx2_vec_dot(int64_t n, float * s, const void * x, const void * y);
template <int B, int G> void gl_intq_avx2_to_float(const void * x, float * y, int64_t n);
template <int B, int G>
void gl_intq_avx2_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                       float * y, int64_t y_stride);
#define INTQ_ENTRY(T, B, G) {T, {gl_intq_avx2_vec_dot<B, G>, nullptr, gl_intq_avx2_to_float<B, G>, gl_intq_avx2_gemm<B, G>, nullptr}}

// Types without an entry here (zero) use the scalar reference (ggml-lite/cpu.cpp fills the gaps).
static inline int32_t load_i32(const void * p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

// ---- the x16 layout (types.h): 8 rows per register, read as stored ----------------------------------------------
//
// A group block's code dword k of rows 0..7 is the low 32 bytes of its 64-byte chunk k, rows 8..15 the high 32
// (half h). Per half and token, the 8 code dwords meet the activation's dword k, broadcast, in maddubs (unsigned ×
// signed bytes, pairs summed into int16), so lane r of the sum is row r's integer block dot with no shuffles.
// - Q4_0: the codes 0..15 are the unsigned operand as stored; all 8 products sum in int16 (at most 8 · 2 · 15 · 127
//   = 30480) before one widening madd, and the block's offset -8 · sum(activation block) (x16_act_sums, per token
//   and block) is added after.
// - Q8_0: |w| and the activation carrying w's sign (dot_i8_abs's exact trick); each product is widened.
// Decode reads G groups in step, each of G lanes a contiguous run of groups (G sequential streams per thread).

// ncorr[b] = -8 · (sum of the codes of activation block b), b < nb.
static void x16_act_sums(const gl_block_q8_0 * a, int64_t nb, int32_t * ncorr) {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    int64_t b = 0;
    for (; b + 8 <= nb; b += 8) {
        __m256i v[8];
        for (int j = 0; j < 8; ++j)
            v[j] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, _mm256_loadu_si256((const __m256i *) a[b + j].qs)), ones16);
        // hadd tree: lane j of the result (after the cross-lane fix) = sum of v[j].
        const __m256i h01 = _mm256_hadd_epi32(v[0], v[1]), h23 = _mm256_hadd_epi32(v[2], v[3]);
        const __m256i h45 = _mm256_hadd_epi32(v[4], v[5]), h67 = _mm256_hadd_epi32(v[6], v[7]);
        const __m256i q0 = _mm256_hadd_epi32(h01, h23), q1 = _mm256_hadd_epi32(h45, h67);
        // q0 lanes: [s0 s1 s2 s3 | s0 s1 s2 s3] halves (low 128 from the low halves, high from the high halves)
        const __m256i lo = _mm256_permute2x128_si256(q0, q1, 0x20), hi = _mm256_permute2x128_si256(q0, q1, 0x31);
        const __m256i sum = _mm256_add_epi32(lo, hi);
        _mm256_storeu_si256((__m256i *) (ncorr + b), _mm256_mullo_epi32(sum, _mm256_set1_epi32(-8)));
    }
    for (; b < nb; ++b) {
        int32_t sum = 0;
        for (int j = 0; j < 32; ++j) sum += a[b].qs[j];
        ncorr[b] = -8 * sum;
    }
}

struct X16Q4v {
    static constexpr size_t gbs = 16 * sizeof(gl_block_q4_0);
    static constexpr bool codes_unsigned = true;
    // Codes of half h: W[k] pairs with activation dword k (k < 4: values 4k.., k >= 4: 16+4(k-4)..).
    static inline void load(const uint8_t * gb, int h, __m256i W[8]) {
        const __m256i m4 = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 8
        for (int k = 0; k < 4; ++k) {
            const __m256i x = _mm256_loadu_si256((const __m256i *) (gb + 32 + 64 * k + 32 * h));
            W[k] = _mm256_and_si256(x, m4);
            W[4 + k] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
        }
    }
};
struct X16Q8v {
    static constexpr size_t gbs = 16 * sizeof(gl_block_q8_0);
    static constexpr bool codes_unsigned = false;
    static inline void load(const uint8_t * gb, int h, __m256i W[8]) {
#pragma GCC unroll 8
        for (int k = 0; k < 8; ++k) W[k] = _mm256_loadu_si256((const __m256i *) (gb + 32 + 64 * k + 32 * h));
    }
};

static constexpr size_t X16_PREFETCH = 2048;  // bytes ahead of the block being read, in each stream

// Blocks [0, ns) of G groups × T tokens; facc[(g·2 + h)·T + t] lane r += row 8h + r's dot. ncorr: T rows, cs apart
// (Q4_0 only).
template <class Q, int T, int G>
static inline void x16_run(const uint8_t * const gb0[G], int64_t ns, const gl_block_q8_0 * const aq[T], const int32_t * ncorr, int64_t cs,
                           __m256 facc[G * 2 * T]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < ns; ++b) {
#pragma GCC unroll 16
        for (int g = 0; g < G; ++g) {
            const uint8_t * gb = gb0[g] + (size_t) b * Q::gbs;
            if (T <= 4) {
                for (size_t l = 0; l < (Q::gbs + 63) / 64; ++l) _mm_prefetch((const char *) gb + X16_PREFETCH + 64 * l, _MM_HINT_T0);
            }
#pragma GCC unroll 2
            for (int h = 0; h < 2; ++h) {
                __m256i W[8];
                Q::load(gb, h, W);
                const __m256 DX = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (gb + 16 * h)));
#pragma GCC unroll 8
                for (int t = 0; t < T; ++t) {
                    const int8_t * q = aq[t][b].qs;
                    __m256i acc;
                    if (Q::codes_unsigned) {
                        __m256i s0 = _mm256_maddubs_epi16(W[0], _mm256_set1_epi32(load_i32(q)));
                        __m256i s1 = _mm256_maddubs_epi16(W[1], _mm256_set1_epi32(load_i32(q + 4)));
#pragma GCC unroll 8
                        for (int k = 2; k < 8; k += 2) {
                            s0 = _mm256_add_epi16(s0, _mm256_maddubs_epi16(W[k], _mm256_set1_epi32(load_i32(q + 4 * k))));
                            s1 = _mm256_add_epi16(s1, _mm256_maddubs_epi16(W[k + 1], _mm256_set1_epi32(load_i32(q + 4 * k + 4))));
                        }
                        acc = _mm256_add_epi32(_mm256_madd_epi16(_mm256_add_epi16(s0, s1), ones), _mm256_set1_epi32(ncorr[t * cs + b]));
                    } else {
                        acc = _mm256_setzero_si256();
#pragma GCC unroll 8
                        for (int k = 0; k < 8; ++k)
                            acc = _mm256_add_epi32(acc, dot_i8_abs(_mm256_sign_epi8(W[k], W[k]), W[k], _mm256_set1_epi32(load_i32(q + 4 * k))));
                    }
                    const __m256 f = _mm256_mul_ps(_mm256_cvtepi32_ps(acc), DX);
                    __m256 & fa = facc[(g * 2 + h) * T + t];
                    fa = _mm256_fmadd_ps(f, _mm256_broadcast_ss(&gl_fp16_table[aq[t][b].d]), fa);
                }
            }
        }
    }
}

// Groups idx[0..n) over the segment's ns blocks (w: group 0's block 0 of the segment), G at a time, then the rest
// with fewer streams.
template <class Q, int T, int G>
static void x16_list(const int64_t * idx, int64_t n, int64_t ns, const uint8_t * w, size_t gstride, const gl_block_q8_0 * const aq[T],
                     const int32_t * ncorr, int64_t cs, float * y, int64_t y_stride, bool add) {
    int64_t i = 0;
    for (; i + G <= n; i += G) {
        const uint8_t * gb[G];
        __m256 facc[G * 2 * T];
        for (int g = 0; g < G; ++g) gb[g] = w + (size_t) idx[i + g] * gstride;
        for (int j = 0; j < G * 2 * T; ++j) facc[j] = _mm256_setzero_ps();
        x16_run<Q, T, G>(gb, ns, aq, ncorr, cs, facc);
        for (int g = 0; g < G; ++g) {
            for (int h = 0; h < 2; ++h) {
                for (int t = 0; t < T; ++t) {
                    float * yp = y + t * y_stride + idx[i + g] * 16 + 8 * h;
                    __m256 v = facc[(g * 2 + h) * T + t];
                    if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(yp));
                    _mm256_storeu_ps(yp, v);
                }
            }
        }
    }
    if constexpr (G > 1) {
        if (i < n) x16_list<Q, T, G / 2>(idx + i, n - i, ns, w, gstride, aq, ncorr, cs, y, y_stride, add);
    }
}

// T tokens (aq, their blocks from s0) over blocks [s0, s0 + ns) of groups [0, ng), as G lanes that each walk a
// contiguous run of groups, in step.
template <class Q, int T, int G, int64_t SEGB>
static void x16_tokens(int64_t ng, int64_t s0, int64_t ns, const uint8_t * w, size_t gstride, const gl_block_q8_0 * const aq[T], float * y,
                       int64_t y_stride) {
    int32_t ncorr[Q::codes_unsigned ? T * SEGB : 1];
    if (Q::codes_unsigned) {
        for (int t = 0; t < T; ++t) x16_act_sums(aq[t], ns, ncorr + t * SEGB);
    }
    const uint8_t * ws = w + (size_t) s0 * Q::gbs;
    const int64_t per = ng / G, extra = ng % G;
    int64_t idx[G];
    for (int64_t i = 0; i < per; ++i) {
        for (int g = 0; g < G; ++g) idx[g] = g * per + (g < extra ? g : extra) + i;
        x16_list<Q, T, G>(idx, G, ns, ws, gstride, aq, ncorr, SEGB, y, y_stride, s0 > 0);
    }
    for (int64_t g = 0; g < extra; ++g) idx[g] = g * per + g + per;
    x16_list<Q, T, G>(idx, extra, ns, ws, gstride, aq, ncorr, SEGB, y, y_stride, s0 > 0);
}

// Few tokens: segments of X16_DSEG blocks (one for rows up to 16384), each group's blocks in order. More tokens:
// segments of X16_SEG blocks (the call's groups' segment stays in L2) × tiles of 4 tokens.
static constexpr int64_t X16_SEG = 64, X16_DSEG = 512;
template <class Q>
static void gemm_x16(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride, float * y,
                     int64_t y_stride) {
    const int64_t nb = n / 32, ng = nr / 16;
    const uint8_t * wb = (const uint8_t *) w;
    const size_t gstride = 16 * w_stride;
    const int64_t seg = nt <= 4 ? X16_DSEG : X16_SEG;
    for (int64_t s0 = 0; s0 < nb; s0 += seg) {
        const int64_t ns = nb - s0 < seg ? nb - s0 : seg;
        for (int64_t t0 = 0; t0 < nt; t0 += 4) {
            const gl_block_q8_0 * as[4];
            for (int t = 0; t < 4; ++t) as[t] = (const gl_block_q8_0 *) ((const uint8_t *) act + (size_t) (t0 + t < nt ? t0 + t : t0) * act_stride) + s0;
            float * yt = y + t0 * y_stride;
            switch (nt - t0) {
                case 1: x16_tokens<Q, 1, 4, X16_DSEG>(ng, s0, ns, wb, gstride, as, yt, y_stride); break;
                case 2: x16_tokens<Q, 2, 1, X16_DSEG>(ng, s0, ns, wb, gstride, as, yt, y_stride); break;
                case 3: x16_tokens<Q, 3, 1, X16_DSEG>(ng, s0, ns, wb, gstride, as, yt, y_stride); break;
                default: x16_tokens<Q, 4, 1, X16_DSEG>(ng, s0, ns, wb, gstride, as, yt, y_stride); break;
            }
        }
    }
}

static void q4_0_gemm_x16(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_x16<X16Q4v>(n, nr, nt, w, ws, act, as, y, ys);
}
static void q8_0_gemm_x16(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    gemm_x16<X16Q8v>(n, nr, nt, w, ws, act, as, y, ys);
}

// The per-row types: ggml-lite/cpu/rowq_avx2.cpp.
void gl_a8_row_quantize_avx2(const float * x, void * y, int64_t n);
void gl_a8_row_quantize_grid_avx2(const float * x, void * y, int64_t n, float s, int32_t z);
void gl_q3_row_vec_dot_a8_avx2(int64_t n, float * s, const void * x, const void * y);
void gl_q3_row_gemm_a8_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q3_row_vec_dot_f32_avx2(int64_t n, float * s, const void * x, const void * y);
void gl_q3_row_gemm_f32_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q4_row_vec_dot_a8_avx2(int64_t n, float * s, const void * x, const void * y);
void gl_q8_row_vec_dot_a8_avx2(int64_t n, float * s, const void * x, const void * y);
void gl_q4_row_gemm_a8_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q8_row_gemm_a8_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q4_row_vec_dot_f32_avx2(int64_t n, float * s, const void * x, const void * y);
void gl_q8_row_vec_dot_f32_avx2(int64_t n, float * s, const void * x, const void * y);
void gl_q4_row_gemm_f32_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q8_row_gemm_f32_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q4_row_gemm_x16_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q8_row_gemm_x16_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);

static constexpr gl_type_entry<gl_type_kernels> k_entries[] = {
    {GL_TYPE_F32, {f32_vec_dot, nullptr, nullptr, f32_gemm, f32_axpy}},
    {GL_TYPE_F16, {f16_vec_dot, f16_from_float, f16_to_float, f16_gemm, f16_axpy}},
    {GL_TYPE_BF16, {bf16_vec_dot, bf16_from_float, bf16_to_float, bf16_gemm, bf16_axpy}},
    {GL_TYPE_Q8_0, {q8_0_vec_dot, q8_0_from_float, q8_0_to_float, q8_0_gemm, nullptr, q8_0_gemm_x16}},
    {GL_TYPE_Q4_0, {q4_0_vec_dot, nullptr, q4_0_to_float, q4_0_gemm, nullptr, q4_0_gemm_x16}},
    INTQ_ENTRY(GL_TYPE_Q4_G128, 4, 128),
    INTQ_ENTRY(GL_TYPE_Q3_G128, 3, 128),
    INTQ_ENTRY(GL_TYPE_Q2_G128, 2, 128),
    INTQ_ENTRY(GL_TYPE_Q4_G64, 4, 64),
    INTQ_ENTRY(GL_TYPE_Q3_G64, 3, 64),
    INTQ_ENTRY(GL_TYPE_Q2_G64, 2, 64),
    INTQ_ENTRY(GL_TYPE_Q4_G32, 4, 32),
    INTQ_ENTRY(GL_TYPE_Q3_G32, 3, 32),
    INTQ_ENTRY(GL_TYPE_Q2_G32, 2, 32),
    {GL_TYPE_A8_ROW, {nullptr, gl_a8_row_quantize_avx2, nullptr, nullptr, nullptr, nullptr, gl_a8_row_quantize_grid_avx2}},
    {GL_TYPE_Q3_ROW, {gl_q3_row_vec_dot_f32_avx2, nullptr, nullptr, gl_q3_row_gemm_f32_avx2, nullptr}},
    {GL_TYPE_Q3_ROW_A8, {gl_q3_row_vec_dot_a8_avx2, nullptr, nullptr, gl_q3_row_gemm_a8_avx2, nullptr}},
    {GL_TYPE_Q4_ROW, {gl_q4_row_vec_dot_f32_avx2, nullptr, nullptr, gl_q4_row_gemm_f32_avx2, nullptr}},
    {GL_TYPE_Q8_ROW, {gl_q8_row_vec_dot_f32_avx2, nullptr, nullptr, gl_q8_row_gemm_f32_avx2, nullptr}},
    {GL_TYPE_Q4_ROW_A8, {gl_q4_row_vec_dot_a8_avx2, nullptr, nullptr, gl_q4_row_gemm_a8_avx2, nullptr, gl_q4_row_gemm_x16_avx2}},
    {GL_TYPE_Q8_ROW_A8, {gl_q8_row_vec_dot_a8_avx2, nullptr, nullptr, gl_q8_row_gemm_a8_avx2, nullptr, gl_q8_row_gemm_x16_avx2}},
};
#undef INTQ_ENTRY
constexpr gl_type_table<gl_type_kernels> gl_kernels_avx2 = gl_type_table_make(k_entries);
static_assert(!gl_kernels_avx2.dup, "a type is listed twice");

static void add(float * y, const float * x, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; ++i) y[i] += x[i];
}

// Batched attention's two products: ggml-lite/cpu/att_avx2.cpp.
void gl_att_qk_avx2(int64_t nq, int64_t hd, int64_t n, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds);
void gl_att_pv_avx2(int64_t nq, int64_t hd, int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo);

// geglu: the scalar reference (no vectorised tanh yet).
const gl_float_kernels gl_float_avx2 = {dot_f32, rms_norm, softmax, swiglu, nullptr, add, gl_att_qk_avx2, gl_att_pv_avx2};
