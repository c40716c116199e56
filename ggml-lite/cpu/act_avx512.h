// Q8_0 activation helpers shared by the AVX-512 kernel files (avx512.cpp, x16_avx512.cpp, vq_avx512.cpp). As
// simd_common.h: an anonymous namespace, so each kernel file gets its own copy built with its own -m flags. Include
// only from ggml-lite/cpu/*.cpp built with AVX-512 F/BW/VL/VNNI, after simd_common.h.
#pragma once

#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"
#include "ggml-lite/types.h"

namespace {

// ---- Q8_0 activations: per-block byte sums and scales ---------------------------------------------------------

// For blocks a[0..nb): ncorr[b] = -(sum of the block's 32 codes) << shift, dy[b] = its scale as fp32.
void act_sums(const gl_block_q8_0 * a, int64_t nb, int shift, int32_t * ncorr, float * dy) {
    const uint8_t * p = (const uint8_t *) a;
    const __m512i ones = _mm512_set1_epi8(1);
    // lane 4l+i of the tree's result holds block (l & 1) + 2i + 8 (l >> 1); this puts them back in order.
    const __m512i perm = _mm512_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15);
    int64_t b = 0;
    // 16 blocks at a time: dot with ones (4-byte sums), then a transpose-and-add tree down to one sum per lane.
    for (; b + 16 <= nb; b += 16) {
        const uint8_t * q = p + b * 34 + 2;
        __m512i s[8];
        GL_UNROLL
        for (int m = 0; m < 8; ++m) {
            __m512i z = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) (q + (2 * m) * 34)));
            z = _mm512_inserti64x4(z, _mm256_loadu_si256((const __m256i *) (q + (2 * m + 1) * 34)), 1);
            s[m] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones, z);
        }
        __m512i pp[4];
        GL_UNROLL
        for (int j = 0; j < 4; ++j)
            pp[j] = _mm512_add_epi32(_mm512_unpacklo_epi32(s[2 * j], s[2 * j + 1]), _mm512_unpackhi_epi32(s[2 * j], s[2 * j + 1]));
        const __m512i q0 = _mm512_add_epi32(_mm512_unpacklo_epi64(pp[0], pp[1]), _mm512_unpackhi_epi64(pp[0], pp[1]));
        const __m512i q1 = _mm512_add_epi32(_mm512_unpacklo_epi64(pp[2], pp[3]), _mm512_unpackhi_epi64(pp[2], pp[3]));
        const __m512i r = _mm512_add_epi32(_mm512_shuffle_i64x2(q0, q1, 0x88), _mm512_shuffle_i64x2(q0, q1, 0xDD));
        _mm512_storeu_si512(ncorr + b, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(_mm512_permutexvar_epi32(perm, r), shift)));
        alignas(32) uint32_t h[8];
        GL_UNROLL
        for (int j = 0; j < 8; ++j) h[j] = (uint32_t) a[b + 2 * j].d | ((uint32_t) a[b + 2 * j + 1].d << 16);
        _mm512_storeu_ps(dy + b, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *) h)));
    }
    const __m256i ones8 = _mm256_set1_epi8(1);
    for (; b < nb; ++b) {
        const __m256i v = _mm256_dpbusd_epi32(_mm256_setzero_si256(), ones8, _mm256_loadu_si256((const __m256i *) a[b].qs));
        __m128i x = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        x = _mm_add_epi32(x, _mm_unpackhi_epi64(x, x));
        x = _mm_add_epi32(x, _mm_shuffle_epi32(x, 1));
        ncorr[b] = -(_mm_cvtsi128_si32(x) * (1 << shift));  // a multiply: shifting a negative sum left is UB before C++20
        dy[b] = h2f(a[b].d);
    }
}

// y[0..16) (+)= v on the lanes of m.
inline void store_rows(float * y, __m512 v, __mmask16 m, bool add) {
    if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, y));
    _mm512_mask_storeu_ps(y, m, v);
}

}  // namespace
