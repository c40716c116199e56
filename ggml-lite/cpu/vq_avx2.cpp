// Codebook-type (GPTVQ) products at the avx2 level (AVX2 + FMA + F16C). Built with per-file flags
// (CMakeLists.txt). As avx2.cpp: no inline functions from shared headers (simd_common.h's are per file), no std:: templates, internal linkage;
// the table at the end is the only exported symbol. The scalar reference is vq_gemm_ref in ggml-lite/types.cpp;
// this matches it up to the order of the float sums (every chunk's integer dot is exact).
//
// One 256-bit register holds one 32-weight chunk, decoded to signed int8 weights in natural order (so the Q8_0
// activations are used as they are): a broadcast load of the chunk's index bytes, vpsrlvq to bring each byte's
// index bits down, and vpshufb on a 16-byte table of codebook entries (1-D b2/b3/b4; 2-D b2 one table per
// coordinate and a blend of the odd bytes; 2-D b3 four tables per coordinate chosen by index bits 4 and 5, and in
// decode two chunks at a time split by coordinate, V2B3C). The
// k = 256 codebooks take gathers (2-D b4: two 8 × 32-bit gathers of the pairs, from a padded copy of the
// codebook; 4-D b2: one gather of 8 quads per chunk). The dot is maddubs on |w| and sign(a, w) (Q8_0 codes are
// in -127..127, so nothing saturates), vpmaddwd to 32 bits, × the block scale into a float accumulator per group,
// × the group's fp16 scale at its end.
//
// Decode (1 to 4 tokens) walks 4 rows at a time (2 for the 2-D b3 / b4 and 4-D types, whose tables or gathers
// need the registers; 2 rows for 2 tokens, 1 for 3-4), rows of a row group sharing codebook setup (2-D b3/b4 set up
// once per row group), whole 256-column groups unrolled, every token of the call against each decoded chunk, the
// rows two blocks ahead prefetched chunk by chunk. Batches decode a column group of 2 rows once (weights and their
// absolute values, 1 KB) and run up to 64 tokens against it.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"
#include <stdint.h>
#include <string.h>

namespace {

// Bytes 2p, 2p+1 <- byte p (per 128-bit lane).
inline __m256i dup_ctrl() { return _mm256_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7); }
inline __m256i odd_bytes() { return _mm256_set1_epi16((short) 0xFF00); }

// Even bytes of 32 to the low 8 of each lane, odd to the high 8; then t0 = even bytes (both lanes), t1 = odd.
inline void deinterleave32(const int8_t * cb, __m256i * t0, __m256i * t1) {
    const __m256i d = _mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *) cb),
                                          _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15));
    *t0 = _mm256_permute4x64_epi64(d, 0x88);  // qwords 0, 2, 0, 2
    *t1 = _mm256_permute4x64_epi64(d, 0xDD);  // qwords 1, 3, 1, 3
}

// ---- decoders: D::decode(p, lut) = the chunk at p as 32 signed weights, natural order ---------------------------

// 1-D, 2 bits: byte j, bits 2k..2k+1 = index of weight j + 8k: qword k shifted right by 2k.
struct V1B2 {
    static constexpr int BYTES = 8;
    static constexpr bool BIG = false;
    static constexpr int NR1 = 4;  // rows walked together for one token
    struct Lut { __m256i t; };
    static inline void setup(const int8_t * cb, Lut & L) { L.t = _mm256_set1_epi32(load_i32(cb)); }
    static inline __m256i decode(const uint8_t * p, const Lut & L) {
        const __m256i x = _mm256_srlv_epi64(_mm256_set1_epi64x(load_i64(p)), _mm256_setr_epi64x(0, 2, 4, 6));
        return _mm256_shuffle_epi8(L.t, _mm256_and_si256(x, _mm256_set1_epi8(3)));
    }
};

// 1-D, 3 bits: as b2 plus bit w of the word at byte 8 = bit 2 of weight w (byte w / 8 to every byte, tested).
struct V1B3 {
    static constexpr int BYTES = 12;
    static constexpr bool BIG = false;
    static constexpr int NR1 = 4;  // rows walked together for one token
    struct Lut { __m256i t; };
    static inline void setup(const int8_t * cb, Lut & L) { L.t = _mm256_set1_epi64x(load_i64(cb)); }
    static inline __m256i decode(const uint8_t * p, const Lut & L) {
        const __m256i lo = _mm256_and_si256(_mm256_srlv_epi64(_mm256_set1_epi64x(load_i64(p)), _mm256_setr_epi64x(0, 2, 4, 6)), _mm256_set1_epi8(3));
        const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        const __m256i bit = _mm256_set1_epi64x((int64_t) 0x8040201008040201ull);
        const __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32(load_i32(p + 8)), sel);
        const __m256i m = _mm256_cmpeq_epi8(_mm256_and_si256(hb, bit), bit);
        return _mm256_shuffle_epi8(L.t, _mm256_or_si256(lo, _mm256_and_si256(m, _mm256_set1_epi8(4))));
    }
};

// 1-D, 4 bits: byte j = weight j (low nibble), j + 16 (high nibble): the high lane shifted by 4.
struct V1B4 {
    static constexpr int BYTES = 16;
    static constexpr bool BIG = false;
    static constexpr int NR1 = 4;  // rows walked together for one token
    struct Lut { __m256i t; };
    static inline void setup(const int8_t * cb, Lut & L) { L.t = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) cb)); }
    static inline __m256i decode(const uint8_t * p, const Lut & L) {
        const __m256i x = _mm256_srlv_epi64(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) p)), _mm256_setr_epi64x(0, 0, 4, 4));
        return _mm256_shuffle_epi8(L.t, _mm256_and_si256(x, _mm256_set1_epi8(0x0F)));
    }
};

// Index (4 bits) of pair p in bytes 2p and 2p + 1, from 8 bytes of nibbles (byte j = pair j, j + 8).
inline __m256i pair_nibbles(const uint8_t * p) {
    const __m256i x = _mm256_srlv_epi64(_mm256_set1_epi64x(load_i64(p)), _mm256_setr_epi64x(0, 0, 4, 4));
    return _mm256_and_si256(_mm256_shuffle_epi8(x, dup_ctrl()), _mm256_set1_epi8(0x0F));
}

// 2-D, 2 bits (16 pairs of 4-bit indices): one 16-entry table per coordinate, the odd bytes blended in.
struct V2B2 {
    static constexpr int BYTES = 8;
    static constexpr bool BIG = false;
    static constexpr int NR1 = 4;  // rows walked together for one token
    struct Lut { __m256i t0, t1; };
    static inline void setup(const int8_t * cb, Lut & L) { deinterleave32(cb, &L.t0, &L.t1); }
    static inline __m256i decode(const uint8_t * p, const Lut & L) {
        const __m256i i = pair_nibbles(p);
        return _mm256_blendv_epi8(_mm256_shuffle_epi8(L.t0, i), _mm256_shuffle_epi8(L.t1, i), odd_bytes());
    }
};

// 2-D, 3 bits (16 pairs of 6-bit indices): bits 4..5 of pair j + 4k at bits 2k of byte 8 + j. Per coordinate 4
// tables of 16 entries, chosen by index bits 4 (blend on bit 7 after << 3) and 5 (after << 2).
struct V2B3 {
    static constexpr int BYTES = 12;
    static constexpr bool BIG = true;
    static constexpr int NR1 = 2;  // rows walked together for one token
    struct Lut { __m256i t[8]; };  // t[4e + q]: coordinate e, entries 16q .. 16q + 15
    static inline void setup(const int8_t * cb, Lut & L) {
        GL_UNROLL
        for (int q = 0; q < 4; ++q) deinterleave32(cb + 32 * q, &L.t[q], &L.t[4 + q]);
    }
    static inline __m256i decode(const uint8_t * p, const Lut & L) {
        const __m256i hsel = _mm256_setr_epi8(0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3, 0, 0, 1, 1, 2, 2, 3, 3);
        const __m256i hb = _mm256_shuffle_epi8(_mm256_set1_epi32(load_i32(p + 8)), hsel);  // byte 2p(+1) <- byte 8 + p % 4
        // bits 2(p/4) .. +1 of it (qword k holds pairs 4k .. 4k + 3) to bits 4..5: left by 4 - 2k (k < 3), right by 2
        const __m256i hs = _mm256_srlv_epi64(_mm256_sllv_epi64(hb, _mm256_setr_epi64x(4, 2, 0, 0)), _mm256_setr_epi64x(0, 0, 0, 2));
        const __m256i hi = _mm256_and_si256(hs, _mm256_set1_epi8(0x30));
        const __m256i i = _mm256_or_si256(pair_nibbles(p), hi);
        const __m256i m4 = _mm256_slli_epi16(i, 3), m5 = _mm256_slli_epi16(i, 2);
        __m256i r[2];
        GL_UNROLL
        for (int e = 0; e < 2; ++e) {
            const __m256i a = _mm256_blendv_epi8(_mm256_shuffle_epi8(L.t[4 * e], i), _mm256_shuffle_epi8(L.t[4 * e + 1], i), m4);
            const __m256i b = _mm256_blendv_epi8(_mm256_shuffle_epi8(L.t[4 * e + 2], i), _mm256_shuffle_epi8(L.t[4 * e + 3], i), m4);
            r[e] = _mm256_blendv_epi8(a, b, m5);
        }
        return _mm256_blendv_epi8(r[0], r[1], odd_bytes());
    }
};

// 2-D, 3 bits, by coordinate (the decode kernel's; batches use V2B3): two chunks at once, one per 128-bit lane, as
// two vectors of signed weights, coordinate e of the lane chunk's pair j at byte j, against activations split the
// same way (even / odd bytes, coord_act). The index is built once for both coordinates and no odd-byte blend is
// needed: about 38 operations per 64 weights where V2B3 takes about 60.
struct V2B3C {
    static constexpr int BYTES = 12;
    static constexpr bool BIG = true;
    static constexpr int NR1 = 2;
    using Lut = V2B3::Lut;
    static inline void setup(const int8_t * cb, Lut & L) { V2B3::setup(cb, L); }
    // Reads 16 bytes at p and at p + 12: past the second chunk (or the only one) by up to 16, still inside the tensor
    // (the side section follows the last row); a missing second chunk meets zero activations.
    static inline void decode2(const uint8_t * p, const Lut & L, __m256i w[2]) {
        const __m256i x = _mm256_loadu2_m128i((const __m128i *) (p + 12), (const __m128i *) p);
        // nibbles: byte j < 8 <- low nibble of byte j, byte j >= 8 <- high nibble of byte j - 8
        const __m256i nb = _mm256_shuffle_epi8(x, _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1,
                                                                   2, 3, 4, 5, 6, 7));
        const __m256i lo = _mm256_and_si256(_mm256_srlv_epi64(nb, _mm256_setr_epi64x(0, 4, 0, 4)), _mm256_set1_epi8(0x0F));
        // high bits: byte j <- byte 8 + j % 4, its bits 2(j / 4) .. +1 to bits 4..5 (per dword: left 4, 2, 0, right 2)
        const __m256i hb = _mm256_shuffle_epi8(x, _mm256_setr_epi8(8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9,
                                                                   10, 11, 8, 9, 10, 11, 8, 9, 10, 11));
        const __m256i hs = _mm256_srlv_epi32(_mm256_sllv_epi32(hb, _mm256_setr_epi32(4, 2, 0, 0, 4, 2, 0, 0)), _mm256_setr_epi32(0, 0, 0, 2, 0, 0, 0, 2));
        const __m256i i = _mm256_or_si256(lo, _mm256_and_si256(hs, _mm256_set1_epi8(0x30)));
        const __m256i m4 = _mm256_slli_epi16(i, 3), m5 = _mm256_slli_epi16(i, 2);
        GL_UNROLL
        for (int e = 0; e < 2; ++e) {
            const __m256i a = _mm256_blendv_epi8(_mm256_shuffle_epi8(L.t[4 * e], i), _mm256_shuffle_epi8(L.t[4 * e + 1], i), m4);
            const __m256i b = _mm256_blendv_epi8(_mm256_shuffle_epi8(L.t[4 * e + 2], i), _mm256_shuffle_epi8(L.t[4 * e + 3], i), m4);
            w[e] = _mm256_blendv_epi8(a, b, m5);
        }
    }
};

template <class D> constexpr bool by_coord() { return false; }
template <> constexpr bool by_coord<V2B3C>() { return true; }

// Chunks c and c + 1 (zeros when !TWO) of one token's activations, split as V2B3C's weights: a[0] the even bytes (lane
// 0: chunk c, lane 1: chunk c + 1), a[1] the odd ones; dy the chunks' scales, four lanes each.
template <bool TWO> inline void coord_act(const gl_block_q8_0 * b, __m256i a[2], __m256 * dy) {
    const __m256i eo = _mm256_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15, 0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    // per chunk: lane 0 = its even bytes, lane 1 = its odd bytes
    const __m256i d0 = _mm256_permute4x64_epi64(_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *) b[0].qs), eo), 0xD8);
    const __m256i d1 = TWO ? _mm256_permute4x64_epi64(_mm256_shuffle_epi8(_mm256_loadu_si256((const __m256i *) b[1].qs), eo), 0xD8)
                           : _mm256_setzero_si256();
    a[0] = _mm256_permute2x128_si256(d0, d1, 0x20);
    a[1] = _mm256_permute2x128_si256(d0, d1, 0x31);
    *dy = _mm256_set_m128(_mm_set1_ps(TWO ? gl_fp16_table[b[1].d] : 0.0f), _mm_set1_ps(gl_fp16_table[b[0].d]));
}

// 2-D, 4 bits: byte j = index of pair j (256 pairs, 512 bytes): 32-bit gathers at 2·index from a copy of the
// codebook padded so that the last entry's 4-byte read stays inside, the low halves packed.
struct V2B4 {
    static constexpr int BYTES = 16;
    static constexpr bool BIG = true;
    static constexpr int NR1 = 2;  // rows walked together for one token
    struct Lut { alignas(32) int8_t t[512 + 32]; };
    static inline void setup(const int8_t * cb, Lut & L) {
        memcpy(L.t, cb, 512);
        memset(L.t + 512, 0, 32);
    }
    static inline __m256i decode(const uint8_t * p, const Lut & L) {
        const __m256i i0 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) p));
        const __m256i i1 = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (p + 8)));
        const __m256i m = _mm256_set1_epi32(0xFFFF);
        const __m256i g0 = _mm256_and_si256(_mm256_i32gather_epi32((const int *) L.t, i0, 2), m);
        const __m256i g1 = _mm256_and_si256(_mm256_i32gather_epi32((const int *) L.t, i1, 2), m);
        return _mm256_permute4x64_epi64(_mm256_packus_epi32(g0, g1), 0xD8);  // qwords 0, 2, 1, 3
    }
};

// 4-D, 2 bits: byte j = index of quad j (256 quads, 1 KB): one 32-bit gather of 8 quads, straight from the tensor.
struct V4B2 {
    static constexpr int BYTES = 8;
    static constexpr bool BIG = false;
    static constexpr int NR1 = 2;  // rows walked together for one token
    struct Lut { const int8_t * cb; };
    static inline void setup(const int8_t * cb, Lut & L) { L.cb = cb; }
    static inline __m256i decode(const uint8_t * p, const Lut & L) {
        return _mm256_i32gather_epi32((const int *) L.cb, _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) p)), 4);
    }
};

// ---- the product ----------------------------------------------------------------------------------------------

struct Geo {
    const uint8_t * data;     // index rows
    const uint8_t * scales;   // fp16 per group
    const int8_t * cbs;       // codebooks
    size_t row_bytes, cb_bytes;
    int64_t R, ncg, n_groups, nch, gch;  // gch: chunks per column group (the last group may have fewer)
};

constexpr int64_t SEGG = 16;  // column groups per segment (the codebook cache of the big types)
constexpr int64_t PFD = 2;    // blocks of rows between the one computed and the one prefetched

inline float scale_of(const Geo & G, int64_t grp) { return h2f(load_u16(G.scales + 2 * grp)); }

// facc += (w · a) × scale(a), w signed weights, aw = |w|.
inline __m256 dot_chunk(__m256i w, __m256i aw, const gl_block_q8_0 & a, __m256 facc) {
    const __m256i s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *) a.qs), w);
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, s), _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&gl_fp16_table[a.d]), facc);
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline void prefetch_range(const void * begin, size_t bytes) {
    const char * p = (const char *) ((uintptr_t) begin & ~(uintptr_t) 63);
    for (; p < (const char *) begin + bytes; p += 64) _mm_prefetch(p, _MM_HINT_T0);
}

// Rows sharing codebooks in a block of n rows from `row`: the largest power of two sub <= n such that every
// aligned run of sub rows lies in one row group.
inline int shared_run(const Geo & G, int64_t row, int n) {
    int sub = n;
    for (; sub > 1; sub /= 2) {
        bool ok = true;
        for (int64_t i = 0; i < n; i += sub) ok = ok && (row + i) / G.R == (row + i + sub - 1) / G.R;
        if (ok) break;
    }
    return sub;
}

// Codebooks of the block's rows for column group cg: lut[r] (rows r / SUB share one), from `cache` (indexed by
// cg - cg0) when CACHED.
template <class D, int NR, int SUB, bool CACHED>
inline void block_luts(const Geo & G, const int64_t rg[NR / SUB], int64_t cg, int64_t cg0, const typename D::Lut * cache,
                       typename D::Lut own[], const typename D::Lut * lut[NR]) {
    if (!CACHED) {
        GL_UNROLL
        for (int i = 0; i < NR / SUB; ++i) D::setup(G.cbs + (size_t) (rg[i] * G.ncg + cg) * G.cb_bytes, own[i]);
    }
    GL_UNROLL
    for (int r = 0; r < NR; ++r) lut[r] = CACHED ? cache + (cg - cg0) : &own[r / SUB];
}

// ---- decode (1 to 4 tokens): NR rows × T tokens walked together ----------------------------------------------------

// Chunks c, c + 1 (TWO) or c of NR rows × T tokens into the even / odd accumulators; prefetches the same bytes of the
// rows fdelta bytes on.
template <class D, int T, int NR, bool TWO>
inline void chunk_step(const uint8_t * const rp[NR], size_t fdelta, const typename D::Lut * const lut[NR], int64_t c,
                       const gl_block_q8_0 * const a[T], __m256 f0[NR * T], __m256 f1[NR * T]) {
    if constexpr (by_coord<D>()) {  // both chunks in one pair of vectors, into f0
        __m256i A[T][2];
        __m256 DY[T];
        GL_UNROLL
        for (int t = 0; t < T; ++t) coord_act<TWO>(a[t] + c, A[t], &DY[t]);
        GL_UNROLL
        for (int r = 0; r < NR; ++r) {
            _mm_prefetch((const char *) rp[r] + fdelta + (size_t) c * D::BYTES, _MM_HINT_T0);
            __m256i w[2];
            D::decode2(rp[r] + (size_t) c * D::BYTES, *lut[r], w);
            const __m256i aw0 = _mm256_abs_epi8(w[0]), aw1 = _mm256_abs_epi8(w[1]);
            GL_UNROLL
            for (int t = 0; t < T; ++t) {
                const __m256i p0 = _mm256_maddubs_epi16(aw0, _mm256_sign_epi8(A[t][0], w[0]));
                const __m256i p1 = _mm256_maddubs_epi16(aw1, _mm256_sign_epi8(A[t][1], w[1]));
                const __m256i q = _mm256_add_epi32(_mm256_madd_epi16(p0, _mm256_set1_epi16(1)), _mm256_madd_epi16(p1, _mm256_set1_epi16(1)));
                f0[r * T + t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(q), DY[t], f0[r * T + t]);
            }
        }
    } else {
        GL_UNROLL
        for (int r = 0; r < NR; ++r) {
            _mm_prefetch((const char *) rp[r] + fdelta + (size_t) c * D::BYTES, _MM_HINT_T0);
            const __m256i w0 = D::decode(rp[r] + (size_t) c * D::BYTES, *lut[r]);
            const __m256i a0 = _mm256_abs_epi8(w0);
            GL_UNROLL
            for (int t = 0; t < T; ++t) f0[r * T + t] = dot_chunk(w0, a0, a[t][c], f0[r * T + t]);
            if (TWO) {
                const __m256i w1 = D::decode(rp[r] + (size_t) (c + 1) * D::BYTES, *lut[r]);
                const __m256i a1 = _mm256_abs_epi8(w1);
                GL_UNROLL
                for (int t = 0; t < T; ++t) f1[r * T + t] = dot_chunk(w1, a1, a[t][c + 1], f1[r * T + t]);
            }
        }
    }
}

// NR rows from `row` (SUB consecutive rows share a row group; all of them when CACHED, whose codebooks come set up
// in `cache`) × T tokens over the column groups [cg0, cg1).
template <class D, int T, int NR, int SUB, bool CACHED>
inline void rows_run(const Geo & G, int64_t row, int64_t r0, int64_t cg0, int64_t cg1, const gl_block_q8_0 * const a[T],
                     const typename D::Lut * cache, bool first_seg, float * y, int64_t y_stride, int64_t prow) {
    constexpr int NS = NR / SUB;
    const uint8_t * rp[NR];
    int64_t rg[NS];
    GL_UNROLL
    for (int r = 0; r < NR; ++r) rp[r] = G.data + (size_t) (row + r) * G.row_bytes;
    GL_UNROLL
    for (int i = 0; i < NS; ++i) rg[i] = (row + i * SUB) / G.R;
    const size_t fdelta = (size_t) (prow - row) * G.row_bytes;
    __m256 racc[NR * T];
    GL_UNROLL
    for (int i = 0; i < NR * T; ++i) racc[i] = _mm256_setzero_ps();
    for (int64_t cg = cg0; cg < cg1; ++cg) {
        const int64_t ca = cg * G.gch, cb = min_i64(ca + G.gch, G.nch);
        typename D::Lut own[CACHED ? 1 : NS];
        const typename D::Lut * lut[NR];
        block_luts<D, NR, SUB, CACHED>(G, rg, cg, cg0, cache, own, lut);
        __m256 f0[NR * T], f1[NR * T];  // even / odd chunks: two dependency chains per row and token
        GL_UNROLL
        for (int i = 0; i < NR * T; ++i) f0[i] = f1[i] = _mm256_setzero_ps();
        if (cb - ca == 8) {  // a whole group of 256 columns: unrolled
            GL_UNROLL
            for (int q = 0; q < 8; q += 2) chunk_step<D, T, NR, true>(rp, fdelta, lut, ca + q, a, f0, f1);
        } else {
            int64_t c = ca;
            for (; c + 2 <= cb; c += 2) chunk_step<D, T, NR, true>(rp, fdelta, lut, c, a, f0, f1);
            if (c < cb) chunk_step<D, T, NR, false>(rp, fdelta, lut, c, a, f0, f1);
        }
        GL_UNROLL
        for (int i = 0; i < NS; ++i) {
            const __m256 s = _mm256_set1_ps(scale_of(G, rg[i] * G.ncg + cg));
            GL_UNROLL
            for (int j = i * SUB * T; j < (i + 1) * SUB * T; ++j) racc[j] = _mm256_fmadd_ps(_mm256_add_ps(f0[j], f1[j]), s, racc[j]);
        }
    }
    GL_UNROLL
    for (int r = 0; r < NR; ++r) {
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            float * o = y + t * y_stride + (row + r - r0);
            const float v = hsum(racc[r * T + t]);
            *o = first_seg ? v : *o + v;
        }
    }
}

// Rows [r0, r0 + nr) × tokens [0, T).
template <class D, int T>
void gemm_tokens(const Geo & G, int64_t r0, int64_t nr, const uint8_t * act, size_t act_stride, float * y, int64_t y_stride) {
    constexpr int NR = T == 1 ? D::NR1 : T == 2 ? 2 : 1;
    alignas(32) typename D::Lut cache[D::BIG ? SEGG : 1];
    const gl_block_q8_0 * a[T];
    GL_UNROLL
    for (int t = 0; t < T; ++t) a[t] = (const gl_block_q8_0 *) (act + (size_t) t * act_stride);
    for (int64_t cs = 0; cs < G.ncg; cs += SEGG) {
        const int64_t ce = min_i64(G.ncg, cs + SEGG);
        int64_t cached = -1;
        for (int64_t r = 0; r < nr;) {
            const int64_t row = r0 + r;
            const int64_t rg = row / G.R;
            const bool full = r + NR <= nr;
            const int sub = full ? shared_run(G, row, NR) : 1;
            const bool block = full && (!D::BIG || sub == NR);
            const int64_t n = block ? NR : 1;
            if (D::BIG && rg != cached) {
                for (int64_t cg = cs; cg < ce; ++cg) D::setup(G.cbs + (size_t) (rg * G.ncg + cg) * G.cb_bytes, cache[cg - cs]);
                cached = rg;
            }
            // The rows PFD blocks ahead (or the next call's first rows) are prefetched chunk by chunk; their scales and
            // (when they change) codebooks now.
            const int64_t fr = row + PFD * NR;
            const int64_t fg0 = fr / G.R, fg1 = (fr + NR - 1) / G.R;
            if (fg1 * G.ncg < G.n_groups && (!D::BIG || fg1 != (fr - NR) / G.R || r == 0)) {
                const int64_t ga = fg0 * G.ncg + cs, gb = fg1 * G.ncg + ce;
                prefetch_range(G.scales + 2 * ga, (size_t) (gb - ga) * 2);
                prefetch_range(G.cbs + (size_t) ga * G.cb_bytes, (size_t) (gb - ga) * G.cb_bytes);
            }
            if (D::BIG) {
                if (block) rows_run<D, T, NR, NR, true>(G, row, r0, cs, ce, a, cache, cs == 0, y, y_stride, fr);
                else rows_run<D, T, 1, 1, true>(G, row, r0, cs, ce, a, cache, cs == 0, y, y_stride, fr);
            } else if (!block) {
                rows_run<D, T, 1, 1, false>(G, row, r0, cs, ce, a, nullptr, cs == 0, y, y_stride, fr);
            } else {
                switch (sub) {
                    case 1: rows_run<D, T, NR, 1, false>(G, row, r0, cs, ce, a, nullptr, cs == 0, y, y_stride, fr); break;
                    case 2: rows_run<D, T, NR, (NR >= 2 ? 2 : 1), false>(G, row, r0, cs, ce, a, nullptr, cs == 0, y, y_stride, fr); break;
                    default: rows_run<D, T, NR, NR, false>(G, row, r0, cs, ce, a, nullptr, cs == 0, y, y_stride, fr); break;
                }
            }
            r += n;
        }
    }
}

// ---- batches (more than 4 tokens) -----------------------------------------------------------------------------------
// Two rows at a time; a column group's chunks of both are decoded once (weights and their absolute values, 1 KB on
// the stack) and every token runs against them, its sums per row going to an accumulator in memory.
constexpr int BT = 64;  // tokens per pass

template <class D, int NR, int SUB, bool CACHED>
void batch_rows(const Geo & G, int64_t row, int64_t r0, int64_t cg0, int64_t cg1, int nt, const uint8_t * act, size_t act_stride,
                const typename D::Lut * cache, bool first_seg, float * y, int64_t y_stride) {
    constexpr int NS = NR / SUB;
    const uint8_t * rp[NR];
    int64_t rg[NS];
    GL_UNROLL
    for (int r = 0; r < NR; ++r) rp[r] = G.data + (size_t) (row + r) * G.row_bytes;
    GL_UNROLL
    for (int i = 0; i < NS; ++i) rg[i] = (row + i * SUB) / G.R;
    __m256 racc[BT * NR];
    for (int i = 0; i < nt * NR; ++i) racc[i] = _mm256_setzero_ps();
    __m256i wb[NR][8], ab[NR][8];
    for (int64_t cg = cg0; cg < cg1; ++cg) {
        const int64_t ca = cg * G.gch, n = min_i64(ca + G.gch, G.nch) - ca;  // n <= 8
        typename D::Lut own[CACHED ? 1 : NS];
        const typename D::Lut * lut[NR];
        block_luts<D, NR, SUB, CACHED>(G, rg, cg, cg0, cache, own, lut);
        for (int64_t c = 0; c < n; ++c) {
            GL_UNROLL
            for (int r = 0; r < NR; ++r) {
                wb[r][c] = D::decode(rp[r] + (size_t) (ca + c) * D::BYTES, *lut[r]);
                ab[r][c] = _mm256_abs_epi8(wb[r][c]);
            }
        }
        __m256 s[NS];
        GL_UNROLL
        for (int i = 0; i < NS; ++i) s[i] = _mm256_set1_ps(scale_of(G, rg[i] * G.ncg + cg));
        for (int t = 0; t < nt; ++t) {
            const gl_block_q8_0 * at = (const gl_block_q8_0 *) (act + (size_t) t * act_stride) + ca;
            __m256 f0[NR], f1[NR];
            GL_UNROLL
            for (int r = 0; r < NR; ++r) f0[r] = f1[r] = _mm256_setzero_ps();
            int64_t c = 0;
            for (; c + 2 <= n; c += 2) {
                GL_UNROLL
                for (int r = 0; r < NR; ++r) {
                    f0[r] = dot_chunk(wb[r][c], ab[r][c], at[c], f0[r]);
                    f1[r] = dot_chunk(wb[r][c + 1], ab[r][c + 1], at[c + 1], f1[r]);
                }
            }
            if (c < n) {
                GL_UNROLL
                for (int r = 0; r < NR; ++r) f0[r] = dot_chunk(wb[r][c], ab[r][c], at[c], f0[r]);
            }
            GL_UNROLL
            for (int r = 0; r < NR; ++r) racc[t * NR + r] = _mm256_fmadd_ps(_mm256_add_ps(f0[r], f1[r]), s[r / SUB], racc[t * NR + r]);
        }
    }
    for (int t = 0; t < nt; ++t) {
        GL_UNROLL
        for (int r = 0; r < NR; ++r) {
            float * o = y + t * y_stride + (row + r - r0);
            const float v = hsum(racc[t * NR + r]);
            *o = first_seg ? v : *o + v;
        }
    }
}

// Rows [r0, r0 + nr) × tokens [0, nt), nt > 4.
template <class D>
void gemm_batch(const Geo & G, int64_t r0, int64_t nr, int64_t nt, const uint8_t * act, size_t act_stride, float * y, int64_t y_stride) {
    constexpr int NR = 2;
    alignas(32) typename D::Lut cache[D::BIG ? SEGG : 1];
    for (int64_t t0 = 0; t0 < nt; t0 += BT) {
        const int n = (int) min_i64(BT, nt - t0);
        const uint8_t * a = act + (size_t) t0 * act_stride;
        float * yt = y + t0 * y_stride;
        for (int64_t cs = 0; cs < G.ncg; cs += SEGG) {
            const int64_t ce = min_i64(G.ncg, cs + SEGG);
            int64_t cached = -1;
            for (int64_t r = 0; r < nr;) {
                const int64_t row = r0 + r;
                const int64_t rg = row / G.R;
                const bool full = r + NR <= nr;
                const int sub = full ? shared_run(G, row, NR) : 1;
                const bool block = full && (!D::BIG || sub == NR);
                if (D::BIG && rg != cached) {
                    for (int64_t cg = cs; cg < ce; ++cg) D::setup(G.cbs + (size_t) (rg * G.ncg + cg) * G.cb_bytes, cache[cg - cs]);
                    cached = rg;
                }
                if (D::BIG) {
                    if (block) batch_rows<D, NR, NR, true>(G, row, r0, cs, ce, n, a, act_stride, cache, cs == 0, yt, y_stride);
                    else batch_rows<D, 1, 1, true>(G, row, r0, cs, ce, n, a, act_stride, cache, cs == 0, yt, y_stride);
                } else if (!block) {
                    batch_rows<D, 1, 1, false>(G, row, r0, cs, ce, n, a, act_stride, nullptr, cs == 0, yt, y_stride);
                } else if (sub == NR) {
                    batch_rows<D, NR, NR, false>(G, row, r0, cs, ce, n, a, act_stride, nullptr, cs == 0, yt, y_stride);
                } else {
                    batch_rows<D, NR, 1, false>(G, row, r0, cs, ce, n, a, act_stride, nullptr, cs == 0, yt, y_stride);
                }
                r += block ? NR : 1;
            }
        }
    }
}

// 1-4 tokens with D, batches with DB.
template <class D, class DB = D>
void vq_gemm(const gl_vq_geom & g, const void * data, int64_t r0, int64_t nr, int64_t nt, const void * act, size_t act_stride, float * y,
             int64_t y_stride) {
    if (nr <= 0 || nt <= 0) return;
    Geo G;
    G.data = (const uint8_t *) data;
    const uint8_t * side = G.data + (size_t) g.ne1 * g.row_bytes;
    G.scales = side + g.scales_offset;
    G.cbs = (const int8_t *) (side + g.codebooks_offset);
    G.row_bytes = g.row_bytes;
    G.cb_bytes = (size_t) g.k * (size_t) g.dim;
    G.R = g.R;
    G.ncg = g.n_col_groups;
    G.n_groups = g.n_groups;
    G.nch = (g.ne0 + 31) / 32;
    G.gch = (g.C + 31) / 32;
    const uint8_t * a = (const uint8_t *) act;
    switch (nt) {
        case 1: gemm_tokens<D, 1>(G, r0, nr, a, act_stride, y, y_stride); return;
        case 2: gemm_tokens<D, 2>(G, r0, nr, a, act_stride, y, y_stride); return;
        case 3: gemm_tokens<D, 3>(G, r0, nr, a, act_stride, y, y_stride); return;
        case 4: gemm_tokens<D, 4>(G, r0, nr, a, act_stride, y, y_stride); return;
        default: gemm_batch<DB>(G, r0, nr, nt, a, act_stride, y, y_stride); return;
    }
}

}  // namespace

static constexpr gl_type_entry<gl_vq_gemm_fn> k_entries[] = {
    {GL_TYPE_VQ1_B2_G256, vq_gemm<V1B2>},
    {GL_TYPE_VQ1_B2_G128, vq_gemm<V1B2>},
    {GL_TYPE_VQ1_B3_G512, vq_gemm<V1B3>},
    {GL_TYPE_VQ1_B4_G1024, vq_gemm<V1B4>},
    {GL_TYPE_VQ2_B2_G2048, vq_gemm<V2B2>},
    {GL_TYPE_VQ2_B2_G1024, vq_gemm<V2B2>},
    {GL_TYPE_VQ2_B3_G8192, vq_gemm<V2B3C, V2B3>},
    {GL_TYPE_VQ2_B4_G32768, vq_gemm<V2B4>},
    {GL_TYPE_VQ4_B2_G65536, vq_gemm<V4B2>},
    {GL_TYPE_VQ4_B2_G32768, vq_gemm<V4B2>},
};
constexpr gl_type_table<gl_vq_gemm_fn> gl_vq_gemm_avx2 = gl_type_table_make(k_entries);
static_assert(!gl_vq_gemm_avx2.dup, "a type is listed twice");
