// AVX-512 (F, BW, VL, VNNI) kernels. Built with per-file flags (see CMakeLists.txt) and used only when the CPU
// has them (ggml-lite/cpu.cpp). Same rule as avx2.cpp: no inline functions from shared headers (simd_common.h's are per file), no std::
// templates; everything here has internal linkage and the two tables at the bottom are the only exported symbols.
//
// Quantized matrix products (Q4_0 and Q8_0 weights, Q8_0 activations) have two kernels:
//
// - Batches (more than 4 tokens) put 16 weight ROWS in the 16 int32 lanes of a register. For one block, the 16
//   rows' 32 codes are transposed into 8 registers W[k] (lane r = bytes 4k..4k+3 of row r), and each token then
//   costs 8 VNNI dot products, the activation's dword k broadcast from memory: after 8 of them lane r holds the
//   block's integer dot product of row r, with no horizontal sums and no per-row scale shuffles (the 16 row scales
//   are one vector, the token's scale a broadcast). The transpose (~40 instructions per 16 rows and block) is done
//   once per 64-block segment into a buffer that stays in L1, and shared by every group of 8 tokens.
// - Decode (up to 4 tokens) walks a few rows from start to end: 4 rows × 16 code bytes per register, the
//   activation's 16 matching bytes broadcast to each 128-bit lane (Q8_0 with 1-2 tokens: 2 rows × 32 bytes), and
//   partial sums of 4 (8) blocks folded by transposes. It reads each weight once, in 4-8 sequential streams, which
//   the hardware prefetchers follow at DRAM speed (the 16-row tile's 16 slow streams got half the bandwidth).
//
// vpdpbusd multiplies unsigned by signed bytes, so one side carries an offset that is subtracted again in
// integers (every block's integer dot is exact, as in the scalar code; the float scaling and the sum over blocks
// differ from it only in order):
// - batches: activations + 128 (unsigned), weights signed (Q4_0 code - 8, Q8_0 as stored); the correction
//   -128 * sum(weights) is per weight block, computed with the unpack and shared by every token;
// - decode: activations signed, weights unsigned (Q4_0 codes 0..15, Q8_0 q + 128); the correction
//   -off * sum(activation block), off = 8 or 128, is per token and block.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"

#include <cstring>

// GCC 12's AVX-512 headers build "undefined" vectors as self-initialised locals (__m512 __Y = __Y), which -Wall
// reports once inlined here. They are intended; the warnings say nothing about this file.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "ggml-lite/cpu/act_avx512.h"  // after the pragmas: its AVX-512 code gets them too

namespace {

// Only the scales: dy[b] = fp32 scale of block b. Packed with scalar loads (2 bytes per block; wide loads and
// word permutes read the whole row through the cache: pp512 173 -> 230 t/s), widened 16 at a time.
void act_scales(const gl_block_q8_0 * a, int64_t nb, float * dy) {
    int64_t b = 0;
    for (; b + 16 <= nb; b += 16) {
        alignas(32) uint32_t h[8];
        GL_UNROLL
        for (int j = 0; j < 8; ++j) h[j] = (uint32_t) a[b + 2 * j].d | ((uint32_t) a[b + 2 * j + 1].d << 16);
        _mm512_storeu_ps(dy + b, _mm512_cvtph_ps(_mm256_load_si256((const __m256i *) h)));
    }
    for (; b < nb; ++b) dy[b] = h2f(a[b].d);
}

// ---- 16 weight rows × one block -> 8 registers (lane r = dword k of row r) --------------------------------------

// Rows of a partial tile (or any stride): rows past nr repeat the last row (loaded, never stored).
struct Rows16 {
    const uint8_t * p[16];
    const uint8_t * operator()(int r) const { return p[r]; }
    static constexpr bool uniform = false;
};
// Full tile with a uniform stride: the addresses are computed, no table lookups. Rows 16..31 are the next tile
// (the next chunk of the same thread in gl_mul_mat), only ever prefetched.
struct RowsUniform {
    const uint8_t * base;
    size_t stride;
    const uint8_t * operator()(int r) const { return base + (size_t) r * stride; }
    static constexpr bool uniform = true;
};

// Prefetch of the weights a tile will need next, spread over the work in between. The tile reads 16 rows at once
// block by block, a pattern the hardware prefetchers follow badly from DRAM; while one segment is computed (many
// tokens), the next segment of the 16 rows (or the next tile's first segment) is brought in, row by row.
struct Prefetcher {
    const uint8_t * rows[16];
    int64_t per_row = 0;          // lines per row, from rows[i] (already offset to the range's start)
    int64_t row = 16, line = 0;   // the next line to fetch
    int64_t step = 0;             // lines per run()
    template <class R> void plan(const R & r, int first_row, size_t byte_lo, size_t byte_hi, int64_t n_steps) {
        for (int i = 0; i < 16; ++i) rows[i] = r(first_row + i) + byte_lo;
        per_row = (int64_t) ((byte_hi - byte_lo + 63) / 64) + 1;
        row = 0;
        line = 0;
        step = (16 * per_row + n_steps - 1) / (n_steps > 0 ? n_steps : 1);
    }
    void run() {
        for (int64_t k = 0; k < step && row < 16; ++k) {
            _mm_prefetch((const char *) rows[row] + 64 * line, _MM_HINT_T1);
            if (++line == per_row) line = 0, ++row;
        }
    }
};

// Per 128-bit lane, a 4×4 transpose of dwords: X[i] lane l = 16 bytes of row 4l + i  ->  D[k] lane l element i =
// dword k of row 4l + i, i.e. D[k] lane r (as 16 dwords) = dword k of row r.
inline void transpose4(const __m512i X[4], __m512i D[4]) {
    const __m512i t0 = _mm512_unpacklo_epi32(X[0], X[1]);
    const __m512i t1 = _mm512_unpackhi_epi32(X[0], X[1]);
    const __m512i t2 = _mm512_unpacklo_epi32(X[2], X[3]);
    const __m512i t3 = _mm512_unpackhi_epi32(X[2], X[3]);
    D[0] = _mm512_unpacklo_epi64(t0, t2);
    D[1] = _mm512_unpackhi_epi64(t0, t2);
    D[2] = _mm512_unpacklo_epi64(t1, t3);
    D[3] = _mm512_unpackhi_epi64(t1, t3);
}

// 32 bytes at rows(r) + off, or only 16 of them (the row's last block: nothing past it may be read).
template <bool LAST> inline __m256i load32(const uint8_t * p) {
    if (LAST) return _mm256_maskz_loadu_epi8(0xFFFF, p);
    return _mm256_loadu_si256((const __m256i *) p);
}

// From 32-byte loads at rows(r) + off: codes (dwords 0..3 of each row) into D[0..3], and the fp16 in the low half
// of dword 4 (the next block's scale, right after this block) as fp32 into dx_next (unless LAST).
template <bool LAST, class R> inline void load_rows32(const R & rows, size_t off, __m512i D[4], __m512 * dx_next) {
    __m512i Z[8];  // Z[i] = rows i | i+4, Z[4+i] = rows 8+i | 12+i  (i < 4), 256 bits each
    GL_UNROLL
    for (int i = 0; i < 4; ++i) {
        Z[i] = _mm512_inserti64x4(_mm512_zextsi256_si512(load32<LAST>(rows(i) + off)), load32<LAST>(rows(i + 4) + off), 1);
        Z[4 + i] = _mm512_inserti64x4(_mm512_zextsi256_si512(load32<LAST>(rows(8 + i) + off)), load32<LAST>(rows(12 + i) + off), 1);
    }
    __m512i X[4];
    GL_UNROLL
    for (int i = 0; i < 4; ++i) X[i] = _mm512_shuffle_i64x2(Z[i], Z[4 + i], 0x88);  // lanes: rows i, i+4, 8+i, 12+i
    transpose4(X, D);
    if (!LAST) {
        GL_UNROLL
        for (int i = 0; i < 4; ++i) X[i] = _mm512_shuffle_i64x2(Z[i], Z[4 + i], 0xDD);  // the upper 16 bytes
        const __m512i e = _mm512_unpacklo_epi64(_mm512_unpacklo_epi32(X[0], X[1]), _mm512_unpacklo_epi32(X[2], X[3]));
        *dx_next = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(e));
    }
}

// From 16-byte loads at rows(r) + off: D[k] lane r = dword k of row r.
template <class R> inline void load_rows16(const R & rows, size_t off, __m512i D[4]) {
    __m512i X[4];
    GL_UNROLL
    for (int i = 0; i < 4; ++i) {
        __m512i v = _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *) (rows(i) + off)));
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *) (rows(4 + i) + off)), 1);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *) (rows(8 + i) + off)), 2);
        v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i *) (rows(12 + i) + off)), 3);
        X[i] = v;
    }
    transpose4(X, D);
}

// The 16 rows' scales of the block at off, one at a time (once per tile; later blocks get theirs from load_rows32).
template <class R> inline __m512 scales16(const R & rows, size_t off) {
    alignas(64) float d[16];
    for (int r = 0; r < 16; ++r) d[r] = h2f(load_u16(rows(r) + off));
    return _mm512_load_ps(d);
}

struct Q4s;
struct Q8s;

// Weight values as signed bytes (the batch kernel's signed operand): Q4_0 code - 8, Q8_0 as stored.
struct Q4 {
    using S = Q4s;
    static constexpr size_t bs = sizeof(gl_block_q4_0);
    template <bool LAST, class R> static inline void unpack(const R & rows, size_t off, __m512i W[8], __m512 * dx_next) {
        __m512i D[4];
        load_rows32<LAST>(rows, off + 2, D, dx_next);
        const __m512i m4 = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
        GL_UNROLL
        for (int k = 0; k < 4; ++k) {
            W[k] = _mm512_sub_epi8(_mm512_and_si512(D[k], m4), eight);                            // values 4k..4k+3
            W[k + 4] = _mm512_sub_epi8(_mm512_and_si512(_mm512_srli_epi16(D[k], 4), m4), eight);  // values 16+4k..
        }
    }
};

struct Q8 {
    using S = Q8s;
    static constexpr size_t bs = sizeof(gl_block_q8_0);
    template <bool LAST, class R> static inline void unpack(const R & rows, size_t off, __m512i W[8], __m512 * dx_next) {
        __m512i D[4];
        load_rows16(rows, off + 2, D);
        GL_UNROLL
        for (int k = 0; k < 4; ++k) W[k] = D[k];
        load_rows32<LAST>(rows, off + 18, D, dx_next);
        GL_UNROLL
        for (int k = 0; k < 4; ++k) W[k + 4] = D[k];
    }
};

template <class Q, class R> inline void unpack_block(const R & rows, int64_t b, int64_t nb, __m512i W[8], __m512 * dx_next) {
    if (__builtin_expect(b + 1 < nb, 1)) Q::template unpack<false>(rows, (size_t) b * Q::bs, W, dx_next);
    else Q::template unpack<true>(rows, (size_t) b * Q::bs, W, dx_next);
}

// One block, 16 rows (W, CW, DX) × T tokens: facc[t] += DX * dy[t] * (CW + sum_k dpbusd(a_t dword k + 128, W[k])).
// The activation bytes are the unsigned operand, made unsigned by +128 (xor 0x80) as they are broadcast; the
// weights' correction CW = -128 * (sum of the row's block values) comes with the unpacked weights. a[t]: the
// tokens' code bytes (qs) of this block. With few tokens the 8 dependent dot products of a token are split into
// independent chains, so that their latency does not serialize the block.
template <int T>
inline void block_dot(const __m512i W[8], __m512i CW, __m512 DX, const int8_t * const a[T], const float * dy, size_t dstride,
                      __m512 facc[T]) {
    constexpr int C = T == 1 ? 4 : T == 2 ? 2 : 1;  // chains per token
    const __m512i x80 = _mm512_set1_epi32((int) 0x80808080u);
    GL_UNROLL
    for (int t = 0; t < T; ++t) {
        const int8_t * q = a[t];
        __m512i acc[C];
        acc[0] = CW;
        GL_UNROLL
        for (int c = 1; c < C; ++c) acc[c] = _mm512_setzero_si512();
        GL_UNROLL
        for (int k = 0; k < 8; ++k)
            acc[k % C] = _mm512_dpbusd_epi32(acc[k % C], _mm512_xor_si512(_mm512_set1_epi32(load_i32(q + 4 * k)), x80), W[k]);
        if (C == 4) {
            acc[0] = _mm512_add_epi32(acc[0], acc[2]);
            acc[1] = _mm512_add_epi32(acc[1], acc[3]);
        }
        if (C >= 2) acc[0] = _mm512_add_epi32(acc[0], acc[1]);
        const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[0]), DX);
        facc[t] = _mm512_fmadd_ps(f, _mm512_set1_ps(dy[t * dstride]), facc[t]);
    }
}

constexpr int64_t SEG = 64;  // blocks per segment: the unpacked weights of one segment (40 KiB) stay in L1/L2
constexpr int TT = 8;        // tokens per register tile

// Batches: per segment, unpack the 16 rows once into a buffer, then run groups of TT tokens over it.
template <int T>
inline void tile_buffered_tokens(const __m512i * wbuf, int64_t nbs, int64_t b0, const uint8_t * act, size_t act_stride,
                                 float * y, int64_t y_stride, __mmask16 m, bool add) {
    alignas(64) float dy[T * SEG];
    GL_UNROLL
    for (int t = 0; t < T; ++t) act_scales((const gl_block_q8_0 *) (act + (size_t) t * act_stride) + b0, nbs, dy + t * SEG);
    __m512 facc[T];
    GL_UNROLL
    for (int t = 0; t < T; ++t) facc[t] = _mm512_setzero_ps();
    for (int64_t b = 0; b < nbs; ++b) {
        const __m512i * wb = wbuf + b * 10;
        __m512i W[8];
        GL_UNROLL
        for (int k = 0; k < 8; ++k) W[k] = _mm512_load_si512(wb + k);
        const __m512 DX = _mm512_castsi512_ps(_mm512_load_si512(wb + 8));
        const __m512i CW = _mm512_load_si512(wb + 9);
        const int8_t * a[T];
        GL_UNROLL
        for (int t = 0; t < T; ++t) a[t] = (const int8_t *) (act + (size_t) t * act_stride + (size_t) (b0 + b) * 34 + 2);
        block_dot<T>(W, CW, DX, a, dy + b, SEG, facc);
    }
    GL_UNROLL
    for (int t = 0; t < T; ++t) store_rows(y + t * y_stride, facc[t], m, add);
}

template <class Q, class R>
void tile_buffered(int64_t nb, int64_t nt, const R & rows, const uint8_t * act, size_t act_stride, float * y, int64_t y_stride,
                   __mmask16 m) {
    alignas(64) __m512i wbuf[SEG * 10];  // per block: W[0..7], DX, CW
    __m512 DX = scales16(rows, 0);
    Prefetcher pf;
    const int64_t n_tiles = (nt + TT - 1) / TT;
    for (int64_t b0 = 0; b0 < nb; b0 += SEG) {
        const int64_t nbs = min_i64(SEG, nb - b0);
        if (b0 + SEG < nb) pf.plan(rows, 0, (size_t) (b0 + SEG) * Q::bs, (size_t) min_i64(nb, b0 + 2 * SEG) * Q::bs, n_tiles);
        else if (R::uniform) pf.plan(rows, 16, 0, (size_t) min_i64(nb, SEG) * Q::bs, n_tiles);
        else pf.row = 16;
        for (int64_t b = 0; b < nbs; ++b) {
            __m512i W[8];
            __m512 DXn = DX;
            unpack_block<Q>(rows, b0 + b, nb, W, &DXn);
            // CW = -128 * sum of the block's 32 values, per row.
            const __m512i ones = _mm512_set1_epi8(1);
            __m512i sw = _mm512_setzero_si512();
            GL_UNROLL
            for (int k = 0; k < 8; ++k) {
                _mm512_store_si512(wbuf + b * 10 + k, W[k]);
                sw = _mm512_dpbusd_epi32(sw, ones, W[k]);
            }
            _mm512_store_si512(wbuf + b * 10 + 8, _mm512_castps_si512(DX));
            _mm512_store_si512(wbuf + b * 10 + 9, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sw, 7)));
            DX = DXn;
        }
        const bool add = b0 > 0;
        int64_t t = 0;
        for (; t + TT <= nt; t += TT) {
            pf.run();
            tile_buffered_tokens<TT>(wbuf, nbs, b0, act + (size_t) t * act_stride, act_stride, y + t * y_stride, y_stride, m, add);
        }
        pf.run();
        const uint8_t * at = act + (size_t) t * act_stride;
        float * yt = y + t * y_stride;
        switch (nt - t) {
            case 0: break;
            case 1: tile_buffered_tokens<1>(wbuf, nbs, b0, at, act_stride, yt, y_stride, m, add); break;
            case 2: tile_buffered_tokens<2>(wbuf, nbs, b0, at, act_stride, yt, y_stride, m, add); break;
            case 3: tile_buffered_tokens<3>(wbuf, nbs, b0, at, act_stride, yt, y_stride, m, add); break;
            case 4: tile_buffered_tokens<4>(wbuf, nbs, b0, at, act_stride, yt, y_stride, m, add); break;
            case 5: tile_buffered_tokens<5>(wbuf, nbs, b0, at, act_stride, yt, y_stride, m, add); break;
            case 6: tile_buffered_tokens<6>(wbuf, nbs, b0, at, act_stride, yt, y_stride, m, add); break;
            default: tile_buffered_tokens<7>(wbuf, nbs, b0, at, act_stride, yt, y_stride, m, add); break;
        }
    }
}

// ---- few tokens: 4 rows at a time, each row read from start to end ------------------------------------------------
//
// Decode reads every weight once, from DRAM. The 16-row tile above touches 16 rows at once, 18 bytes each per block:
// 16 slow streams per thread that the hardware prefetchers follow badly (measured: half the DRAM bandwidth of a
// 4-row walk). So for a few tokens the rows go 4 at a time, each group walking its rows to the end: 4 fast streams.
//
// Layout: one register holds 4 rows × 16 code bytes (128-bit lane = row); the activation's 16 matching bytes are
// broadcast to every lane, so vpdpbusd leaves 4 partial sums per row (lane = row × dword) with no shuffles on the
// activation side. Blocks go 4 at a time: their partial sums are folded by in-lane transposes into one register
// whose lane (row r, j) is the integer dot of block j of row r, then scaled by the 4×4 (row, block) weight scales
// and the blocks' activation scales in one multiply and one FMA. Both types share it: a Q4_0 row's 16 bytes are
// codes 0..15 (low nibbles) and 16..31 (high nibbles), a Q8_0 row's 32 codes are two 16-byte halves (+128).

constexpr int64_t ASEG = 512;  // blocks of activation setup per pass (16384 elements: one pass for usual rows)

struct Q4s {
    static constexpr size_t bs = sizeof(gl_block_q4_0);
    static constexpr int shift = 3;
    // Codes of block b of 4 rows: W[0] pairs with activation bytes 0..15, W[1] with 16..31.
    static inline void load(const uint8_t * const rp[4], size_t off, __m512i W[2]) {
        __m512i x = _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *) (rp[0] + off + 2)));
        x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *) (rp[1] + off + 2)), 1);
        x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *) (rp[2] + off + 2)), 2);
        x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *) (rp[3] + off + 2)), 3);
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        W[0] = _mm512_and_si512(x, m4);
        W[1] = _mm512_and_si512(_mm512_srli_epi16(x, 4), m4);
    }
    // Scales of blocks b..b+v-1 (v <= 4) of 4 rows, lane (row r, block j) = 4r + j, as fp32; 0 past v.
    static inline __m512 scales(const uint8_t * const rp[4], size_t off, int v) {
        // A row's 4 scales are words 0, 9, 18, 27 of its 64 bytes from block b (72 bytes when v = 4).
        const __mmask64 m = v >= 4 ? ~(__mmask64) 0 : (((__mmask64) 1 << (18 * v)) - 1);
        static const uint16_t k_idx[32] = {0, 9, 18, 27, 32, 41, 50, 59, 0, 9, 18, 27, 32, 41, 50, 59,
                                           0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        const __m512i idx = _mm512_loadu_si512(k_idx);
        const __m512i v01 = _mm512_maskz_permutex2var_epi16(0x00FF, _mm512_maskz_loadu_epi8(m, rp[0] + off), idx, _mm512_maskz_loadu_epi8(m, rp[1] + off));
        const __m512i v23 = _mm512_maskz_permutex2var_epi16(0xFF00, _mm512_maskz_loadu_epi8(m, rp[2] + off), idx, _mm512_maskz_loadu_epi8(m, rp[3] + off));
        return _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_or_si512(v01, v23)));
    }
};

struct Q8s {
    static constexpr size_t bs = sizeof(gl_block_q8_0);
    static constexpr int shift = 7;
    static inline __m512i load16x4(const uint8_t * const rp[4], size_t off) {
        __m512i x = _mm512_zextsi128_si512(_mm_loadu_si128((const __m128i *) (rp[0] + off)));
        x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *) (rp[1] + off)), 1);
        x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *) (rp[2] + off)), 2);
        x = _mm512_inserti32x4(x, _mm_loadu_si128((const __m128i *) (rp[3] + off)), 3);
        return _mm512_xor_si512(x, _mm512_set1_epi8((char) 0x80));
    }
    static inline void load(const uint8_t * const rp[4], size_t off, __m512i W[2]) {
        W[0] = load16x4(rp, off + 2);
        W[1] = load16x4(rp, off + 18);
    }
    static inline __m512 scales(const uint8_t * const rp[4], size_t off, int v) {
        // A row's scales: words 0 and 17 of 64 bytes from block b, and of 64 bytes from block b + 2.
        const __mmask64 m0 = v >= 2 ? ~(__mmask64) 0 : (((__mmask64) 1 << (34 * v)) - 1);
        const __mmask64 m1 = v >= 4 ? ~(__mmask64) 0 : v <= 2 ? 0 : (((__mmask64) 1 << (34 * (v - 2))) - 1);
        alignas(64) static const uint16_t k_idx[4][32] = {
            {0, 17, 32, 49},
            {0, 0, 0, 0, 0, 17, 32, 49},
            {0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 32, 49},
            {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 32, 49},
        };
        __m512i acc = _mm512_setzero_si512();
        GL_UNROLL
        for (int r = 0; r < 4; ++r) {
            const __m512i lo = _mm512_maskz_loadu_epi8(m0, rp[r] + off), hi = _mm512_maskz_loadu_epi8(m1, rp[r] + off + 2 * bs);
            acc = _mm512_or_si512(acc, _mm512_maskz_permutex2var_epi16((__mmask32) (0xFu << (4 * r)), lo, _mm512_load_si512(k_idx[r]), hi));
        }
        return _mm512_cvtph_ps(_mm512_castsi512_si256(acc));
    }
};

// The decode passes read their rows a few blocks at a time; on their own the hardware prefetchers then keep too
// few lines in flight to use the DRAM bandwidth (one thread: 27 of 34 GB/s, two: 41 of 73). So each pass also
// prefetches the rows of the next pass (or the next chunk's first rows: the same thread's next call in
// gl_mul_mat), as one linear region spread evenly over its steps (Q4_0, two threads: 41 -> 67 GB/s).
struct LinearPrefetch {
    const char * p;
    int64_t lines, per_step, done = 0;
    LinearPrefetch(const uint8_t * begin, size_t bytes, int64_t steps)
        : p((const char *) begin), lines((int64_t) ((bytes + 63) / 64)), per_step((lines + steps - 1) / (steps > 0 ? steps : 1)) {}
    void step() {
        for (const int64_t e = min_i64(done + per_step, lines); done < e; ++done) _mm_prefetch(p + 64 * done, _MM_HINT_T0);
    }
};

// P[0..3]: lane (row r, dword k) partial sums of 4 blocks  ->  lane (row r, j) = full sum of block j.
inline __m512i fold4(const __m512i P[4]) {
    const __m512i s01 = _mm512_add_epi32(_mm512_unpacklo_epi32(P[0], P[1]), _mm512_unpackhi_epi32(P[0], P[1]));
    const __m512i s23 = _mm512_add_epi32(_mm512_unpacklo_epi32(P[2], P[3]), _mm512_unpackhi_epi32(P[2], P[3]));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(s01, s23), _mm512_unpackhi_epi64(s01, s23));
}

// Blocks [b, b + V) (V <= 4; b relative to the setup segment starting at block s0) of G groups of 4 rows × T
// tokens (G = 2: 8 rows share each activation load).
template <class Q, int T, int V, int G>
inline void stream_step(const uint8_t * const rp[4 * G], int64_t s0, int64_t b, const int8_t * const aq[T], const int32_t * ncorr,
                        const float * dy, __m512 facc[T * G]) {
    __m512i P[T * G][4];
    GL_UNROLL
    for (int j = 0; j < 4; ++j) {
        if (j >= V) {
            GL_UNROLL
            for (int i = 0; i < T * G; ++i) P[i][j] = _mm512_setzero_si512();
            continue;
        }
        __m512i W[G][2];
        GL_UNROLL
        for (int g = 0; g < G; ++g) Q::load(rp + 4 * g, (size_t) (s0 + b + j) * Q::bs, W[g]);
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            const int8_t * q = aq[t] + (b + j) * 34;
            const __m512i a0 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) q));
            const __m512i a1 = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (q + 16)));
            GL_UNROLL
            for (int g = 0; g < G; ++g)
                P[t * G + g][j] = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), W[g][0], a0), W[g][1], a1);
        }
    }
    GL_UNROLL
    for (int g = 0; g < G; ++g) {
        const __m512 DX = Q::scales(rp + 4 * g, (size_t) (s0 + b) * Q::bs, V);
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            // The blocks' offset corrections, lane (row, j) += ncorr[b + j], then the scales.
            const __m512i C = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) (ncorr + t * (ASEG + 16) + b)));
            const __m512 DY = _mm512_broadcast_f32x4(_mm_loadu_ps(dy + t * (ASEG + 16) + b));
            const __m512i R = _mm512_add_epi32(fold4(P[t * G + g]), C);
            facc[t * G + g] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(R), DX), DY, facc[t * G + g]);
        }
    }
}

template <class Q, int T, int G>
void gemm_stream(int64_t nb, int64_t nr, const uint8_t * w, size_t w_stride, const uint8_t * act, size_t act_stride, float * y,
                 int64_t y_stride) {
    // Per token: the blocks' negated offset corrections and scales, zero past the last block (the last step reads
    // 4 at a time; the vector setup writes 16 at a time).
    alignas(64) int32_t ncorr[T * (ASEG + 16)];
    alignas(64) float dy[T * (ASEG + 16)];
    for (int64_t s0 = 0; s0 < nb; s0 += ASEG) {
        const int64_t ns = min_i64(ASEG, nb - s0);
        const int8_t * aq[T];
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            const gl_block_q8_0 * a = (const gl_block_q8_0 *) (act + (size_t) t * act_stride) + s0;
            act_sums(a, ns, Q::shift, ncorr + t * (ASEG + 16), dy + t * (ASEG + 16));
            for (int64_t b = ns; b < ns + 4; ++b) ncorr[t * (ASEG + 16) + b] = 0, dy[t * (ASEG + 16) + b] = 0.0f;
            aq[t] = (const int8_t *) a->qs;
        }
        for (int64_t r0 = 0; r0 < nr; r0 += 4 * G) {
            const int64_t nrr = min_i64(4 * G, nr - r0);
            const uint8_t * rp[4 * G];
            for (int r = 0; r < 4 * G; ++r) rp[r] = w + (size_t) (r0 + (r < nrr ? r : nrr - 1)) * w_stride;
            __m512 facc[T * G];
            GL_UNROLL
            for (int i = 0; i < T * G; ++i) facc[i] = _mm512_setzero_ps();
            LinearPrefetch pf(w + (size_t) (r0 + 4 * G) * w_stride + (size_t) s0 * Q::bs, 4 * G * w_stride, (ns + 3) / 4);
            int64_t b = 0;
            for (; b + 4 <= ns; b += 4) {
                pf.step();
                stream_step<Q, T, 4, G>(rp, s0, b, aq, ncorr, dy, facc);
            }
            switch (ns - b) {
                case 1: stream_step<Q, T, 1, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                case 2: stream_step<Q, T, 2, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                case 3: stream_step<Q, T, 3, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                default: break;
            }
            // Lane (row r, j) -> sum over j, one float per row; the first segment stores, later ones add.
            GL_UNROLL
            for (int t = 0; t < T; ++t) {
                GL_UNROLL
                for (int g = 0; g < G; ++g) {
                    const int64_t rows_here = min_i64(4, nrr - 4 * g);
                    if (rows_here <= 0) continue;
                    __m512 h = _mm512_add_ps(facc[t * G + g], _mm512_permute_ps(facc[t * G + g], 0x4E));
                    h = _mm512_add_ps(h, _mm512_permute_ps(h, 0xB1));
                    store_rows(y + t * y_stride + r0 + 4 * g, _mm512_maskz_compress_ps(0x1111, h), (__mmask16) ((1u << rows_here) - 1), s0 > 0);
                }
            }
        }
    }
}

// Q8_0 decode, wider: 2 rows × 32 code bytes per register (one 32-byte load per row and block, half the loads
// and inserts of the 4-row layout), the activation block broadcast to both halves. A row's partial sums then sit
// in 8 dword lanes; 8 blocks are folded together: two fold4 (in-lane) and one cross-lane step leave lane (q, j)
// = block 4 (q >> 1) + j of row q & 1 of the pair.
inline __m512i q8w_fold8(__m512i H0, __m512i H1) {
    return _mm512_add_epi32(_mm512_shuffle_i64x2(H0, H1, 0x88), _mm512_shuffle_i64x2(H0, H1, 0xDD));
}

// 8 values v[0..7] in the fold's lane order: [v0..3, v0..3, v4..7, v4..7].
inline __m512i q8w_spread(const void * v) {
    static const int32_t k_idx[16] = {0, 1, 2, 3, 0, 1, 2, 3, 4, 5, 6, 7, 4, 5, 6, 7};
    return _mm512_permutexvar_epi32(_mm512_loadu_si512(k_idx), _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) v)));
}

// Scales of blocks [b, b + v) (v <= 8) of the pair (r0, r1), in the fold's lane order; 0 past v.
inline __m512 q8w_scales(const uint8_t * r0, const uint8_t * r1, size_t off, int v) {
    alignas(64) static const uint16_t k_idx[4][32] = {
        {0, 17, 32, 49},
        {0, 0, 0, 0, 0, 17, 32, 49},
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 32, 49},
        {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 17, 32, 49},
    };
    const size_t bs = sizeof(gl_block_q8_0);
    __m512i acc = _mm512_setzero_si512();
    GL_UNROLL
    for (int q = 0; q < 4; ++q) {
        // lane q: row q & 1, blocks b + 4 (q >> 1) .. +3; each 64-byte load holds the scales of 2 blocks (words 0, 17).
        const uint8_t * r = (q & 1) ? r1 : r0;
        const int first = 4 * (q >> 1);
        const int n0 = v - first, n1 = v - first - 2;
        const __mmask64 m0 = n0 >= 2 ? ~(__mmask64) 0 : n0 == 1 ? (((__mmask64) 1 << 34) - 1) : 0;
        const __mmask64 m1 = n1 >= 2 ? ~(__mmask64) 0 : n1 == 1 ? (((__mmask64) 1 << 34) - 1) : 0;
        const __m512i lo = _mm512_maskz_loadu_epi8(m0, r + off + first * bs), hi = _mm512_maskz_loadu_epi8(m1, r + off + (first + 2) * bs);
        acc = _mm512_or_si512(acc, _mm512_maskz_permutex2var_epi16((__mmask32) (0xFu << (4 * q)), lo, _mm512_load_si512(k_idx[q]), hi));
    }
    return _mm512_cvtph_ps(_mm512_castsi512_si256(acc));
}

// Blocks [b, b + V) (V <= 8) of G row pairs × T tokens.
template <int T, int V, int G>
inline void q8w_step(const uint8_t * const rp[2 * G], int64_t s0, int64_t b, const int8_t * const aq[T], const int32_t * ncorr,
                     const float * dy, __m512 facc[T * G]) {
    const size_t bs = sizeof(gl_block_q8_0);
    const __m512i x80 = _mm512_set1_epi8((char) 0x80);
    __m512i H[2][T * G];
    GL_UNROLL
    for (int half = 0; half < 2; ++half) {
        __m512i P[T * G][4];
        GL_UNROLL
        for (int j = 0; j < 4; ++j) {
            const int blk = 4 * half + j;
            if (blk >= V) {
                GL_UNROLL
                for (int i = 0; i < T * G; ++i) P[i][j] = _mm512_setzero_si512();
                continue;
            }
            const size_t off = (size_t) (s0 + b + blk) * bs + 2;
            __m512i W[G];
            GL_UNROLL
            for (int g = 0; g < G; ++g) {
                const __m512i x = _mm512_inserti64x4(_mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) (rp[2 * g] + off))),
                                                     _mm256_loadu_si256((const __m256i *) (rp[2 * g + 1] + off)), 1);
                W[g] = _mm512_xor_si512(x, x80);
            }
            GL_UNROLL
            for (int t = 0; t < T; ++t) {
                const __m512i a = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) (aq[t] + (b + blk) * 34)));
                GL_UNROLL
                for (int g = 0; g < G; ++g) P[t * G + g][j] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), W[g], a);
            }
        }
        GL_UNROLL
        for (int i = 0; i < T * G; ++i) H[half][i] = fold4(P[i]);
    }
    GL_UNROLL
    for (int g = 0; g < G; ++g) {
        const __m512 DX = q8w_scales(rp[2 * g], rp[2 * g + 1], (size_t) (s0 + b) * bs, V);
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            const __m512i C = q8w_spread(ncorr + t * (ASEG + 16) + b);
            const __m512 DY = _mm512_castsi512_ps(q8w_spread(dy + t * (ASEG + 16) + b));
            const __m512i R = _mm512_add_epi32(q8w_fold8(H[0][t * G + g], H[1][t * G + g]), C);
            facc[t * G + g] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(R), DX), DY, facc[t * G + g]);
        }
    }
}

template <int T, int G>
void gemm_q8w(int64_t nb, int64_t nr, const uint8_t * w, size_t w_stride, const uint8_t * act, size_t act_stride, float * y,
              int64_t y_stride) {
    alignas(64) int32_t ncorr[T * (ASEG + 16)];
    alignas(64) float dy[T * (ASEG + 16)];
    for (int64_t s0 = 0; s0 < nb; s0 += ASEG) {
        const int64_t ns = min_i64(ASEG, nb - s0);
        const int8_t * aq[T];
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            const gl_block_q8_0 * a = (const gl_block_q8_0 *) (act + (size_t) t * act_stride) + s0;
            act_sums(a, ns, 7, ncorr + t * (ASEG + 16), dy + t * (ASEG + 16));
            for (int64_t b = ns; b < ns + 8; ++b) ncorr[t * (ASEG + 16) + b] = 0, dy[t * (ASEG + 16) + b] = 0.0f;
            aq[t] = (const int8_t *) a->qs;
        }
        for (int64_t r0 = 0; r0 < nr; r0 += 2 * G) {
            const int64_t nrr = min_i64(2 * G, nr - r0);
            const uint8_t * rp[2 * G];
            for (int r = 0; r < 2 * G; ++r) rp[r] = w + (size_t) (r0 + (r < nrr ? r : nrr - 1)) * w_stride;
            __m512 facc[T * G];
            GL_UNROLL
            for (int i = 0; i < T * G; ++i) facc[i] = _mm512_setzero_ps();
            LinearPrefetch pf(w + (size_t) (r0 + 2 * G) * w_stride + (size_t) s0 * sizeof(gl_block_q8_0), 2 * G * w_stride, (ns + 7) / 8);
            int64_t b = 0;
            for (; b + 8 <= ns; b += 8) {
                pf.step();
                q8w_step<T, 8, G>(rp, s0, b, aq, ncorr, dy, facc);
            }
            switch (ns - b) {
                case 1: q8w_step<T, 1, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                case 2: q8w_step<T, 2, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                case 3: q8w_step<T, 3, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                case 4: q8w_step<T, 4, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                case 5: q8w_step<T, 5, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                case 6: q8w_step<T, 6, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                case 7: q8w_step<T, 7, G>(rp, s0, b, aq, ncorr, dy, facc); break;
                default: break;
            }
            // Lane (q, j): row q & 1, block 4 (q >> 1) + j -> one float per row.
            GL_UNROLL
            for (int t = 0; t < T; ++t) {
                GL_UNROLL
                for (int g = 0; g < G; ++g) {
                    const int64_t rows_here = min_i64(2, nrr - 2 * g);
                    if (rows_here <= 0) continue;
                    __m512 h = facc[t * G + g];
                    h = _mm512_add_ps(h, _mm512_shuffle_f32x4(h, h, 0x4E));  // + the other half's blocks
                    h = _mm512_add_ps(h, _mm512_permute_ps(h, 0x4E));
                    h = _mm512_add_ps(h, _mm512_permute_ps(h, 0xB1));
                    store_rows(y + t * y_stride + r0 + 2 * g, _mm512_maskz_compress_ps(0x0011, h), (__mmask16) ((1u << rows_here) - 1), s0 > 0);
                }
            }
        }
    }
}

template <class Q>
void gemm_q(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride, float * y,
            int64_t y_stride) {
    const int64_t nb = n / 32;
    if (nb <= 0) {
        for (int64_t t = 0; t < nt; ++t)
            for (int64_t r = 0; r < nr; ++r) y[t * y_stride + r] = 0.0f;
        return;
    }
    if (nt <= 0) return;
    const uint8_t * wb = (const uint8_t *) w;
    const uint8_t * ab = (const uint8_t *) act;
    // Up to 4 tokens: the row-walking kernel (8 rows per pass for 1 or 2 tokens, 4 for 3 or 4: registers).
    if (Q::bs == sizeof(gl_block_q8_0) && nt <= 2) {
        if (nt == 1) gemm_q8w<1, 2>(nb, nr, wb, w_stride, ab, act_stride, y, y_stride);
        else gemm_q8w<2, 2>(nb, nr, wb, w_stride, ab, act_stride, y, y_stride);
        return;
    }
    if (nt <= 4) {
        switch (nt) {
            case 1: gemm_stream<typename Q::S, 1, 2>(nb, nr, wb, w_stride, ab, act_stride, y, y_stride); return;
            case 2: gemm_stream<typename Q::S, 2, 2>(nb, nr, wb, w_stride, ab, act_stride, y, y_stride); return;
            case 3: gemm_stream<typename Q::S, 3, 1>(nb, nr, wb, w_stride, ab, act_stride, y, y_stride); return;
            default: gemm_stream<typename Q::S, 4, 1>(nb, nr, wb, w_stride, ab, act_stride, y, y_stride); return;
        }
    }
    for (int64_t r0 = 0; r0 < nr; r0 += 16) {
        const int64_t nrr = min_i64(16, nr - r0);
        const uint8_t * base = wb + (size_t) r0 * w_stride;
        if (nrr == 16) {
            tile_buffered<Q>(nb, nt, RowsUniform{base, w_stride}, ab, act_stride, y + r0, y_stride, 0xFFFF);
        } else {
            Rows16 rows;
            for (int r = 0; r < 16; ++r) rows.p[r] = base + (size_t) (r < nrr ? r : nrr - 1) * w_stride;
            tile_buffered<Q>(nb, nt, rows, ab, act_stride, y + r0, y_stride, (__mmask16) ((1u << nrr) - 1));
        }
    }
}

void q4_0_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride, float * y,
               int64_t y_stride) {
    gemm_q<Q4>(n, nr, nt, w, w_stride, act, act_stride, y, y_stride);
}

void q8_0_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride, float * y,
               int64_t y_stride) {
    gemm_q<Q8>(n, nr, nt, w, w_stride, act, act_stride, y, y_stride);
}

// ---- single dot products (one row, one token): two blocks per register ----------------------------------------

inline float hsum(__m512 v) { return _mm512_reduce_add_ps(v); }

// [s0 x8, s1 x8]
inline __m512 scale_pair(float s0, float s1) {
    return _mm512_insertf32x8(_mm512_set1_ps(s0), _mm256_set1_ps(s1), 1);
}

void q4_0_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const gl_block_q4_0 * x = (const gl_block_q4_0 *) vx;
    const gl_block_q8_0 * a = (const gl_block_q8_0 *) vy;
    const int64_t nb = n / 32;
    const __m512i m4 = _mm512_set1_epi8(0x0F), eights = _mm512_set1_epi8(8);
    const __m512i dup = _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3);
    const __m512i shifts = _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        const __m256i q = _mm256_loadu2_m128i((const __m128i *) x[b + 1].qs, (const __m128i *) x[b].qs);
        const __m512i wq = _mm512_and_si512(_mm512_srlv_epi64(_mm512_permutexvar_epi64(dup, _mm512_zextsi256_si512(q)), shifts), m4);
        __m512i av = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) a[b].qs));
        av = _mm512_inserti64x4(av, _mm256_loadu_si256((const __m256i *) a[b + 1].qs), 1);
        const __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wq, av),
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(), eights, av));
        const __m512 sc = scale_pair(h2f(x[b].d) * h2f(a[b].d), h2f(x[b + 1].d) * h2f(a[b + 1].d));
        if (b & 2) acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc1);
        else acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc0);
    }
    float sum = hsum(_mm512_add_ps(acc0, acc1));
    for (; b < nb; ++b) {
        const __m128i q = _mm_loadu_si128((const __m128i *) x[b].qs);
        const __m256i wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), _mm256_set1_epi8(0x0F));
        const __m256i av = _mm256_loadu_si256((const __m256i *) a[b].qs);
        const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), wq, av),
                                           _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(8), av));
        __m128i v = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
        v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 1));
        sum += (float) _mm_cvtsi128_si32(v) * (h2f(x[b].d) * h2f(a[b].d));
    }
    *s = sum;
}

void q8_0_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const gl_block_q8_0 * x = (const gl_block_q8_0 *) vx;
    const gl_block_q8_0 * a = (const gl_block_q8_0 *) vy;
    const int64_t nb = n / 32;
    const __m512i x80 = _mm512_set1_epi8((char) 0x80);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    int64_t b = 0;
    // sum(w * a) = sum((w + 128) * a) - 128 * sum(a): unsigned × signed, exact for every byte value.
    for (; b + 2 <= nb; b += 2) {
        __m512i wv = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) x[b].qs));
        wv = _mm512_xor_si512(_mm512_inserti64x4(wv, _mm256_loadu_si256((const __m256i *) x[b + 1].qs), 1), x80);
        __m512i av = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *) a[b].qs));
        av = _mm512_inserti64x4(av, _mm256_loadu_si256((const __m256i *) a[b + 1].qs), 1);
        const __m512i p = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), wv, av),
                                           _mm512_dpbusd_epi32(_mm512_setzero_si512(), x80, av));
        const __m512 sc = scale_pair(h2f(x[b].d) * h2f(a[b].d), h2f(x[b + 1].d) * h2f(a[b + 1].d));
        if (b & 2) acc1 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc1);
        else acc0 = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), sc, acc0);
    }
    float sum = hsum(_mm512_add_ps(acc0, acc1));
    for (; b < nb; ++b) {
        const __m256i x80y = _mm256_set1_epi8((char) 0x80);
        const __m256i wv = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *) x[b].qs), x80y);
        const __m256i av = _mm256_loadu_si256((const __m256i *) a[b].qs);
        const __m256i p = _mm256_sub_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), wv, av),
                                           _mm256_dpbusd_epi32(_mm256_setzero_si256(), x80y, av));
        __m128i v = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        v = _mm_add_epi32(v, _mm_unpackhi_epi64(v, v));
        v = _mm_add_epi32(v, _mm_shuffle_epi32(v, 1));
        sum += (float) _mm_cvtsi128_si32(v) * (h2f(x[b].d) * h2f(a[b].d));
    }
    *s = sum;
}

// ---- float types: dot products ---------------------------------------------------------------------------------

inline __mmask16 tail16(int64_t k) { return (__mmask16) ((1u << k) - 1); }

// The float dot product lives with the other float ops (avx512_float.cpp).
void f32_vec_dot(int64_t n, float * s, const void * x, const void * y) { *s = gl_float_avx512.dot_f32(n, (const float *) x, (const float *) y); }

// 16 halves -> 16 floats (F16C semantics: signalling NaNs come back quiet; to_float fixes that up separately).
inline __m512 f16x16(const uint16_t * p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *) p)); }
inline __m512 f16x16_tail(const uint16_t * p, __mmask16 m) { return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p)); }

void f16_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const uint16_t * x = (const uint16_t *) vx;
    const uint16_t * y = (const uint16_t *) vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(f16x16(x + i), f16x16(y + i), a0);
        a1 = _mm512_fmadd_ps(f16x16(x + i + 16), f16x16(y + i + 16), a1);
    }
    for (; i + 16 <= n; i += 16) a0 = _mm512_fmadd_ps(f16x16(x + i), f16x16(y + i), a0);
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        a1 = _mm512_fmadd_ps(f16x16_tail(x + i, m), f16x16_tail(y + i, m), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// 32 bf16 in a register: the even elements as floats (shifted up) and the odd ones (upper halves, masked).
inline __m512 bf16_even(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
inline __m512 bf16_odd(__m512i v) { return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int) 0xFFFF0000u))); }

void bf16_vec_dot_plain(int64_t n, float * s, const void * vx, const void * vy) {
    const uint16_t * x = (const uint16_t *) vx;
    const uint16_t * y = (const uint16_t *) vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512i xv = _mm512_loadu_si512(x + i), yv = _mm512_loadu_si512(y + i);
        a0 = _mm512_fmadd_ps(bf16_even(xv), bf16_even(yv), a0);
        a1 = _mm512_fmadd_ps(bf16_odd(xv), bf16_odd(yv), a1);
    }
    if (i < n) {
        const __mmask32 m = (__mmask32) ((1ull << (n - i)) - 1);
        const __m512i xv = _mm512_maskz_loadu_epi16(m, x + i), yv = _mm512_maskz_loadu_epi16(m, y + i);
        a0 = _mm512_fmadd_ps(bf16_even(xv), bf16_even(yv), a0);
        a1 = _mm512_fmadd_ps(bf16_odd(xv), bf16_odd(yv), a1);
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// With AVX512-BF16 (checked at run time, this file is not built with it): 32 products per instruction. The
// instruction treats denormal inputs as zero, well inside the dot product's tolerance.
__attribute__((target("avx512bf16"))) void bf16_vec_dot_dp(int64_t n, float * s, const void * vx, const void * vy) {
    const uint16_t * x = (const uint16_t *) vx;
    const uint16_t * y = (const uint16_t *) vy;
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_dpbf16_ps(a0, (__m512bh) _mm512_loadu_si512(x + i), (__m512bh) _mm512_loadu_si512(y + i));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh) _mm512_loadu_si512(x + i + 32), (__m512bh) _mm512_loadu_si512(y + i + 32));
    }
    for (; i < n; i += 32) {
        const __mmask32 m = n - i >= 32 ? (__mmask32) 0xFFFFFFFFu : (__mmask32) ((1ull << (n - i)) - 1);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh) _mm512_maskz_loadu_epi16(m, x + i), (__m512bh) _mm512_maskz_loadu_epi16(m, y + i));
    }
    *s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

// Without AVX512-BF16. The dp version is the extension table gl_kernels_avx512_bf16 below (resolved in cpu.cpp).
void bf16_vec_dot(int64_t n, float * s, const void * x, const void * y) { bf16_vec_dot_plain(n, s, x, y); }

// ---- float types: gemm ------------------------------------------------------------------------------------------
// R weight rows × T activation rows (both in the weight's type), 16 elements at a time: each widened weight vector
// is used T times, each activation vector R times. One token (decode): 8 rows, each read from start to end.

struct F32v {
    static inline __m512 load(const void * p, int64_t i) { return _mm512_loadu_ps((const float *) p + i); }
    static inline __m512 tail(const void * p, int64_t i, __mmask16 m) { return _mm512_maskz_loadu_ps(m, (const float *) p + i); }
};
struct F16v {
    static inline __m512 load(const void * p, int64_t i) { return f16x16((const uint16_t *) p + i); }
    static inline __m512 tail(const void * p, int64_t i, __mmask16 m) { return f16x16_tail((const uint16_t *) p + i, m); }
};
struct BF16v {
    static inline __m512 load(const void * p, int64_t i) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *) ((const uint16_t *) p + i))), 16));
    }
    static inline __m512 tail(const void * p, int64_t i, __mmask16 m) {
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, (const uint16_t *) p + i)), 16));
    }
};

template <class L, int R, int T>
void float_tile(int64_t n, const uint8_t * w, size_t ws, const uint8_t * a, size_t as, float * y, int64_t ys) {
    __m512 acc[R][T];
    GL_UNROLL
    for (int r = 0; r < R; ++r)
        GL_UNROLL
        for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 wv[R];
        GL_UNROLL
        for (int r = 0; r < R; ++r) wv[r] = L::load(w + r * ws, i);
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            const __m512 av = L::load(a + t * as, i);
            GL_UNROLL
            for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], av, acc[r][t]);
        }
    }
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        __m512 wv[R];
        GL_UNROLL
        for (int r = 0; r < R; ++r) wv[r] = L::tail(w + r * ws, i, m);
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            const __m512 av = L::tail(a + t * as, i, m);
            GL_UNROLL
            for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], av, acc[r][t]);
        }
    }
    GL_UNROLL
    for (int t = 0; t < T; ++t)
        GL_UNROLL
        for (int r = 0; r < R; ++r) y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

typedef void (*float_tile_fn)(int64_t n, const uint8_t * w, size_t ws, const uint8_t * a, size_t as, float * y, int64_t ys);

// Tiles of up to 4 rows × 4 tokens for batches, 8 rows × 1 token for decode; edges get exact-size tiles.
template <class L>
void float_gemm(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * act, size_t as, float * y, int64_t ys) {
    static const float_tile_fn k_tiles[4][4] = {
        {float_tile<L, 1, 1>, float_tile<L, 1, 2>, float_tile<L, 1, 3>, float_tile<L, 1, 4>},
        {float_tile<L, 2, 1>, float_tile<L, 2, 2>, float_tile<L, 2, 3>, float_tile<L, 2, 4>},
        {float_tile<L, 3, 1>, float_tile<L, 3, 2>, float_tile<L, 3, 3>, float_tile<L, 3, 4>},
        {float_tile<L, 4, 1>, float_tile<L, 4, 2>, float_tile<L, 4, 3>, float_tile<L, 4, 4>},
    };
    const uint8_t * wb = (const uint8_t *) w;
    const uint8_t * ab = (const uint8_t *) act;
    int64_t t0 = 0;
    if (nt == 1) {
        int64_t r0 = 0;
        for (; r0 + 8 <= nr; r0 += 8) float_tile<L, 8, 1>(n, wb + r0 * ws, ws, ab, as, y + r0, ys);
        for (; r0 < nr; r0 += 4) k_tiles[min_i64(4, nr - r0) - 1][0](n, wb + r0 * ws, ws, ab, as, y + r0, ys);
        return;
    }
    for (; t0 < nt; t0 += 4) {
        const int64_t tt = min_i64(4, nt - t0);
        for (int64_t r0 = 0; r0 < nr; r0 += 4)
            k_tiles[min_i64(4, nr - r0) - 1][tt - 1](n, wb + r0 * ws, ws, ab + t0 * as, as, y + t0 * ys + r0, ys);
    }
}

// ---- conversions (bit-identical with the scalar reference) --------------------------------------------------------

// fp16 -> fp32 for 16 values, exactly as gl_fp16_to_fp32_ref: F16C, except that a signalling NaN keeps its payload
// unquieted (sign | 0x7f800000 | man << 13).
inline __m512 f16_to_f32_exact(__m256i h) {
    const __m512 f = _mm512_cvtph_ps(h);
    const __m512i h32 = _mm512_cvtepu16_epi32(h);
    const __mmask16 special = _mm512_cmpeq_epi32_mask(_mm512_and_si512(h32, _mm512_set1_epi32(0x7c00)), _mm512_set1_epi32(0x7c00));
    if (__builtin_expect(special == 0, 1)) return f;
    const __m512i ref = _mm512_or_si512(_mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(h32, _mm512_set1_epi32(0x8000)), 16),
                                                        _mm512_set1_epi32(0x7f800000)),
                                        _mm512_slli_epi32(_mm512_and_si512(h32, _mm512_set1_epi32(0x3ff)), 13));
    return _mm512_mask_mov_ps(f, special, _mm512_castsi512_ps(ref));
}

// One value (gl_attention rounds each probability through the value type this way): scalar, same results.
inline float f16_to_f32_one(uint16_t h) {
    if ((h & 0x7c00) == 0x7c00) {  // inf / nan, payload kept as the reference does
        const uint32_t u = ((uint32_t) (h & 0x8000) << 16) | 0x7f800000u | ((uint32_t) (h & 0x3ff) << 13);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    return _cvtsh_ss(h);
}

void f16_to_float(const void * vx, float * y, int64_t n) {
    const uint16_t * x = (const uint16_t *) vx;
    if (n == 1) {
        y[0] = f16_to_f32_one(x[0]);
        return;
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, f16_to_f32_exact(_mm256_loadu_si256((const __m256i *) (x + i))));
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, f16_to_f32_exact(_mm256_maskz_loadu_epi16(m, x + i)));
    }
}

// fp32 -> fp16, round to nearest even, exactly as gl_fp32_to_fp16: F16C, except that every NaN becomes the quiet
// NaN sign | 0x7e00 (F16C would keep the upper payload bits).
inline __m256i f32_to_f16_exact(__m512 v) {
    __m256i h = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    if (__builtin_expect(nan != 0, 0)) {
        const __m256i sign = _mm512_cvtepi32_epi16(_mm512_srli_epi32(_mm512_castps_si512(v), 16));
        const __m256i qnan = _mm256_or_si256(_mm256_and_si256(sign, _mm256_set1_epi16((short) 0x8000)), _mm256_set1_epi16(0x7e00));
        h = _mm256_mask_mov_epi16(h, nan, qnan);
    }
    return h;
}

void f16_from_float(const float * x, void * vy, int64_t n) {
    uint16_t * y = (uint16_t *) vy;
    if (n == 1) {
        const float f = x[0];
        uint32_t u;
        memcpy(&u, &f, 4);
        y[0] = f != f ? (uint16_t) (((u >> 16) & 0x8000) | 0x7e00) : _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT);
        return;
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *) (y + i), f32_to_f16_exact(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        _mm256_mask_storeu_epi16(y + i, m, f32_to_f16_exact(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

// fp32 -> bf16 exactly as gl_fp32_to_bf16: round to nearest even on the bits, NaN -> upper half | 64 (quiet).
inline __m256i f32_to_bf16_exact(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(64)));
    return _mm512_cvtepi32_epi16(r);
}

void bf16_from_float(const float * x, void * vy, int64_t n) {
    uint16_t * y = (uint16_t *) vy;
    if (n == 1) {
        uint32_t u;
        memcpy(&u, x, 4);
        y[0] = (u & 0x7fffffff) > 0x7f800000 ? (uint16_t) ((u >> 16) | 64) : (uint16_t) ((u + 0x7fff + ((u >> 16) & 1)) >> 16);
        return;
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm256_storeu_si256((__m256i *) (y + i), f32_to_bf16_exact(_mm512_loadu_ps(x + i)));
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        _mm256_mask_storeu_epi16(y + i, m, f32_to_bf16_exact(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

inline __m512 bf16_to_f32(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }

void bf16_to_float(const void * vx, float * y, int64_t n) {
    const uint16_t * x = (const uint16_t *) vx;
    if (n == 1) {
        const uint32_t u = (uint32_t) x[0] << 16;
        memcpy(y, &u, 4);
        return;
    }
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, bf16_to_f32(_mm256_loadu_si256((const __m256i *) (x + i))));
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, bf16_to_f32(_mm256_maskz_loadu_epi16(m, x + i)));
    }
}

void q8_0_to_float(const void * vx, float * y, int64_t n) {
    const gl_block_q8_0 * x = (const gl_block_q8_0 *) vx;
    for (int64_t b = 0; b < n / 32; ++b) {
        const __m512 d = _mm512_set1_ps(h2f(x[b].d));
        const __m128i q0 = _mm_loadu_si128((const __m128i *) x[b].qs), q1 = _mm_loadu_si128((const __m128i *) (x[b].qs + 16));
        _mm512_storeu_ps(y + b * 32, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q0)), d));
        _mm512_storeu_ps(y + b * 32 + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(q1)), d));
    }
}

void q4_0_to_float(const void * vx, float * y, int64_t n) {
    const gl_block_q4_0 * x = (const gl_block_q4_0 *) vx;
    const __m512i eight = _mm512_set1_epi32(8);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t b = 0; b < n / 32; ++b) {
        const __m512 d = _mm512_set1_ps(h2f(x[b].d));
        const __m128i q = _mm_loadu_si128((const __m128i *) x[b].qs);
        const __m512i lo = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(q, m4)), eight);
        const __m512i hi = _mm512_sub_epi32(_mm512_cvtepu8_epi32(_mm_and_si128(_mm_srli_epi16(q, 4), m4)), eight);
        _mm512_storeu_ps(y + b * 32, _mm512_mul_ps(_mm512_cvtepi32_ps(lo), d));
        _mm512_storeu_ps(y + b * 32 + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(hi), d));
    }
}

// roundf (half away from zero) of each lane, as an integer-valued float.
inline __m512 round_half_away(__m512 v) {
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));  // exact
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512 one = _mm512_castsi512_ps(_mm512_or_si512(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32((int) 0x80000000u)),
                                                           _mm512_castps_si512(_mm512_set1_ps(1.0f))));
    return _mm512_mask_add_ps(t, up, t, one);
}

// Bit-exact with q8_0_from_float: d = amax / 127 as fp16, q = (int8_t) roundf(x * (1 / d)) with the unrounded d.
// NaN inputs are skipped by the max (as fmaxf does) and convert to 0 like the scalar cast (via INT_MIN, truncated).
void q8_0_from_float(const float * x, void * vy, int64_t n) {
    gl_block_q8_0 * y = (gl_block_q8_0 *) vy;
    const __m512i absmask = _mm512_set1_epi32(0x7fffffff);
    for (int64_t b = 0; b < n / 32; ++b) {
        const __m512 v0 = _mm512_loadu_ps(x + b * 32), v1 = _mm512_loadu_ps(x + b * 32 + 16);
        __m512 m = _mm512_max_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v0), absmask)), _mm512_setzero_ps());
        m = _mm512_max_ps(_mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v1), absmask)), m);
        const float amax = _mm512_reduce_max_ps(m);
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
        const __m512 vid = _mm512_set1_ps(id);
        const __m512i q0 = _mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(v0, vid)));
        const __m512i q1 = _mm512_cvtps_epi32(round_half_away(_mm512_mul_ps(v1, vid)));
        _mm_storeu_si128((__m128i *) y[b].qs, _mm512_cvtepi32_epi8(q0));
        _mm_storeu_si128((__m128i *) (y[b].qs + 16), _mm512_cvtepi32_epi8(q1));
    }
}

// ---- axpy: y += a * x -----------------------------------------------------------------------------------------------

void f32_axpy(int64_t n, float a, const void * vx, float * y) {
    const float * x = (const float *) vx;
    const __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
        _mm512_storeu_ps(y + i + 16, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(y + i + 16)));
    }
    for (; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16) 0xFFFF : tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

void f16_axpy(int64_t n, float a, const void * vx, float * y) {
    const uint16_t * x = (const uint16_t *) vx;
    const __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, f16x16(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, f16x16_tail(x + i, m), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

void bf16_axpy(int64_t n, float a, const void * vx, float * y) {
    const uint16_t * x = (const uint16_t *) vx;
    const __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, bf16_to_f32(_mm256_loadu_si256((const __m256i *) (x + i))), _mm512_loadu_ps(y + i)));
    if (i < n) {
        const __mmask16 m = tail16(n - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, bf16_to_f32(_mm256_maskz_loadu_epi16(m, x + i)), _mm512_maskz_loadu_ps(m, y + i)));
    }
}

}  // namespace

// The x16 layout's products: ggml-lite/cpu/x16_avx512.cpp.
void gl_q4_0_gemm_x16_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                             float * y, int64_t y_stride);
void gl_q8_0_gemm_x16_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                             float * y, int64_t y_stride);

// The per-row types: ggml-lite/cpu/rowq_avx512.cpp.
void gl_a8_row_quantize_avx512(const float * x, void * y, int64_t n);
void gl_a8_row_quantize_grid_avx512(const float * x, void * y, int64_t n, float s, int32_t z);
void gl_q3_row_vec_dot_a8_avx512(int64_t n, float * s, const void * x, const void * y);
void gl_q3_row_gemm_a8_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q3_row_vec_dot_f32_avx512(int64_t n, float * s, const void * x, const void * y);
void gl_q3_row_gemm_f32_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q4_row_vec_dot_a8_avx512(int64_t n, float * s, const void * x, const void * y);
void gl_q8_row_vec_dot_a8_avx512(int64_t n, float * s, const void * x, const void * y);
void gl_q4_row_gemm_a8_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q8_row_gemm_a8_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q4_row_vec_dot_f32_avx512(int64_t n, float * s, const void * x, const void * y);
void gl_q8_row_vec_dot_f32_avx512(int64_t n, float * s, const void * x, const void * y);
void gl_q4_row_gemm_f32_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q8_row_gemm_f32_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q4_row_gemm_x16_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);
void gl_q8_row_gemm_x16_avx512(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys);

// Null entries fall back to the level below: F32 row copies (memcpy), the Q4_0 quantizer (never an activation
// format) and any type not listed here.
static constexpr gl_type_entry<gl_type_kernels> k_entries[] = {
    {GL_TYPE_F32, {f32_vec_dot, nullptr, nullptr, float_gemm<F32v>, f32_axpy}},
    {GL_TYPE_F16, {f16_vec_dot, f16_from_float, f16_to_float, float_gemm<F16v>, f16_axpy}},
    {GL_TYPE_BF16, {bf16_vec_dot, bf16_from_float, bf16_to_float, float_gemm<BF16v>, bf16_axpy}},
    {GL_TYPE_Q8_0, {q8_0_vec_dot, q8_0_from_float, q8_0_to_float, q8_0_gemm, nullptr, gl_q8_0_gemm_x16_avx512}},
    {GL_TYPE_Q4_0, {q4_0_vec_dot, nullptr, q4_0_to_float, q4_0_gemm, nullptr, gl_q4_0_gemm_x16_avx512}},
    {GL_TYPE_A8_ROW, {nullptr, gl_a8_row_quantize_avx512, nullptr, nullptr, nullptr, nullptr, gl_a8_row_quantize_grid_avx512}},
    {GL_TYPE_Q3_ROW, {gl_q3_row_vec_dot_f32_avx512, nullptr, nullptr, gl_q3_row_gemm_f32_avx512, nullptr}},
    {GL_TYPE_Q3_ROW_A8, {gl_q3_row_vec_dot_a8_avx512, nullptr, nullptr, gl_q3_row_gemm_a8_avx512, nullptr}},
    {GL_TYPE_Q4_ROW, {gl_q4_row_vec_dot_f32_avx512, nullptr, nullptr, gl_q4_row_gemm_f32_avx512, nullptr}},
    {GL_TYPE_Q8_ROW, {gl_q8_row_vec_dot_f32_avx512, nullptr, nullptr, gl_q8_row_gemm_f32_avx512, nullptr}},
    {GL_TYPE_Q4_ROW_A8, {gl_q4_row_vec_dot_a8_avx512, nullptr, nullptr, gl_q4_row_gemm_a8_avx512, nullptr, gl_q4_row_gemm_x16_avx512}},
    {GL_TYPE_Q8_ROW_A8, {gl_q8_row_vec_dot_a8_avx512, nullptr, nullptr, gl_q8_row_gemm_a8_avx512, nullptr, gl_q8_row_gemm_x16_avx512}},
};
constexpr gl_type_table<gl_type_kernels> gl_kernels_avx512 = gl_type_table_make(k_entries);
static_assert(!gl_kernels_avx512.dup, "a type is listed twice");

// With AVX512-BF16 (an extension: cpu.cpp picks it before the table above when the CPU has the feature).
static constexpr gl_type_entry<gl_type_kernels> k_bf16_entries[] = {
    {GL_TYPE_BF16, {bf16_vec_dot_dp, nullptr, nullptr, nullptr, nullptr}},
};
constexpr gl_type_table<gl_type_kernels> gl_kernels_avx512_bf16 = gl_type_table_make(k_bf16_entries);

