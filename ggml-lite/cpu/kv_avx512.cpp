// KV-cache kernels at the AVX-512 level (see ggml-lite/kv.h): q·k and p·v over F16 rows, p·v over quantized value
// rows, 16 lanes at a time.
// Everything else falls back to the AVX2 entries, then to the scalar ones.
#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"
#include "ggml-lite/kv.h"
#include "ggml-lite/ops.h"

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

// F16 rows (the default cache), as the attention of a batch runs them: q widened once and kept, every key row
// 16 lanes at a time with one FMA chain and one horizontal sum; for p·v the output head stays in registers (64
// values at a time) across all the rows, each p rounded through f16 as the scalar reference does.
inline __mmask16 lanes(int64_t left) { return left >= 16 ? (__mmask16) 0xFFFF : left <= 0 ? (__mmask16) 0 : (__mmask16) ((1u << left) - 1); }

// r lane i = the sum of v[i]'s 16 lanes: a tree of in-lane unpacks and 128-bit lane shuffles (about 30 instructions
// for 16 sums instead of a full horizontal reduction each).
inline __m512 hsum16(const __m512 v[16]) {
    __m512 a[8], b[4];
    for (int i = 0; i < 8; ++i) a[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    for (int i = 0; i < 4; ++i) {
        const __m512d x = _mm512_castps_pd(a[2 * i]), y = _mm512_castps_pd(a[2 * i + 1]);
        b[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)), _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    const __m512 d01 = _mm512_add_ps(_mm512_shuffle_f32x4(b[0], b[1], 0x88), _mm512_shuffle_f32x4(b[0], b[1], 0xDD));
    const __m512 d23 = _mm512_add_ps(_mm512_shuffle_f32x4(b[2], b[3], 0x88), _mm512_shuffle_f32x4(b[2], b[3], 0xDD));
    return _mm512_add_ps(_mm512_shuffle_f32x4(d01, d23, 0x88), _mm512_shuffle_f32x4(d01, d23, 0xDD));
}

void qk_f16(int64_t head_dim, int64_t n_kv, const void * q, const void * k, size_t stride, float * s) {
    alignas(64) float qf[GL_ATTENTION_MAX_HEAD_DIM];
    const int64_t nc = (head_dim + 15) / 16;
    for (int64_t c = 0; c < nc; ++c)
        _mm512_store_ps(qf + 16 * c, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes(head_dim - 16 * c), (const uint16_t *) q + 16 * c)));
    auto row_acc = [&](const uint8_t * row) {
        __m512 acc = _mm512_setzero_ps();
        for (int64_t c = 0; c < nc; ++c)
            acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes(head_dim - 16 * c), (const uint16_t *) row + 16 * c)),
                                  _mm512_load_ps(qf + 16 * c), acc);
        return acc;
    };
    const uint8_t * row = (const uint8_t *) k;
    int64_t j = 0;
    for (; j + 16 <= n_kv; j += 16) {  // 16 keys, one tree of horizontal sums
        __m512 acc[16];
        for (int r = 0; r < 16; ++r) acc[r] = row_acc(row + (size_t) r * stride);
        _mm512_storeu_ps(s + j, hsum16(acc));
        row += 16 * stride;
    }
    for (; j < n_kv; ++j, row += stride) s[j] = _mm512_reduce_add_ps(row_acc(row));
}

void pv_f16(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out) {
    for (int64_t c0 = 0; c0 < head_dim; c0 += 64) {
        const __mmask16 m0 = lanes(head_dim - c0), m1 = lanes(head_dim - c0 - 16), m2 = lanes(head_dim - c0 - 32), m3 = lanes(head_dim - c0 - 48);
        __m512 a0 = _mm512_maskz_loadu_ps(m0, out + c0), a1 = _mm512_maskz_loadu_ps(m1, out + c0 + 16);
        __m512 a2 = _mm512_maskz_loadu_ps(m2, out + c0 + 32), a3 = _mm512_maskz_loadu_ps(m3, out + c0 + 48);
        const uint16_t * row = (const uint16_t *) ((const uint8_t *) v) + c0;
        for (int64_t j = 0; j < n_kv; ++j, row = (const uint16_t *) ((const uint8_t *) row + stride)) {
            const __m512 vp = _mm512_set1_ps(h2f(_cvtss_sh(p[j], _MM_FROUND_TO_NEAREST_INT)));
            a0 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m0, row)), vp, a0);
            a1 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m1, row + 16)), vp, a1);
            a2 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m2, row + 32)), vp, a2);
            a3 = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m3, row + 48)), vp, a3);
        }
        _mm512_mask_storeu_ps(out + c0, m0, a0);
        _mm512_mask_storeu_ps(out + c0 + 16, m1, a1);
        _mm512_mask_storeu_ps(out + c0 + 32, m2, a2);
        _mm512_mask_storeu_ps(out + c0 + 48, m3, a3);
    }
}

}  // namespace

const gl_kv_level_entry gl_kv_avx512[] = {
    {GL_TYPE_F16, {nullptr, qk_f16, pv_f16}},
    {GL_TYPE_Q8_0, {nullptr, nullptr, pv_q8_0}},
    {GL_TYPE_Q4_0, {nullptr, nullptr, pv_q4_0}},
};
const size_t gl_kv_avx512_count = sizeof(gl_kv_avx512) / sizeof(gl_kv_avx512[0]);
