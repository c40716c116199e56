// KV-cache kernels at the AVX2 level (AVX2 + FMA + F16C; see ggml-lite/kv.h). Only what the weight kernels lack:
// p·v over quantized value rows (dequantize, then out += p · v). Everything else falls back to the scalar entries,
// which read float rows through this level's weight kernels.
#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"
#include "ggml-lite/kv.h"

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

}  // namespace

const gl_kv_level_entry gl_kv_avx2[] = {
    {GL_TYPE_Q8_0, {nullptr, nullptr, pv_q8_0}},
    {GL_TYPE_Q4_0, {nullptr, nullptr, pv_q4_0}},
};
const size_t gl_kv_avx2_count = sizeof(gl_kv_avx2) / sizeof(gl_kv_avx2[0]);
