// AVX2 + FMA + F16C kernels of the uniform integer types q<b>_g<g> (b = 2, 3, 4; g = 32, 64, 128; block layout at
// gl_block_intq in ggml-lite/types.h). Built with -mavx2 -mfma -mf16c (this file only; see CMakeLists.txt) and used
// only when the CPU has them. Like avx2.cpp: no inline functions from shared headers, no std:: templates; every
// helper has internal linkage, and only the entry points that avx2.cpp's kernel table names are exported.
//
// Against Q8_0 activations, per 32-wide sub-block: Σ d_w (c − z) · d_a a = d_w d_a · (Σ c a − z Σ a). The 32 codes
// are decoded to unsigned bytes (0..15) in element order, so maddubs takes them directly as its unsigned operand;
// z Σ a comes from a second maddubs of the zero point broadcast to bytes, subtracted in int16 (each pair sum is
// (c0 − z) a0 + (c1 − z) a1, |·| <= 2·15·127: no saturation), then madd with ones gives 8 int32 partial sums.
// That is vec_dot. The gemm (what gl_mul_mat calls) prepares each activation row once per call instead: the group
// sums Σ_s d_a,s Σ a (so z costs one scalar FMA per group), and for groups of >= 64 the activations of sub-block
// pairs rearranged to match two sub-blocks' codes decoded into one register pair (see prep_pairs / prep_pairs2).
// to_float is bit-identical to the reference (one product d · (c − z) per element, as in types.cpp).
#include "ggml-lite/cpu.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

namespace {

inline uint16_t rd16(const uint8_t * p) { return (uint16_t) (p[0] | (p[1] << 8)); }

// A block scale in all 8 lanes, from the fp16 table types.cpp fills at start-up (a data array, as in avx2.cpp).
inline __m256 bcast_f16(uint16_t h) { return _mm256_broadcast_ss(&gl_fp16_table[h]); }

inline float hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// The 32 codes of one sub-block (its 4·B bytes at q) as unsigned bytes, in element order.
template <int B> inline __m256i decode32(const uint8_t * q) {
    if (B == 4) {
        // byte j: low nibble = weight j, high nibble = weight j + 16
        const __m128i b = _mm_loadu_si128((const __m128i *) q);
        return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0f));
    }
    // bits 2k, 2k+1 of byte j = weight j + 8k: qword k of the broadcast shifted right by 2k, bytes masked to 2 bits
    uint64_t lo;
    memcpy(&lo, q, 8);
    __m256i c = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x((long long) lo), _mm256_setr_epi64x(0, 2, 4, 6)),
                                 _mm256_set1_epi8(0x03));
    if (B == 3) {
        // bit i of the little-endian word at q + 8 = bit 2 of weight i: byte i/8 of the word to byte i, test bit i%8
        uint32_t h;
        memcpy(&h, q + 8, 4);
        const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int) h),
                                                   _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  //
                                                                    2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
        const __m256i bit = _mm256_set1_epi64x((long long) 0x8040201008040201ULL);
        const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit);
        c = _mm256_or_si256(c, _mm256_and_si256(set, _mm256_set1_epi8(0x04)));
    }
    return c;
}

// 8 int32 partial sums of Σ (c − z) a over one sub-block: c unsigned codes, zb = z in every byte, a signed bytes.
inline __m256i dot_sub(__m256i c, __m256i zb, __m256i a) {
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(c, a), _mm256_maddubs_epi16(zb, a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

template <int B, int G> inline float vec_dot_impl(int64_t n, const void * vx, const void * vy) {
    typedef gl_block_intq<B, G> blk;
    constexpr int S = G / 32;
    const blk * x = (const blk *) vx;
    const gl_block_q8_0 * y = (const gl_block_q8_0 *) vy;
    const int64_t nb = n / G;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        const __m256 dw = bcast_f16(rd16(x[b].d));
        const __m256i zb = _mm256_set1_epi8((char) x[b].z);
        const gl_block_q8_0 * yb = y + b * S;
        for (int s = 0; s < S; ++s) {
            const __m256i p = dot_sub(decode32<B>(x[b].qs + s * 4 * B), zb, _mm256_loadu_si256((const __m256i *) yb[s].qs));
            const __m256 d = _mm256_mul_ps(dw, bcast_f16(yb[s].d));
            if ((s & 1) == 0) {
                acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc0);
            } else {
                acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), d, acc1);
            }
        }
    }
    return hsum_ps(_mm256_add_ps(acc0, acc1));
}

// Σ_s d_a,s · Σ a over the sub-blocks s of each weight group: the factor of z in that group's dot product, for one
// activation row (shared by every weight row of a gemm call).
template <int G> inline void act_group_sums(int64_t n, const gl_block_q8_0 * y, float * out) {
    constexpr int S = G / 32;
    const __m256i ones = _mm256_set1_epi8(1);
    for (int64_t b = 0; b < n / G; ++b) {
        __m256 acc = _mm256_setzero_ps();
        for (int s = 0; s < S; ++s) {
            const __m256i a = _mm256_loadu_si256((const __m256i *) y[b * S + s].qs);
            const __m256i sa = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, a), _mm256_set1_epi16(1));
            acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sa), bcast_f16(y[b * S + s].d), acc);
        }
        out[b] = hsum_ps(acc);
    }
}

// vec_dot with z Σ a taken from the precomputed group sums: per sub-block one maddubs and one madd; the weight scale
// multiplies once per group.
template <int B, int G> inline float vec_dot_pre(int64_t n, const void * vx, const void * vy, const float * gsum) {
    typedef gl_block_intq<B, G> blk;
    constexpr int S = G / 32;
    const blk * x = (const blk *) vx;
    const gl_block_q8_0 * y = (const gl_block_q8_0 *) vy;
    const int64_t nb = n / G;
    __m256 acc = _mm256_setzero_ps();
    float corr = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
        const uint16_t dh = rd16(x[b].d);
        const gl_block_q8_0 * yb = y + b * S;
        __m256 g0 = _mm256_setzero_ps(), g1 = _mm256_setzero_ps();
        for (int s = 0; s < S; ++s) {
            const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(decode32<B>(x[b].qs + s * 4 * B),
                                                                     _mm256_loadu_si256((const __m256i *) yb[s].qs)),
                                                _mm256_set1_epi16(1));
            if ((s & 1) == 0) {
                g0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), bcast_f16(yb[s].d), g0);
            } else {
                g1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), bcast_f16(yb[s].d), g1);
            }
        }
        const float dw = gl_fp16_table[dh];
        acc = _mm256_fmadd_ps(_mm256_add_ps(g0, g1), _mm256_set1_ps(dw), acc);
        corr += dw * (float) x[b].z * gsum[b];
    }
    return hsum_ps(acc) - corr;
}

// 4-bit groups of >= 64 take the sub-blocks in pairs, as avx2.cpp's Q4_0 gemm does: the 32 code bytes of two
// sub-blocks are one load, & 0x0f gives both sub-blocks' low nibbles (weights 0..15 of each), >> 4 their high
// nibbles; the activations of the pair are prepared once per call to match:
//   lo = [a_s[0..15] | a_s+1[0..15]], hi = [a_s[16..31] | a_s+1[16..31]], dy = [d_s ×4 | d_s+1 ×4].
struct act_pair {
    __m256i lo, hi;
    __m256 dy;
};

inline void prep_pairs(int64_t n, const gl_block_q8_0 * y, act_pair * out) {
    for (int64_t p = 0; p < n / 64; ++p) {
        const __m256i a0 = _mm256_loadu_si256((const __m256i *) y[2 * p].qs);
        const __m256i a1 = _mm256_loadu_si256((const __m256i *) y[2 * p + 1].qs);
        out[p].lo = _mm256_permute2x128_si256(a0, a1, 0x20);
        out[p].hi = _mm256_permute2x128_si256(a0, a1, 0x31);
        out[p].dy = _mm256_set_m128(_mm_set1_ps(gl_fp16_table[y[2 * p + 1].d]), _mm_set1_ps(gl_fp16_table[y[2 * p].d]));
    }
}

template <int G> inline float vec_dot_q4_pairs(int64_t n, const void * vx, const act_pair * ap, const float * gsum) {
    typedef gl_block_intq<4, G> blk;
    constexpr int P = G / 64;
    const blk * x = (const blk *) vx;
    const __m256i m4 = _mm256_set1_epi8(0x0f);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float corr = 0.0f;
    for (int64_t b = 0; b < n / G; ++b) {
        const act_pair * a = ap + b * P;
        __m256 g0 = _mm256_setzero_ps(), g1 = _mm256_setzero_ps();
        for (int p = 0; p < P; ++p) {
            const __m256i q = _mm256_loadu_si256((const __m256i *) (x[b].qs + p * 32));
            const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(_mm256_and_si256(q, m4), a[p].lo),
                                                 _mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(q, 4), m4), a[p].hi));
            const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
            if ((p & 1) == 0) {
                g0 = _mm256_fmadd_ps(f, a[p].dy, g0);
            } else {
                g1 = _mm256_fmadd_ps(f, a[p].dy, g1);
            }
        }
        const float dw = gl_fp16_table[rd16(x[b].d)];
        acc = _mm256_fmadd_ps(_mm256_add_ps(g0, g1), _mm256_set1_ps(dw), acc);
        corr += dw * (float) x[b].z * gsum[b];
    }
    return hsum_ps(acc) - corr;
}

// 2- and 3-bit groups of >= 64 also take sub-blocks in pairs. The low planes of sub-blocks s, s+1 (8 bytes each) in
// both 128-bit lanes, each qword shifted by 2k, give for k = 0, 1 (and, with shifts 4, 6, for k = 2, 3):
//   [s weights 0..7 | s+1 weights 0..7 || s weights 8..15 | s+1 weights 8..15]   (and 16..23, 24..31)
// which the activations are prepared to match: a01, a23, and dy = [d_s d_s d_s+1 d_s+1] in both lanes (each int32 of
// madd covers 4 consecutive bytes, so lanes 0-1 belong to s and 2-3 to s+1 in each 128-bit half).
struct act_pair2 {
    __m256i a01, a23;
    __m256 dy;
};

inline void prep_pairs2(int64_t n, const gl_block_q8_0 * y, act_pair2 * out) {
    for (int64_t p = 0; p < n / 64; ++p) {
        const __m256i a0 = _mm256_loadu_si256((const __m256i *) y[2 * p].qs);
        const __m256i a1 = _mm256_loadu_si256((const __m256i *) y[2 * p + 1].qs);
        const __m256i lo = _mm256_unpacklo_epi64(a0, a1), hi = _mm256_unpackhi_epi64(a0, a1);
        out[p].a01 = _mm256_permute2x128_si256(lo, hi, 0x20);
        out[p].a23 = _mm256_permute2x128_si256(lo, hi, 0x31);
        const float d0 = gl_fp16_table[y[2 * p].d], d1 = gl_fp16_table[y[2 * p + 1].d];
        out[p].dy = _mm256_setr_ps(d0, d0, d1, d1, d0, d0, d1, d1);
    }
}

template <int B, int G> inline float vec_dot_q23_pairs(int64_t n, const void * vx, const act_pair2 * ap, const float * gsum) {
    typedef gl_block_intq<B, G> blk;
    constexpr int P = G / 64;
    const blk * x = (const blk *) vx;
    const __m256i m2 = _mm256_set1_epi8(0x03);
    const __m256i sh01 = _mm256_setr_epi64x(0, 0, 2, 2), sh23 = _mm256_setr_epi64x(4, 4, 6, 6);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc = _mm256_setzero_ps();
    float corr = 0.0f;
    for (int64_t b = 0; b < n / G; ++b) {
        const act_pair2 * a = ap + b * P;
        __m256 g0 = _mm256_setzero_ps(), g1 = _mm256_setzero_ps();
        for (int p = 0; p < P; ++p) {
            const uint8_t * q = x[b].qs + p * 8 * B;
            uint64_t l0, l1;
            memcpy(&l0, q, 8);
            memcpy(&l1, q + 4 * B, 8);
            const __m128i l = _mm_set_epi64x((long long) l1, (long long) l0);
            const __m256i v = _mm256_broadcastsi128_si256(l);
            __m256i c01 = _mm256_and_si256(_mm256_srlv_epi64(v, sh01), m2);
            __m256i c23 = _mm256_and_si256(_mm256_srlv_epi64(v, sh23), m2);
            if (B == 3) {
                // bytes 8..23 of the pair (in bounds: a pair is 24 bytes): h0 at 0..3, h1 at 12..15, in both lanes
                const __m256i hv = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) (q + 8)));
                const __m256i bit = _mm256_set1_epi64x((long long) 0x8040201008040201ULL);
                const __m256i four = _mm256_set1_epi8(0x04);
                const __m256i s01 = _mm256_shuffle_epi8(hv, _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 12, 12, 12, 12, 12, 12, 12, 12,  //
                                                                            1, 1, 1, 1, 1, 1, 1, 1, 13, 13, 13, 13, 13, 13, 13, 13));
                const __m256i s23 = _mm256_shuffle_epi8(hv, _mm256_setr_epi8(2, 2, 2, 2, 2, 2, 2, 2, 14, 14, 14, 14, 14, 14, 14, 14,  //
                                                                            3, 3, 3, 3, 3, 3, 3, 3, 15, 15, 15, 15, 15, 15, 15, 15));
                c01 = _mm256_or_si256(c01, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(s01, bit), bit), four));
                c23 = _mm256_or_si256(c23, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(s23, bit), bit), four));
            }
            const __m256i s16 = _mm256_add_epi16(_mm256_maddubs_epi16(c01, a[p].a01), _mm256_maddubs_epi16(c23, a[p].a23));
            const __m256 f = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, ones));
            if ((p & 1) == 0) {
                g0 = _mm256_fmadd_ps(f, a[p].dy, g0);
            } else {
                g1 = _mm256_fmadd_ps(f, a[p].dy, g1);
            }
        }
        const float dw = gl_fp16_table[rd16(x[b].d)];
        acc = _mm256_fmadd_ps(_mm256_add_ps(g0, g1), _mm256_set1_ps(dw), acc);
        corr += dw * (float) x[b].z * gsum[b];
    }
    return hsum_ps(acc) - corr;
}

template <int B, int G> void to_float_impl(const void * vx, float * y, int64_t n) {
    typedef gl_block_intq<B, G> blk;
    const blk * x = (const blk *) vx;
    for (int64_t b = 0; b < n / G; ++b) {
        const __m256 d = bcast_f16(rd16(x[b].d));
        const __m256i z = _mm256_set1_epi32(x[b].z);
        for (int s = 0; s < G / 32; ++s) {
            uint8_t c[32];
            _mm256_storeu_si256((__m256i *) c, decode32<B>(x[b].qs + s * 4 * B));
            float * yb = y + b * G + s * 32;
            for (int k = 0; k < 4; ++k) {
                const __m256i ck = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (c + 8 * k)));
                _mm256_storeu_ps(yb + 8 * k, _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_sub_epi32(ck, z))));
            }
        }
    }
}

}  // namespace

// ---- entry points (named by avx2.cpp's table) -------------------------------------------------------------------

template <int B, int G> void gl_intq_avx2_vec_dot(int64_t n, float * s, const void * x, const void * y) {
    *s = vec_dot_impl<B, G>(n, x, y);
}

template <int B, int G> void gl_intq_avx2_to_float(const void * x, float * y, int64_t n) { to_float_impl<B, G>(x, y, n); }

// Rows × tokens over the SIMD dot product; the weight row stays in L1 across the tokens of a tile.
template <int B, int G>
void gl_intq_avx2_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                       float * y, int64_t y_stride) {
    const uint8_t * wr = (const uint8_t *) w;
    const uint8_t * ar = (const uint8_t *) act;
    // tokens in groups of up to 4, their group sums prepared once per call; weight rows inner (from cache after the
    // first token group)
    constexpr int TG = 4;
    const int64_t nb = n / G;
    float * gsum = (float *) __builtin_alloca((size_t) (TG * nb) * sizeof(float) + 32);
    if (B == 4 && G >= 64) {
        const int64_t np = n / 64;
        const int64_t tg = np * (int64_t) sizeof(act_pair) * TG <= (256 << 10) ? TG : 1;  // bounded stack use
        uint8_t * raw = (uint8_t *) __builtin_alloca((size_t) (tg * np) * sizeof(act_pair) + 64);
        act_pair * ap = (act_pair *) (((uintptr_t) raw + 63) & ~(uintptr_t) 63);
        for (int64_t t0 = 0; t0 < nt; t0 += tg) {
            const int64_t ntg = nt - t0 < tg ? nt - t0 : tg;
            for (int64_t t = 0; t < ntg; ++t) {
                const gl_block_q8_0 * yt = (const gl_block_q8_0 *) (ar + (t0 + t) * act_stride);
                act_group_sums<G>(n, yt, gsum + t * nb);
                prep_pairs(n, yt, ap + t * np);
            }
            for (int64_t r = 0; r < nr; ++r) {
                for (int64_t t = 0; t < ntg; ++t)
                    y[(t0 + t) * y_stride + r] = vec_dot_q4_pairs<G>(n, wr + r * w_stride, ap + t * np, gsum + t * nb);
            }
        }
        return;
    }
    if (B < 4 && G >= 64) {
        const int64_t np = n / 64;
        const int64_t tg = np * (int64_t) sizeof(act_pair2) * TG <= (256 << 10) ? TG : 1;  // bounded stack use
        uint8_t * raw = (uint8_t *) __builtin_alloca((size_t) (tg * np) * sizeof(act_pair2) + 64);
        act_pair2 * ap = (act_pair2 *) (((uintptr_t) raw + 63) & ~(uintptr_t) 63);
        for (int64_t t0 = 0; t0 < nt; t0 += tg) {
            const int64_t ntg = nt - t0 < tg ? nt - t0 : tg;
            for (int64_t t = 0; t < ntg; ++t) {
                const gl_block_q8_0 * yt = (const gl_block_q8_0 *) (ar + (t0 + t) * act_stride);
                act_group_sums<G>(n, yt, gsum + t * nb);
                prep_pairs2(n, yt, ap + t * np);
            }
            for (int64_t r = 0; r < nr; ++r) {
                for (int64_t t = 0; t < ntg; ++t)
                    y[(t0 + t) * y_stride + r] = vec_dot_q23_pairs<B, G>(n, wr + r * w_stride, ap + t * np, gsum + t * nb);
            }
        }
        return;
    }
    for (int64_t t0 = 0; t0 < nt; t0 += TG) {
        const int64_t ntg = nt - t0 < TG ? nt - t0 : TG;
        for (int64_t t = 0; t < ntg; ++t) act_group_sums<G>(n, (const gl_block_q8_0 *) (ar + (t0 + t) * act_stride), gsum + t * nb);
        for (int64_t r = 0; r < nr; ++r) {
            for (int64_t t = 0; t < ntg; ++t)
                y[(t0 + t) * y_stride + r] = vec_dot_pre<B, G>(n, wr + r * w_stride, ar + (t0 + t) * act_stride, gsum + t * nb);
        }
    }
}

#define INTQ_INSTANTIATE(B, G)                                                                                          \
    template void gl_intq_avx2_vec_dot<B, G>(int64_t, float *, const void *, const void *);                            \
    template void gl_intq_avx2_to_float<B, G>(const void *, float *, int64_t);                                         \
    template void gl_intq_avx2_gemm<B, G>(int64_t, int64_t, int64_t, const void *, size_t, const void *, size_t, float *, \
                                          int64_t);
INTQ_INSTANTIATE(4, 128)
INTQ_INSTANTIATE(3, 128)
INTQ_INSTANTIATE(2, 128)
INTQ_INSTANTIATE(4, 64)
INTQ_INSTANTIATE(3, 64)
INTQ_INSTANTIATE(2, 64)
INTQ_INSTANTIATE(4, 32)
INTQ_INSTANTIATE(3, 32)
INTQ_INSTANTIATE(2, 32)
