// Q4_0 and Q8_0 products on the x16 layout (ggml-lite/types.h: 16 rows interleaved per 32-weight block) at the
// avx512 level (F, BW, VL, VNNI). Built with per-file flags (CMakeLists.txt); listed in avx512.cpp's table, which
// declares the two exported functions at the end of this file. Everything else has internal linkage, and no inline
// function comes from a header shared across -m flags (simd_common.h and act_avx512.h are per file). The scalar
// reference is gemm_x16_ref in ggml-lite/types.cpp; every block's integer dot is exact, the float sums differ only in
// order.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "ggml-lite/cpu/act_avx512.h"  // after the pragmas: its AVX-512 code gets them too

namespace {

constexpr int64_t X16_SEG = 64;    // batches: blocks per segment (the groups' segment stays in L2)
constexpr int64_t X16_ASEG = 512;  // decode: blocks of activation setup per pass (one pass for rows up to 16384)

// ---- the x16 layout (types.h): 16 rows in the 16 lanes, read as stored ----------------------------------------
//
// A group block holds the 16 rows' scales and then, per code dword k, dword k of rows 0..15: one 64-byte load gives
// W[k] lane r = dword k of row r, exactly what the batch kernel above builds with gathers and transposes. A block of
// 16 rows then costs 4 (Q4_0: and, shift) or 8 (Q8_0: xor) loads and, per token, 8 vpdpbusd with the activation's
// dword k broadcast from memory; lane r ends holding row r's integer block dot, with no folds. Weights are the
// unsigned operand (Q4_0 codes 0..15, Q8_0 q + 128), activations signed, and the per-token, per-block correction
// -off · sum(activation block) (act_sums) is the accumulator's start value. Each thread reads its rows as one
// sequential stream, prefetched a fixed distance ahead.

struct X16Q4 {
    static constexpr size_t gbs = 16 * sizeof(gl_block_q4_0);
    static constexpr int shift = 3;
    // Step j of a block (batches): the code registers for activation dwords KA[j][0..n) (Q4_0: one 64-byte load is
    // the low nibbles, dword j, and the high ones, dword 4 + j).
    static constexpr int steps = 4, per_step = 2;
    static constexpr int tile = 4;  // batch tokens per tile (registers: 2 groups × (2 codes + 2·tile accumulators))
    static inline void step(const uint8_t * gb, int j, __m512i V[2]) {
        const __m512i x = _mm512_loadu_si512(gb + 32 + 64 * j), m4 = _mm512_set1_epi8(0x0F);
        V[0] = _mm512_and_si512(x, m4);
        V[1] = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
    }
    static constexpr int ka(int j, int i) { return i == 0 ? j : 4 + j; }
    static inline void load(const uint8_t * gb, __m512i W[8]) {
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        GL_UNROLL
        for (int k = 0; k < 4; ++k) {
            const __m512i x = _mm512_loadu_si512(gb + 32 + 64 * k);
            W[k] = _mm512_and_si512(x, m4);                          // values 4k..4k+3
            W[4 + k] = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);  // values 16+4k..16+4k+3
        }
    }
};
struct X16Q8 {
    static constexpr size_t gbs = 16 * sizeof(gl_block_q8_0);
    static constexpr int shift = 7;
    static constexpr int steps = 8, per_step = 1;
    static constexpr int tile = 6;  // one code register per group and step leaves room for 6 tokens
    static inline void step(const uint8_t * gb, int j, __m512i V[2]) {
        V[0] = _mm512_xor_si512(_mm512_loadu_si512(gb + 32 + 64 * j), _mm512_set1_epi8((char) 0x80));
    }
    static constexpr int ka(int j, int) { return j; }
    static inline void load(const uint8_t * gb, __m512i W[8]) {
        const __m512i x80 = _mm512_set1_epi8((char) 0x80);
        GL_UNROLL
        for (int k = 0; k < 8; ++k) W[k] = _mm512_xor_si512(_mm512_loadu_si512(gb + 32 + 64 * k), x80);
    }
};

// Groups read in step by decode (tokens <= 4). One thread, 4096-wide Q4_0 rows, share of the read stream measured in
// the same run on the 2-core Xeon VM: 1 group 68-77%, 2 76-81%, 4 82-86%, 8 87-94%, 16 90-94%.
constexpr int X16_G = 8;
constexpr int X16_BG = 2;  // batches: tiles of Q::tile tokens × 2 groups
constexpr size_t X16_PREFETCH = 2048;  // bytes ahead of the block being read, in each stream

// Blocks [0, ns) of G groups (gb[g]: block 0 of the segment) × T tokens: facc[g·T + t] lane r += row r's dot.
// aq[t]: token t's Q8_0 blocks of the segment; ncorr, dy: its corrections and scales, cs apart. The G groups are
// G streams read in step: one sequential stream per thread reaches less of the DRAM bandwidth than a few do.
template <class Q, int T, int G, bool PF>
inline void x16_run(const uint8_t * const gb0[G], int64_t ns, const gl_block_q8_0 * const aq[T], const int32_t * ncorr, const float * dy,
                    size_t cs, __m512 facc[G * T]) {
    for (int64_t b = 0; b < ns; ++b) {
        GL_UNROLL
        for (int g = 0; g < G; ++g) {
            const uint8_t * gb = gb0[g] + (size_t) b * Q::gbs;
            if (PF) {
                GL_UNROLL
                for (size_t l = 0; l < (Q::gbs + 63) / 64; ++l) _mm_prefetch((const char *) gb + X16_PREFETCH + 64 * l, _MM_HINT_T0);
            }
            __m512i W[8];
            Q::load(gb, W);
            const __m512 DX = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) gb));
            GL_UNROLL
            for (int t = 0; t < T; ++t) {
                const int8_t * q = aq[t][b].qs;
                __m512i a0 = _mm512_set1_epi32(ncorr[t * cs + b]), a1 = _mm512_setzero_si512();
                GL_UNROLL
                for (int k = 0; k < 8; k += 2) {
                    a0 = _mm512_dpbusd_epi32(a0, W[k], _mm512_set1_epi32(load_i32(q + 4 * k)));
                    a1 = _mm512_dpbusd_epi32(a1, W[k + 1], _mm512_set1_epi32(load_i32(q + 4 * k + 4)));
                }
                const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_add_epi32(a0, a1)), DX);
                facc[g * T + t] = _mm512_fmadd_ps(f, _mm512_set1_ps(dy[t * cs + b]), facc[g * T + t]);
            }
        }
    }
}

// Batches: blocks [0, ns) of G groups × T tokens, code dword by code dword, so that each activation broadcast
// feeds the G groups (a block costs T·8 broadcasts for G·T·8 dot instructions, not one per dot).
template <class Q, int T, int G>
inline void x16_batch_run(const uint8_t * const gb0[G], int64_t ns, const gl_block_q8_0 * const aq[T], const int32_t * ncorr, const float * dy,
                          size_t cs, __m512 facc[G * T]) {
    for (int64_t b = 0; b < ns; ++b) {
        __m512i acc[G * T];
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            const __m512i c = _mm512_set1_epi32(ncorr[t * cs + b]);
            GL_UNROLL
            for (int g = 0; g < G; ++g) acc[g * T + t] = c;
        }
        GL_UNROLL
        for (int j = 0; j < Q::steps; ++j) {
            __m512i V[G][2];
            GL_UNROLL
            for (int g = 0; g < G; ++g) Q::step(gb0[g] + (size_t) b * Q::gbs, j, V[g]);
            GL_UNROLL
            for (int i = 0; i < Q::per_step; ++i) {
                GL_UNROLL
                for (int t = 0; t < T; ++t) {
                    const __m512i a = _mm512_set1_epi32(load_i32(aq[t][b].qs + 4 * Q::ka(j, i)));
                    GL_UNROLL
                    for (int g = 0; g < G; ++g) acc[g * T + t] = _mm512_dpbusd_epi32(acc[g * T + t], V[g][i], a);
                }
            }
        }
        GL_UNROLL
        for (int g = 0; g < G; ++g) {
            const __m512 DX = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) (gb0[g] + (size_t) b * Q::gbs)));
            GL_UNROLL
            for (int t = 0; t < T; ++t)
                facc[g * T + t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc[g * T + t]), DX), _mm512_set1_ps(dy[t * cs + b]), facc[g * T + t]);
        }
    }
}

// Groups idx[0..n) of the segment (w: group 0's block 0 of it), G at a time, then the rest with fewer streams.
template <class Q, int T, int G, bool BATCH>
inline void x16_list(const int64_t * idx, int64_t n, int64_t ns, const uint8_t * w, size_t gstride, const gl_block_q8_0 * const aq[T],
                     const int32_t * ncorr, const float * dy, size_t cs, float * y, int64_t y_stride, bool add) {
    int64_t i = 0;
    for (; i + G <= n; i += G) {
        const uint8_t * gb[G];
        __m512 facc[G * T];
        GL_UNROLL
        for (int g = 0; g < G; ++g) gb[g] = w + (size_t) idx[i + g] * gstride;
        GL_UNROLL
        for (int j = 0; j < G * T; ++j) facc[j] = _mm512_setzero_ps();
        if (!BATCH) x16_run<Q, T, G, true>(gb, ns, aq, ncorr, dy, cs, facc);
        else x16_batch_run<Q, T, G>(gb, ns, aq, ncorr, dy, cs, facc);
        GL_UNROLL
        for (int g = 0; g < G; ++g) {
            GL_UNROLL
            for (int t = 0; t < T; ++t) store_rows(y + t * y_stride + idx[i + g] * 16, facc[g * T + t], 0xFFFF, add);
        }
    }
    if constexpr (G > 1) {
        if (i < n) x16_list<Q, T, G / 2, BATCH>(idx + i, n - i, ns, w, gstride, aq, ncorr, dy, cs, y, y_stride, add);
    }
}

// Groups [0, ng), as G lanes that each walk a contiguous range of groups in order, in step: every lane is one
// sequential stream through the call (its prefetches run on into its next group), G streams per thread.
template <class Q, int T, int G, bool BATCH>
inline void x16_groups(int64_t ng, int64_t ns, const uint8_t * w, size_t gstride, const gl_block_q8_0 * const aq[T], const int32_t * ncorr,
                       const float * dy, size_t cs, float * y, int64_t y_stride, bool add) {
    const int64_t per = ng / G, extra = ng % G;  // lane g: per groups, one more for g < extra
    int64_t idx[G];
    for (int64_t i = 0; i < per; ++i) {
        GL_UNROLL
        for (int g = 0; g < G; ++g) idx[g] = g * per + (g < extra ? g : extra) + i;
        x16_list<Q, T, G, BATCH>(idx, G, ns, w, gstride, aq, ncorr, dy, cs, y, y_stride, add);
    }
    for (int64_t g = 0; g < extra; ++g) idx[g] = g * per + g + per;
    x16_list<Q, T, G, BATCH>(idx, extra, ns, w, gstride, aq, ncorr, dy, cs, y, y_stride, add);
}

// T tokens from act over blocks [s0, s0 + ns) of the groups of rows [0, nr): y (+)= the partial dots.
template <class Q, int T, int64_t SEGB, int G>
inline void x16_tokens(int64_t nr, int64_t s0, int64_t ns, const uint8_t * w, size_t gstride, const uint8_t * act, size_t act_stride,
                       float * y, int64_t y_stride) {
    alignas(64) int32_t ncorr[T * (SEGB + 16)];
    alignas(64) float dy[T * (SEGB + 16)];
    const gl_block_q8_0 * aq[T];
    GL_UNROLL
    for (int t = 0; t < T; ++t) {
        aq[t] = (const gl_block_q8_0 *) (act + (size_t) t * act_stride) + s0;
        act_sums(aq[t], ns, Q::shift, ncorr + t * (SEGB + 16), dy + t * (SEGB + 16));
    }
    x16_groups<Q, T, G, SEGB == X16_SEG>(nr / 16, ns, w + (size_t) s0 * Q::gbs, gstride, aq, ncorr, dy, SEGB + 16, y, y_stride, s0 > 0);
}

// Few tokens: per segment of X16_ASEG blocks (one for rows up to 16384), each group's blocks in order, so the groups of
// a call are read as one stream. More tokens: segments of X16_SEG blocks (the groups' segment stays in L2) × tiles of
// TT tokens, the activation setup of a tile shared by every group of the call.
template <class Q>
void gemm_x16(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride, float * y,
              int64_t y_stride) {
    const int64_t nb = n / 32;
    const uint8_t * wb = (const uint8_t *) w;
    const uint8_t * ab = (const uint8_t *) act;
    const size_t gstride = 16 * w_stride;
    if (nt <= 4) {
        for (int64_t s0 = 0; s0 < nb; s0 += X16_ASEG) {
            const int64_t ns = min_i64(X16_ASEG, nb - s0);
            switch (nt) {
                case 1: x16_tokens<Q, 1, X16_ASEG, X16_G>(nr, s0, ns, wb, gstride, ab, act_stride, y, y_stride); break;
                case 2: x16_tokens<Q, 2, X16_ASEG, 2>(nr, s0, ns, wb, gstride, ab, act_stride, y, y_stride); break;
                case 3: x16_tokens<Q, 3, X16_ASEG, 1>(nr, s0, ns, wb, gstride, ab, act_stride, y, y_stride); break;
                case 4: x16_tokens<Q, 4, X16_ASEG, 1>(nr, s0, ns, wb, gstride, ab, act_stride, y, y_stride); break;
                default: break;
            }
        }
        return;
    }
    for (int64_t s0 = 0; s0 < nb; s0 += X16_SEG) {
        const int64_t ns = min_i64(X16_SEG, nb - s0);
        int64_t t = 0;
        for (; t + Q::tile <= nt; t += Q::tile)
            x16_tokens<Q, Q::tile, X16_SEG, X16_BG>(nr, s0, ns, wb, gstride, ab + (size_t) t * act_stride, act_stride, y + t * y_stride, y_stride);
        const uint8_t * at = ab + (size_t) t * act_stride;
        float * yt = y + t * y_stride;
        switch (nt - t) {
            case 1: x16_tokens<Q, 1, X16_SEG, X16_BG>(nr, s0, ns, wb, gstride, at, act_stride, yt, y_stride); break;
            case 2: x16_tokens<Q, 2, X16_SEG, X16_BG>(nr, s0, ns, wb, gstride, at, act_stride, yt, y_stride); break;
            case 3: x16_tokens<Q, 3, X16_SEG, X16_BG>(nr, s0, ns, wb, gstride, at, act_stride, yt, y_stride); break;
            case 4: x16_tokens<Q, 4 < Q::tile ? 4 : 1, X16_SEG, X16_BG>(nr, s0, ns, wb, gstride, at, act_stride, yt, y_stride); break;
            case 5: x16_tokens<Q, 5 < Q::tile ? 5 : 1, X16_SEG, X16_BG>(nr, s0, ns, wb, gstride, at, act_stride, yt, y_stride); break;
            default: break;
        }
    }
}

}  // namespace

void gl_q4_0_gemm_x16_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                   float * y, int64_t y_stride) {
    gemm_x16<X16Q4>(n, nr, nt, w, w_stride, act, act_stride, y, y_stride);
}
void gl_q8_0_gemm_x16_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                   float * y, int64_t y_stride) {
    gemm_x16<X16Q8>(n, nr, nt, w, w_stride, act, act_stride, y, y_stride);
}
