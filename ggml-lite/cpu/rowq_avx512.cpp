// The per-row types (ggml-lite/types.h: q3_row, q4_row, q8_row, their _a8 forms, a8_row) at the avx512 level (F, BW,
// VL, DQ, VNNI). Built with per-file flags (CMakeLists.txt); the functions at the end are listed in avx512.cpp's
// table. Everything else has internal linkage; simd_common.h's helpers are per file. The scalar reference is
// ggml-lite/rowq.cpp:
// - a8_row quantization is bit-identical (the same float operations, the range reduced exactly);
// - the A8 products are bit-identical too: the integer sum Σ code·c of a row is exact (vpdpbusd: unsigned weight
//   codes × signed activation bytes), then the same int64 correction and the same float products;
// - the float-activation (A16) products differ only in the order of the float sums.
//
// A row's codes are walked in chunks of 128 (then 64, then 32): one 64-byte load of q4 codes is the chunk's first 64
// codes (low nibbles) and its last 64 (high nibbles), against two 64-byte activation loads; q8 codes are two loads;
// q3 codes are two broadcasts shifted and masked per lane (rowq_common.h).
// Decode (up to 4 tokens) runs 8 / 4 rows at a time against every token; batches tile 4 rows × 4 tokens (16 int32
// accumulators), the weights of a chunk unpacked once per tile and each activation load serving 4 rows.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"
#include "ggml-lite/rowq_common.h"

#include <cmath>
#include <cstring>

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace {

inline __mmask64 lowmask(int bytes) { return bytes >= 64 ? ~(__mmask64) 0 : (((__mmask64) 1 << bytes) - 1); }

// ---- a8_row activations -------------------------------------------------------------------------------------------

// The codes and header of a row on grid g (a8_row_quantize: the row's own grid; gl_a8_row_quantize_grid_avx512: a
// tensor's static one).
void a8_row_quantize_on(const float * x, void * vy, int64_t n, const A8Grid & g) {
    int8_t * c = (int8_t *) ((uint8_t *) vy + GL_ROW_HEADER_A);
    if (g.zero) {
        a8_finish_row(vy, n, g, 0);
        return;
    }
    const float inv = g.inv, zp = g.zp;
    const __m512 vinv = _mm512_set1_ps(inv), vzp = _mm512_set1_ps(zp), v255 = _mm512_set1_ps(255.0f), v0 = _mm512_setzero_ps();
    const __m512i k128 = _mm512_set1_epi32(128);
    __m512i vsum = _mm512_setzero_si512();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 q = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm512_max_ps(_mm512_min_ps(_mm512_add_ps(q, vzp), v255), v0);  // NaN -> 255, as fmaxf(fminf(NaN, 255), 0)
        const __m512i ci = _mm512_sub_epi32(_mm512_cvttps_epi32(q), k128);
        vsum = _mm512_add_epi32(vsum, ci);
        _mm_storeu_si128((__m128i *) (c + i), _mm512_cvtepi32_epi8(ci));
    }
    int32_t csum = _mm512_reduce_add_epi32(vsum);
    for (; i < n; ++i) {
        c[i] = a8_code(x[i], g);
        csum += c[i];
    }
    a8_finish_row(vy, n, g, csum);
}

void a8_row_quantize(const float * x, void * vy, int64_t n) {
    __m512 vmn = _mm512_setzero_ps(), vmx = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 v = _mm512_loadu_ps(x + i);
        vmn = _mm512_min_ps(v, vmn);  // a NaN lane keeps the running value, as fminf does
        vmx = _mm512_max_ps(v, vmx);
    }
    float mn = _mm512_reduce_min_ps(vmn), mx = _mm512_reduce_max_ps(vmx);
    for (int64_t j = i; j < n; ++j) {
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    a8_row_quantize_on(x, vy, n, a8_grid(mn, mx));  // rowq_common.h, as the reference
}

// ---- A8 products ----------------------------------------------------------------------------------------------------

// The codes of one chunk of a row as unsigned bytes: W[0] = codes 0..63 of the chunk, W[1] = 64..127 (m = 128);
// m = 64 / 32: W[0] only, its upper bytes zero.
template <int BITS> inline void load_chunk(const uint8_t * q, int64_t c0, int m, __m512i W[2]) {
    if (BITS == 3) {
        // rowq_common.h (Q3Consts): the low part (m/4 bytes) and the high part (m/8) broadcast at their periods
        const uint8_t * b = q + c0 * 3 / 8;
        const int mi = q3_chunk_index(m);
        __m512i L, H;
        if (m == 128) {
            L = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) b));
            H = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (b + 32)));
        } else if (m == 64) {
            L = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) b));
            H = _mm512_set1_epi64(load_i64(b + 16));
        } else {
            L = _mm512_set1_epi64(load_i64(b));
            H = _mm512_set1_epi32(load_i32(b + 8));
        }
        const __m512i m3 = _mm512_set1_epi8(3), four = _mm512_set1_epi8(4);
        for (int h = 0; h < (m == 128 ? 2 : 1); ++h) {
            const __m512i sh = _mm512_srlv_epi16(L, _mm512_load_si512(k_q3.shift16[mi] + 32 * h));
            const __m512i lo = _mm512_maskz_and_epi32(m == 32 ? 0x00FF : 0xFFFF, sh, m3);  // m = 32: codes 32..63 zero
            const __mmask64 hb = _mm512_test_epi8_mask(H, _mm512_load_si512(k_q3.sel[mi] + 64 * h));
            W[h] = _mm512_mask_add_epi8(lo, hb, lo, four);
        }
        return;
    }
    if (BITS == 8) {
        W[0] = _mm512_maskz_loadu_epi8(lowmask(m), q + c0);
        if (m == 128) W[1] = _mm512_loadu_si512(q + c0 + 64);
        return;
    }
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint8_t * b = q + c0 / 2;
    if (m == 128) {
        const __m512i x = _mm512_loadu_si512(b);
        W[0] = _mm512_and_si512(x, m4);
        W[1] = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
        return;
    }
    // m/2 bytes: low nibbles are codes 0..m/2-1, high nibbles m/2..m-1
    const __m512i x = _mm512_maskz_loadu_epi8(lowmask(m / 2), b);
    const __m512i lo = _mm512_and_si512(x, m4), hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
    // hi right after lo: bytes m/2 .. m-1 of W[0]
    if (m == 64) W[0] = _mm512_inserti64x4(_mm512_zextsi256_si512(_mm512_castsi512_si256(lo)), _mm512_castsi512_si256(hi), 1);
    else W[0] = _mm512_inserti32x4(_mm512_zextsi128_si512(_mm512_castsi512_si128(lo)), _mm512_castsi512_si128(hi), 1);
}

// Chunks of a row of n codes: 128s, then a 64 and/or a 32.
inline int chunk_len(int64_t n, int64_t c0) { return n - c0 >= 128 ? 128 : (n - c0 >= 64 ? 64 : 32); }

inline int64_t hsum_epi32(__m512i v) {
    const __m512i lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v)), hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(v, 1));
    return _mm512_reduce_add_epi64(_mm512_add_epi64(lo, hi));
}

// R rows × T tokens over whole rows: y[t·ys + r] = the rows' dots.
template <int BITS, int R, int T>
inline void tile_a8(int64_t n, const uint8_t * w, size_t ws, const uint8_t * act, size_t as, float * y, int64_t ys) {
    __m512i acc[R][T];
    GL_UNROLL
    for (int r = 0; r < R; ++r) {
        GL_UNROLL
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_si512();
    }
    for (int64_t c0 = 0; c0 < n;) {
        const int m = chunk_len(n, c0);
        __m512i W[R][2];
        GL_UNROLL
        for (int r = 0; r < R; ++r) {
            load_chunk<BITS>(w + r * ws + GL_ROW_HEADER_W, c0, m, W[r]);
            if (R * T <= 8) _mm_prefetch((const char *) (w + r * ws + GL_ROW_HEADER_W + (c0 + 1024) * BITS / 8), _MM_HINT_T0);
        }
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            const int8_t * a = (const int8_t *) (act + t * as + GL_ROW_HEADER_A) + c0;
            const __m512i A0 = _mm512_maskz_loadu_epi8(lowmask(m), a);
            GL_UNROLL
            for (int r = 0; r < R; ++r) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], W[r][0], A0);
            if (m == 128) {
                const __m512i A1 = _mm512_loadu_si512(a + 64);
                GL_UNROLL
                for (int r = 0; r < R; ++r) acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], W[r][1], A1);
            }
        }
        c0 += m;
    }
    GL_UNROLL
    for (int t = 0; t < T; ++t) {
        GL_UNROLL
        for (int r = 0; r < R; ++r) y[t * ys + r] = row_dot_a8(n, w + r * ws, act + t * as, hsum_epi32(acc[r][t]));
    }
}

template <int BITS, int R, int T>
inline void rows_a8(int64_t n, int64_t nr, const uint8_t * w, size_t ws, const uint8_t * act, size_t as, float * y, int64_t ys) {
    int64_t r = 0;
    for (; r + R <= nr; r += R) tile_a8<BITS, R, T>(n, w + r * ws, ws, act, as, y + r, ys);
    for (; r < nr; ++r) tile_a8<BITS, 1, T>(n, w + r * ws, ws, act, as, y + r, ys);
}

template <int BITS>
void gemm_a8(int64_t n, int64_t nr, int64_t nt, const void * vw, size_t ws, const void * vact, size_t as, float * y, int64_t ys) {
    const uint8_t * w = (const uint8_t *) vw, * act = (const uint8_t *) vact;
    int64_t t = 0;
    if (nt <= 4) {
        switch (nt) {
            case 1: rows_a8<BITS, 8, 1>(n, nr, w, ws, act, as, y, ys); break;
            case 2: rows_a8<BITS, 4, 2>(n, nr, w, ws, act, as, y, ys); break;
            case 3: rows_a8<BITS, 4, 3>(n, nr, w, ws, act, as, y, ys); break;
            case 4: rows_a8<BITS, 4, 4>(n, nr, w, ws, act, as, y, ys); break;
            default: break;
        }
        return;
    }
    // Batches: per 4-token tile, every 4-row tile of the call. The tile's activations and the call's rows (16 per call
    // from gl_mul_mat: 16 KB of q4 codes at n = 2048) stay in L1, and each token's activations are read from the
    // outer caches once per call (rows outside, tokens inside, read all of them once per 4 rows: ffn_down's 512 ×
    // 5632 bytes came from L3 for every 4 rows).
    for (t = 0; t + 4 <= nt; t += 4) rows_a8<BITS, 4, 4>(n, nr, w, ws, act + t * as, as, y + t * ys, ys);
    for (; t < nt; ++t) rows_a8<BITS, 4, 1>(n, nr, w, ws, act + t * as, as, y + t * ys, ys);
}

template <int BITS> void vec_dot_a8(int64_t n, float * s, const void * x, const void * y) { gemm_a8<BITS>(n, 1, 1, x, 0, y, 0, s, 1); }

// ---- A16 products (float activations) ---------------------------------------------------------------------------

// R rows × T tokens: Σ (code − z)·x in float per row, times d.
template <int BITS, int R, int T>
inline void tile_f32(int64_t n, const uint8_t * w, size_t ws, const float * x, int64_t xs, float * y, int64_t ys) {
    __m512 acc[R][T];
    __m512 zf[R];
    GL_UNROLL
    for (int r = 0; r < R; ++r) {
        gl_row_header h;
        memcpy(&h, w + r * ws, sizeof h);
        zf[r] = _mm512_set1_ps((float) h.z);
        GL_UNROLL
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    }
    for (int64_t c0 = 0; c0 < n;) {
        const int m = chunk_len(n, c0);
        __m512i W[R][2];
        GL_UNROLL
        for (int r = 0; r < R; ++r) load_chunk<BITS>(w + r * ws + GL_ROW_HEADER_W, c0, m, W[r]);
        // 16 codes at a time: part p of the chunk (codes 16p .. 16p+15) is bytes 16(p % 4) .. of W[p / 4]
        for (int p = 0; p < m / 16; ++p) {
            __m512 wf[R];
            GL_UNROLL
            for (int r = 0; r < R; ++r) {
                const __m512i v = W[r][p / 4];
                const __m128i b = p % 4 == 0 ? _mm512_castsi512_si128(v)
                                : p % 4 == 1 ? _mm512_extracti32x4_epi32(v, 1)
                                : p % 4 == 2 ? _mm512_extracti32x4_epi32(v, 2)
                                             : _mm512_extracti32x4_epi32(v, 3);
                wf[r] = _mm512_sub_ps(_mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(b)), zf[r]);
            }
            GL_UNROLL
            for (int t = 0; t < T; ++t) {
                const __m512 a = _mm512_loadu_ps(x + t * xs + c0 + 16 * p);
                GL_UNROLL
                for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wf[r], a, acc[r][t]);
            }
        }
        c0 += m;
    }
    GL_UNROLL
    for (int r = 0; r < R; ++r) {
        gl_row_header h;
        memcpy(&h, w + r * ws, sizeof h);
        const float d = _cvtsh_ss(h.d);
        GL_UNROLL
        for (int t = 0; t < T; ++t) y[t * ys + r] = d * _mm512_reduce_add_ps(acc[r][t]);
    }
}

template <int BITS>
void gemm_f32(int64_t n, int64_t nr, int64_t nt, const void * vw, size_t ws, const void * vact, size_t as, float * y, int64_t ys) {
    const uint8_t * w = (const uint8_t *) vw;
    const float * x = (const float *) vact;
    const int64_t xs = (int64_t) (as / sizeof(float));
    int64_t r = 0;
    for (; r + 4 <= nr; r += 4) {
        int64_t t = 0;
        for (; t + 4 <= nt; t += 4) tile_f32<BITS, 4, 4>(n, w + r * ws, ws, x + t * xs, xs, y + t * ys + r, ys);
        for (; t < nt; ++t) tile_f32<BITS, 4, 1>(n, w + r * ws, ws, x + t * xs, xs, y + t * ys + r, ys);
    }
    for (; r < nr; ++r) {
        int64_t t = 0;
        for (; t + 4 <= nt; t += 4) tile_f32<BITS, 1, 4>(n, w + r * ws, ws, x + t * xs, xs, y + t * ys + r, ys);
        for (; t < nt; ++t) tile_f32<BITS, 1, 1>(n, w + r * ws, ws, x + t * xs, xs, y + t * ys + r, ys);
    }
}

template <int BITS> void vec_dot_f32(int64_t n, float * s, const void * x, const void * y) {
    gemm_f32<BITS>(n, 1, 1, x, 0, y, (size_t) n * sizeof(float), s, 1);
}

// ---- the x16 layout (types.h): 16 rows in the 16 lanes ------------------------------------------------------------
//
// A group is the 16 row headers, then dword d of the 16 rows' codes for every d: one 64-byte load is, in lane r, four
// codes of row r (q8: codes 4d .. 4d+3; q4: within a chunk of m codes, its codes 4d' .. 4d'+3 in the low nibbles and
// m/2 + 4d' .. in the high ones), against the matching activation dword broadcast. Lane r ends with row r's integer
// sum, so a group costs no horizontal sums, and the corrections of types.h run on 16 rows at once (int64 lanes, the
// same int64 -> float conversion and products as the scalar reference: bit-identical).

// A group's 16 row grids, as lanes: d (fp32), z and qsum (int32).
struct X16Grid {
    __m512 d;
    __m512i z, qs;
};
inline X16Grid x16_grid(const uint8_t * g) {
    const __m512i idx = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);  // dword 2r: row r's header
    const __m512i w0 = _mm512_i32gather_epi32(idx, g, 4);  // d16 | z << 16 per row
    X16Grid G;
    G.qs = _mm512_i32gather_epi32(idx, g + 4, 4);
    G.z = _mm512_and_si512(_mm512_srli_epi32(w0, 16), _mm512_set1_epi32(0xFF));
    G.d = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_and_si512(w0, _mm512_set1_epi32(0xFFFF))));
    return G;
}

// y[r] (r < 16) from the integer sums of a group's 16 rows against one token's activations.
inline void x16_finish(int64_t n, const X16Grid & G, __m512i acc, const uint8_t * arow, float * y) {
    gl_row_header_a8 a;
    memcpy(&a, arow, sizeof a);
    const __m512i za = _mm512_set1_epi64(a.z), cs = _mm512_set1_epi64(a.csum), nza = _mm512_set1_epi64(n * (int64_t) a.z);
    __m256 f[2];
    for (int h = 0; h < 2; ++h) {
        const __m512i A = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(acc, 1) : _mm512_castsi512_si256(acc));
        const __m512i Q = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(G.qs, 1) : _mm512_castsi512_si256(G.qs));
        const __m512i Z = _mm512_cvtepi32_epi64(h ? _mm512_extracti64x4_epi64(G.z, 1) : _mm512_castsi512_si256(G.z));
        __m512i tot = _mm512_sub_epi64(A, _mm512_mullo_epi64(za, Q));
        tot = _mm512_sub_epi64(tot, _mm512_mullo_epi64(Z, cs));
        tot = _mm512_add_epi64(tot, _mm512_mullo_epi64(Z, nza));
        f[h] = _mm512_cvtepi64_ps(tot);
    }
    const __m512 total = _mm512_insertf32x8(_mm512_castps256_ps512(f[0]), f[1], 1);
    _mm512_storeu_ps(y, _mm512_mul_ps(_mm512_mul_ps(G.d, _mm512_set1_ps(a.s)), total));
}

// G groups (gb[g]: the group's first byte) × T tokens over whole rows: acc[g·T + t] lane r = row r's integer sum.
template <int BITS, int T, int G>
inline void x16_run(int64_t n, const uint8_t * const gb[G], const int8_t * const a[T], __m512i acc[G * T]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    for (int64_t c0 = 0; c0 < n;) {
        const int m = BITS == 8 ? (int) (n - c0 < 128 ? n - c0 : 128) : chunk_len(n, c0);
        const int nd = BITS == 8 ? m / 4 : m / 8;  // code dwords of the chunk per row
        const int64_t d0 = BITS == 8 ? c0 / 4 : c0 / 8;
        for (int k = 0; k < nd; ++k) {
            __m512i lo[G], hi[G];
            GL_UNROLL
            for (int g = 0; g < G; ++g) {
                const uint8_t * p = gb[g] + 16 * GL_ROW_HEADER_W + 64 * (d0 + k);
                _mm_prefetch((const char *) p + 2048, _MM_HINT_T0);
                const __m512i v = _mm512_loadu_si512(p);
                if (BITS == 8) {
                    lo[g] = v;
                } else {
                    lo[g] = _mm512_and_si512(v, m4);
                    hi[g] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
                }
            }
            GL_UNROLL
            for (int t = 0; t < T; ++t) {
                const __m512i b0 = _mm512_set1_epi32(load_i32(a[t] + c0 + 4 * k));
                GL_UNROLL
                for (int g = 0; g < G; ++g) acc[g * T + t] = _mm512_dpbusd_epi32(acc[g * T + t], lo[g], b0);
                if (BITS == 4) {
                    const __m512i b1 = _mm512_set1_epi32(load_i32(a[t] + c0 + m / 2 + 4 * k));
                    GL_UNROLL
                    for (int g = 0; g < G; ++g) acc[g * T + t] = _mm512_dpbusd_epi32(acc[g * T + t], hi[g], b1);
                }
            }
        }
        c0 += m;
    }
}

// Groups idx[0..ng) of the call, G at a time (then fewer), against T tokens.
template <int BITS, int T, int G>
inline void x16_groups(int64_t n, const int64_t * idx, int64_t ng, const uint8_t * w, size_t gstride, const uint8_t * act, size_t as,
                       float * y, int64_t ys) {
    const int8_t * a[T];
    GL_UNROLL
    for (int t = 0; t < T; ++t) a[t] = (const int8_t *) (act + t * as + GL_ROW_HEADER_A);
    int64_t i = 0;
    for (; i + G <= ng; i += G) {
        const uint8_t * gb[G];
        __m512i acc[G * T];
        GL_UNROLL
        for (int g = 0; g < G; ++g) gb[g] = w + (size_t) idx[i + g] * gstride;
        GL_UNROLL
        for (int j = 0; j < G * T; ++j) acc[j] = _mm512_setzero_si512();
        x16_run<BITS, T, G>(n, gb, a, acc);
        GL_UNROLL
        for (int g = 0; g < G; ++g) {
            const X16Grid grid = x16_grid(gb[g]);
            GL_UNROLL
            for (int t = 0; t < T; ++t) x16_finish(n, grid, acc[g * T + t], act + t * as, y + t * ys + idx[i + g] * 16);
        }
    }
    if constexpr (G > 1) {
        if (i < ng) x16_groups<BITS, T, G / 2>(n, idx + i, ng - i, w, gstride, act, as, y, ys);
    }
}

// Decode: G lanes, each a contiguous range of the call's groups, read in step (G sequential streams per thread).
template <int BITS, int T, int G>
inline void x16_lanes(int64_t n, int64_t ng, const uint8_t * w, size_t gstride, const uint8_t * act, size_t as, float * y, int64_t ys) {
    const int64_t per = ng / G, extra = ng % G;
    int64_t idx[G];
    for (int64_t i = 0; i < per; ++i) {
        GL_UNROLL
        for (int g = 0; g < G; ++g) idx[g] = g * per + (g < extra ? g : extra) + i;
        x16_groups<BITS, T, G>(n, idx, G, w, gstride, act, as, y, ys);
    }
    for (int64_t g = 0; g < extra; ++g) idx[g] = g * per + g + per;
    x16_groups<BITS, T, G>(n, idx, extra, w, gstride, act, as, y, ys);
}

template <int BITS>
void gemm_x16(int64_t n, int64_t nr, int64_t nt, const void * vw, size_t ws, const void * vact, size_t as, float * y, int64_t ys) {
    const uint8_t * w = (const uint8_t *) vw, * act = (const uint8_t *) vact;
    const size_t gstride = 16 * ws;
    const int64_t ng = nr / 16;
    switch (nt) {
        case 1: x16_lanes<BITS, 1, 8>(n, ng, w, gstride, act, as, y, ys); return;
        case 2: x16_lanes<BITS, 2, 2>(n, ng, w, gstride, act, as, y, ys); return;
        case 3: x16_lanes<BITS, 3, 1>(n, ng, w, gstride, act, as, y, ys); return;
        case 4: x16_lanes<BITS, 4, 1>(n, ng, w, gstride, act, as, y, ys); return;
        default: break;
    }
    // Batches: tiles of TB tokens × 2 groups (each activation broadcast feeds both), every token tile over the call's
    // groups (their codes stay in L2; the tile's activations in L1).
    constexpr int TB = BITS == 4 ? 6 : 8;
    int64_t idx[256];
    int64_t t = 0;
    for (int64_t g0 = 0; g0 < ng; g0 += 256) {
        const int64_t cnt = ng - g0 < 256 ? ng - g0 : 256;
        for (int64_t i = 0; i < cnt; ++i) idx[i] = g0 + i;
        for (t = 0; t + TB <= nt; t += TB) x16_groups<BITS, TB, 2>(n, idx, cnt, w, gstride, act + t * as, as, y + t * ys, ys);
        for (; t < nt; ++t) x16_groups<BITS, 1, 2>(n, idx, cnt, w, gstride, act + t * as, as, y + t * ys, ys);
    }
}

}  // namespace

void gl_a8_row_quantize_avx512(const float * x, void * y, int64_t n) { a8_row_quantize(x, y, n); }
void gl_a8_row_quantize_grid_avx512(const float * x, void * y, int64_t n, float s, int32_t z) {
    a8_row_quantize_on(x, y, n, a8_grid_static(s, z));  // rowq_common.h, as the reference
}
void gl_q3_row_vec_dot_a8_avx512(int64_t n, float * s, const void * x, const void * y) { vec_dot_a8<3>(n, s, x, y); }
void gl_q3_row_gemm_a8_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_a8<3>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q3_row_vec_dot_f32_avx512(int64_t n, float * s, const void * x, const void * y) { vec_dot_f32<3>(n, s, x, y); }
void gl_q3_row_gemm_f32_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_f32<3>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q4_row_vec_dot_a8_avx512(int64_t n, float * s, const void * x, const void * y) { vec_dot_a8<4>(n, s, x, y); }
void gl_q8_row_vec_dot_a8_avx512(int64_t n, float * s, const void * x, const void * y) { vec_dot_a8<8>(n, s, x, y); }
void gl_q4_row_gemm_a8_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_a8<4>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q8_row_gemm_a8_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_a8<8>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q4_row_vec_dot_f32_avx512(int64_t n, float * s, const void * x, const void * y) { vec_dot_f32<4>(n, s, x, y); }
void gl_q8_row_vec_dot_f32_avx512(int64_t n, float * s, const void * x, const void * y) { vec_dot_f32<8>(n, s, x, y); }
void gl_q4_row_gemm_f32_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_f32<4>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q8_row_gemm_f32_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_f32<8>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q4_row_gemm_x16_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_x16<4>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q8_row_gemm_x16_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_x16<8>(n, nr, nt, w, ws, a, as, y, ys);
}
