// Codebook-type (GPTVQ) products at the avx2 level (AVX2 + FMA + F16C). Built with per-file flags
// (CMakeLists.txt). As avx2.cpp: no inline functions from shared headers, no std:: templates, internal linkage;
// the table at the end is the only exported symbol. The scalar reference is vq_gemm_ref in ggml-lite/types.cpp;
// this matches it up to the order of the float sums (every chunk's integer dot is exact).
//
// One 256-bit register holds one 32-weight chunk, decoded to signed int8 weights in natural order (so the Q8_0
// activations are used as they are): a broadcast load of the chunk's index bytes, vpsrlvq to bring each byte's
// index bits down, and vpshufb on a 16-byte table of codebook entries (1-D b2/b3/b4; 2-D b2 one table per
// coordinate and a blend of the odd bytes; 2-D b3 four tables per coordinate chosen by index bits 4 and 5). The
// k = 256 codebooks take gathers (2-D b4: two 8 × 32-bit gathers of the pairs, from a padded copy of the
// codebook; 4-D b2: one gather of 8 quads per chunk). The dot is maddubs on |w| and sign(a, w) (Q8_0 codes are
// in -127..127, so nothing saturates), vpmaddwd to 32 bits, × the block scale into a float accumulator per group,
// × the group's fp16 scale at its end.
//
// Rows are walked 2 at a time (1 for three or more tokens) over segments of up to 16 column groups, every token
// of the call (up to 4; more are done 4 at a time) against each decoded chunk; the next rows' bytes are
// prefetched while a block runs. The 2-D b3 / b4 codebooks are set up once per row group and segment.
#include "ggml-lite/cpu.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define GL_UNROLL _Pragma("GCC unroll 16")

namespace {

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline uint16_t load_u16(const void * p) {
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}
inline int32_t load_i32(const void * p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
inline int64_t load_i64(const void * p) {
    int64_t v;
    memcpy(&v, p, 8);
    return v;
}
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

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

// 2-D, 4 bits: byte j = index of pair j (256 pairs, 512 bytes): 32-bit gathers at 2·index from a copy of the
// codebook padded so that the last entry's 4-byte read stays inside, the low halves packed.
struct V2B4 {
    static constexpr int BYTES = 16;
    static constexpr bool BIG = true;
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
    int64_t R, ncg, nch, gch;  // gch: chunks per column group (the last group may have fewer)
};

// Prefetch of nrows rows' byte range [first, first + bytes) (rows stride apart), spread over `steps` calls of step().
struct Prefetch {
    const char * base = nullptr;
    size_t stride = 0;
    int64_t lines = 0, rows = 0, per_step = 0, row = 0, line = 0;
    void plan(const uint8_t * first, size_t stride_, size_t bytes, int64_t nrows, int64_t steps) {
        base = (const char *) ((uintptr_t) first & ~(uintptr_t) 63);
        stride = stride_;
        lines = (int64_t) (((uintptr_t) first + bytes - (uintptr_t) base + 63) / 64);
        rows = nrows;
        row = line = 0;
        per_step = (lines * rows + steps - 1) / (steps > 0 ? steps : 1);
    }
    inline void step() {
        for (int64_t k = 0; k < per_step && row < rows; ++k) {
            _mm_prefetch(base + (size_t) row * stride + 64 * (size_t) line, _MM_HINT_T0);
            if (++line == lines) line = 0, ++row;
        }
    }
};

// facc += (w · a) × scale(a), w signed weights, aw = |w|.
inline __m256 dot_chunk(__m256i w, __m256i aw, const gl_block_q8_0 & a, __m256 facc) {
    const __m256i s = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *) a.qs), w);
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, s), _mm256_set1_epi16(1));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_broadcast_ss(&gl_fp16_table[a.d]), facc);
}

// NR rows (index rows at rp[r], row groups rg[r]) × T tokens over the column groups [cg0, cg1). SHARED: the rows
// share one row group, whose codebooks come set up in `cache` (indexed by cg - cg0).
template <class D, int T, int NR, bool SHARED>
inline void rows_segment(const Geo & G, const uint8_t * const rp[NR], const int64_t rg[NR], int64_t cg0, int64_t cg1,
                         const gl_block_q8_0 * const a[T], const typename D::Lut * cache, __m256 racc[NR * T], Prefetch & pf) {
    for (int64_t cg = cg0; cg < cg1; ++cg) {
        const int64_t ca = cg * G.gch, cb = min_i64(ca + G.gch, G.nch);
        typename D::Lut own[SHARED ? 1 : NR];
        const typename D::Lut * lut[NR];
        __m256 sc[NR];
        GL_UNROLL
        for (int r = 0; r < NR; ++r) {
            const int64_t grp = rg[SHARED ? 0 : r] * G.ncg + cg;
            sc[r] = _mm256_set1_ps(h2f(load_u16(G.scales + 2 * grp)));
            if (SHARED) {
                lut[r] = cache + (cg - cg0);
            } else {
                D::setup(G.cbs + (size_t) grp * G.cb_bytes, own[r]);
                lut[r] = &own[r];
            }
        }
        __m256 f0[NR * T], f1[NR * T];  // even / odd chunks: two dependency chains per row and token
        GL_UNROLL
        for (int i = 0; i < NR * T; ++i) f0[i] = f1[i] = _mm256_setzero_ps();
        int64_t c = ca;
        for (; c + 2 <= cb; c += 2) {
            pf.step();
            GL_UNROLL
            for (int r = 0; r < NR; ++r) {
                const __m256i w0 = D::decode(rp[r] + (size_t) c * D::BYTES, *lut[r]);
                const __m256i w1 = D::decode(rp[r] + (size_t) (c + 1) * D::BYTES, *lut[r]);
                const __m256i a0 = _mm256_abs_epi8(w0), a1 = _mm256_abs_epi8(w1);
                GL_UNROLL
                for (int t = 0; t < T; ++t) {
                    f0[r * T + t] = dot_chunk(w0, a0, a[t][c], f0[r * T + t]);
                    f1[r * T + t] = dot_chunk(w1, a1, a[t][c + 1], f1[r * T + t]);
                }
            }
        }
        if (c < cb) {
            GL_UNROLL
            for (int r = 0; r < NR; ++r) {
                const __m256i w0 = D::decode(rp[r] + (size_t) c * D::BYTES, *lut[r]);
                const __m256i a0 = _mm256_abs_epi8(w0);
                GL_UNROLL
                for (int t = 0; t < T; ++t) f0[r * T + t] = dot_chunk(w0, a0, a[t][c], f0[r * T + t]);
            }
        }
        GL_UNROLL
        for (int i = 0; i < NR * T; ++i) racc[i] = _mm256_fmadd_ps(_mm256_add_ps(f0[i], f1[i]), sc[i / T], racc[i]);
    }
}

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

template <class D, int T, int NR, bool SHARED>
inline void rows_run(const Geo & G, int64_t row, int64_t r0, int64_t cg0, int64_t cg1, const gl_block_q8_0 * const a[T],
                     const typename D::Lut * cache, bool first_seg, float * y, int64_t y_stride, Prefetch & pf) {
    const uint8_t * rp[NR];
    int64_t rg[NR];
    GL_UNROLL
    for (int r = 0; r < NR; ++r) {
        rp[r] = G.data + (size_t) (row + r) * G.row_bytes;
        rg[r] = (row + r) / G.R;
    }
    __m256 racc[NR * T];
    GL_UNROLL
    for (int i = 0; i < NR * T; ++i) racc[i] = _mm256_setzero_ps();
    rows_segment<D, T, NR, SHARED>(G, rp, rg, cg0, cg1, a, cache, racc, pf);
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
    constexpr int NR = T <= 2 ? 2 : 1;
    constexpr int64_t SEGG = 16;  // column groups per segment (the codebook cache of the big types)
    alignas(32) typename D::Lut cache[D::BIG ? SEGG : 1];
    const gl_block_q8_0 * a[T];
    GL_UNROLL
    for (int t = 0; t < T; ++t) a[t] = (const gl_block_q8_0 *) (act + (size_t) t * act_stride);
    for (int64_t cs = 0; cs < G.ncg; cs += SEGG) {
        const int64_t ce = min_i64(G.ncg, cs + SEGG);
        const int64_t c0 = cs * G.gch, c1 = min_i64(ce * G.gch, G.nch);
        const size_t seg_off = (size_t) c0 * D::BYTES, seg_bytes = (size_t) (c1 - c0) * D::BYTES;
        int64_t cached = -1;
        Prefetch pf;
        for (int64_t r = 0; r < nr;) {
            const int64_t row = r0 + r;
            const int64_t rg = row / G.R;
            const bool block = r + NR <= nr && (!D::BIG || (row + NR - 1) / G.R == rg);
            const int64_t n = block ? NR : 1;
            if (D::BIG && rg != cached) {
                for (int64_t cg = cs; cg < ce; ++cg) D::setup(G.cbs + (size_t) (rg * G.ncg + cg) * G.cb_bytes, cache[cg - cs]);
                cached = rg;
            }
            pf.plan(G.data + (size_t) (row + n) * G.row_bytes + seg_off, G.row_bytes, seg_bytes, n, (c1 - c0 + 1) / 2);
            if (block) {
                rows_run<D, T, NR, D::BIG>(G, row, r0, cs, ce, a, cache, cs == 0, y, y_stride, pf);
            } else {
                rows_run<D, T, 1, D::BIG>(G, row, r0, cs, ce, a, cache, cs == 0, y, y_stride, pf);
            }
            r += n;
        }
    }
}

template <class D>
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
    G.nch = (g.ne0 + 31) / 32;
    G.gch = (g.C + 31) / 32;
    const uint8_t * a = (const uint8_t *) act;
    int64_t t = 0;
    for (; t + 4 <= nt; t += 4) gemm_tokens<D, 4>(G, r0, nr, a + (size_t) t * act_stride, act_stride, y + t * y_stride, y_stride);
    switch (nt - t) {
        case 1: gemm_tokens<D, 1>(G, r0, nr, a + (size_t) t * act_stride, act_stride, y + t * y_stride, y_stride); break;
        case 2: gemm_tokens<D, 2>(G, r0, nr, a + (size_t) t * act_stride, act_stride, y + t * y_stride, y_stride); break;
        case 3: gemm_tokens<D, 3>(G, r0, nr, a + (size_t) t * act_stride, act_stride, y + t * y_stride, y_stride); break;
        default: break;
    }
}

}  // namespace

const gl_vq_gemm_fn gl_vq_gemm_avx2[GL_TYPE_COUNT] = {
    nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
    /* VQ1_B2_G256   */ vq_gemm<V1B2>,
    /* VQ1_B2_G128   */ vq_gemm<V1B2>,
    /* VQ1_B3_G512   */ vq_gemm<V1B3>,
    /* VQ1_B4_G1024  */ vq_gemm<V1B4>,
    /* VQ2_B2_G2048  */ vq_gemm<V2B2>,
    /* VQ2_B2_G1024  */ vq_gemm<V2B2>,
    /* VQ2_B3_G8192  */ vq_gemm<V2B3>,
    /* VQ2_B4_G32768 */ vq_gemm<V2B4>,
    /* VQ4_B2_G65536 */ vq_gemm<V4B2>,
    /* VQ4_B2_G32768 */ vq_gemm<V4B2>,
};
static_assert(GL_TYPE_VQ1_B2_G256 == 14 && GL_TYPE_COUNT == 24, "the table above lists the codebook types in order");
