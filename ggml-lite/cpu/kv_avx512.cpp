// KV-cache kernels at the AVX-512 level (see ggml-lite/kv.h): p·v over quantized value rows, 16 lanes at a time.
// Everything else falls back to the AVX2 entries, then to the scalar ones.
#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"
#include "ggml-lite/kv.h"

// GCC 12 reports the _mm512_undefined_* operands inside its own intrinsics as uninitialized (a false positive).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

// One 32-value block's outputs are held in two registers across all rows: out += (q · d) · p, as the scalar
// reference (with a fused multiply-add).
void pv_q8_0(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out) {
    for (int64_t i = 0; i < head_dim / 32; ++i) {
        __m512 acc0 = _mm512_loadu_ps(out + 32 * i), acc1 = _mm512_loadu_ps(out + 32 * i + 16);
        const uint8_t * row = (const uint8_t *) v + (size_t) i * 34;
        for (int64_t j = 0; j < n_kv; ++j, row += stride) {
            const __m512 vd = _mm512_set1_ps(h2f(load_u16(row))), vp = _mm512_set1_ps(p[j]);
            const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *) (row + 2))));
            const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *) (row + 18))));
            acc0 = _mm512_fmadd_ps(_mm512_mul_ps(q0, vd), vp, acc0);
            acc1 = _mm512_fmadd_ps(_mm512_mul_ps(q1, vd), vp, acc1);
        }
        _mm512_storeu_ps(out + 32 * i, acc0);
        _mm512_storeu_ps(out + 32 * i + 16, acc1);
    }
}

void pv_q4_0(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out) {
    const __m128i low = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    for (int64_t i = 0; i < head_dim / 32; ++i) {
        __m512 acc0 = _mm512_loadu_ps(out + 32 * i), acc1 = _mm512_loadu_ps(out + 32 * i + 16);
        const uint8_t * row = (const uint8_t *) v + (size_t) i * 18;
        for (int64_t j = 0; j < n_kv; ++j, row += stride) {
            const __m512 vd = _mm512_set1_ps(h2f(load_u16(row))), vp = _mm512_set1_ps(p[j]);
            const __m128i bytes = _mm_loadu_si128((const __m128i *) (row + 2));
            // values 0..15 from the low nibbles, 16..31 from the high ones, each minus 8
            const __m128i lo = _mm_sub_epi8(_mm_and_si128(bytes, low), eight);
            const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(bytes, 4), low), eight);
            const __m512 q0 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(lo));
            const __m512 q1 = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(hi));
            acc0 = _mm512_fmadd_ps(_mm512_mul_ps(q0, vd), vp, acc0);
            acc1 = _mm512_fmadd_ps(_mm512_mul_ps(q1, vd), vp, acc1);
        }
        _mm512_storeu_ps(out + 32 * i, acc0);
        _mm512_storeu_ps(out + 32 * i + 16, acc1);
    }
}

}  // namespace

const gl_kv_level_entry gl_kv_avx512[] = {
    {GL_TYPE_Q8_0, {nullptr, nullptr, pv_q8_0}},
    {GL_TYPE_Q4_0, {nullptr, nullptr, pv_q4_0}},
};
const size_t gl_kv_avx512_count = sizeof(gl_kv_avx512) / sizeof(gl_kv_avx512[0]);
