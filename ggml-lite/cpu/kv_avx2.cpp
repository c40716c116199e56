// KV-cache kernels at the AVX2 level (AVX2 + FMA + F16C; see ggml-lite/kv.h): q·k and p·v over F16 rows, and p·v
// over quantized value rows (dequantize, then out += p · v). Everything else falls back to the scalar entries, which
// read float rows through this level's weight kernels.
#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"
#include "ggml-lite/kv.h"
#include "ggml-lite/ops.h"

namespace {

// One 32-value block's outputs are held in registers across all rows (rows are strided, the block's outputs are not).
void pv_q8_0(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out) {
    for (int64_t i = 0; i < head_dim / 32; ++i) {
        __m256 acc[4];
        GL_UNROLL
        for (int r = 0; r < 4; ++r) acc[r] = _mm256_loadu_ps(out + 32 * i + 8 * r);
        const uint8_t * row = (const uint8_t *) v + (size_t) i * 34;
        for (int64_t j = 0; j < n_kv; ++j, row += stride) {
            const __m256 vd = _mm256_set1_ps(h2f(load_u16(row))), vp = _mm256_set1_ps(p[j]);
            GL_UNROLL
            for (int r = 0; r < 4; ++r) {
                const __m128i q8 = _mm_loadl_epi64((const __m128i *) (row + 2 + 8 * r));
                const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q8));
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(q, vd), vp, acc[r]);
            }
        }
        GL_UNROLL
        for (int r = 0; r < 4; ++r) _mm256_storeu_ps(out + 32 * i + 8 * r, acc[r]);
    }
}

void pv_q4_0(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out) {
    const __m128i low = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    for (int64_t i = 0; i < head_dim / 32; ++i) {
        __m256 acc[4];
        GL_UNROLL
        for (int r = 0; r < 4; ++r) acc[r] = _mm256_loadu_ps(out + 32 * i + 8 * r);
        const uint8_t * row = (const uint8_t *) v + (size_t) i * 18;
        for (int64_t j = 0; j < n_kv; ++j, row += stride) {
            const __m256 vd = _mm256_set1_ps(h2f(load_u16(row))), vp = _mm256_set1_ps(p[j]);
            const __m128i bytes = _mm_loadu_si128((const __m128i *) (row + 2));
            // values 0..15 from the low nibbles, 16..31 from the high ones, each minus 8
            const __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, low), eight);
            const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), low), eight);
            const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
            GL_UNROLL
            for (int r = 0; r < 4; ++r) {
                const __m256 q = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[r]));
                acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(q, vd), vp, acc[r]);
            }
        }
        GL_UNROLL
        for (int r = 0; r < 4; ++r) _mm256_storeu_ps(out + 32 * i + 8 * r, acc[r]);
    }
}

// F16 rows (the default cache): q widened once, each key row 8 lanes at a time with one FMA chain and a horizontal
// sum; for p·v the output head stays in registers (32 values at a time) across all the rows, each p rounded through
// f16 as the scalar reference does. A head_dim that is not a multiple of 8 finishes in scalar code.
inline float hsum8(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

void qk_f16(int64_t head_dim, int64_t n_kv, const void * q, const void * k, size_t stride, float * s) {
    alignas(32) float qf[GL_ATTENTION_MAX_HEAD_DIM];
    const uint16_t * qh = (const uint16_t *) q;
    for (int64_t e = 0; e < head_dim; ++e) qf[e] = h2f(qh[e]);
    const int64_t nv = head_dim / 8 * 8;
    const uint8_t * row = (const uint8_t *) k;
    for (int64_t j = 0; j < n_kv; ++j, row += stride) {
        const uint16_t * kr = (const uint16_t *) row;
        __m256 acc = _mm256_setzero_ps();
        for (int64_t e = 0; e < nv; e += 8) acc = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (kr + e))), _mm256_load_ps(qf + e), acc);
        float t = hsum8(acc);
        for (int64_t e = nv; e < head_dim; ++e) t += h2f(kr[e]) * qf[e];
        s[j] = t;
    }
}

void pv_f16(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out) {
    const int64_t nv = head_dim / 32 * 32;
    for (int64_t c0 = 0; c0 < nv; c0 += 32) {
        __m256 a[4];
        GL_UNROLL
        for (int r = 0; r < 4; ++r) a[r] = _mm256_loadu_ps(out + c0 + 8 * r);
        const uint8_t * row = (const uint8_t *) v + 2 * c0;
        for (int64_t j = 0; j < n_kv; ++j, row += stride) {
            const __m256 vp = _mm256_set1_ps(h2f(_cvtss_sh(p[j], _MM_FROUND_TO_NEAREST_INT)));
            GL_UNROLL
            for (int r = 0; r < 4; ++r) a[r] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *) (row + 16 * r))), vp, a[r]);
        }
        GL_UNROLL
        for (int r = 0; r < 4; ++r) _mm256_storeu_ps(out + c0 + 8 * r, a[r]);
    }
    if (nv == head_dim) return;
    const uint8_t * row = (const uint8_t *) v;
    for (int64_t j = 0; j < n_kv; ++j, row += stride) {
        const float pj = h2f(_cvtss_sh(p[j], _MM_FROUND_TO_NEAREST_INT));
        const uint16_t * vr = (const uint16_t *) row;
        for (int64_t e = nv; e < head_dim; ++e) out[e] += pj * h2f(vr[e]);
    }
}

}  // namespace

const gl_kv_level_entry gl_kv_avx2[] = {
    {GL_TYPE_F16, {nullptr, qk_f16, pv_f16}},
    {GL_TYPE_Q8_0, {nullptr, nullptr, pv_q8_0}},
    {GL_TYPE_Q4_0, {nullptr, nullptr, pv_q4_0}},
};
const size_t gl_kv_avx2_count = sizeof(gl_kv_avx2) / sizeof(gl_kv_avx2[0]);
