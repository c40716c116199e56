// Codebook-type (GPTVQ) products at the avx512 level (F, BW, VL, DQ, VNNI, VBMI). Built with per-file flags
// (CMakeLists.txt) and resolved only when the CPU has VNNI and VBMI (ggml-lite/cpu.cpp). As in avx512.cpp: no
// inline functions from shared headers (simd_common.h's are per file), no std:: templates, internal linkage; the
// table at the end is the only exported symbol. The scalar reference is vq_gemm_ref in ggml-lite/types.cpp;
// this matches it up to the order of the float sums (every chunk's integer dot is exact).
//
// One 512-bit register holds two 32-weight chunks of a row (a "pair", 2 · 4·bits index bytes). Decoding is
// branch-free and table-driven:
// - the pair's index bytes are put where vpmultishiftqb can reach them (a broadcast load, or one vpermb
//   "arrangement" of a 32-byte load), then one or two vpmultishiftqb pull every index's bits into its own byte
//   (two plus a vpternlogd when an index's bits lie in two places: the b = 3 layouts);
// - the lookup: 1-D, vpermb on a 64-byte table of codebook entries + 128 (unsigned). vpermb reads only the low 6
//   bits of an index, so a codebook of k < 64 entries is repeated 64/k times and the index bits above log2(k) need
//   no masking. 2-D b2/b3: vpermw / vpermi2w on the codebook as stored, one 16-bit word (both coordinates) per
//   pair index. k = 256 (2-D b4, 4-D b2): two vpermt2b (128 entries each) per coordinate and a blend on the
//   index's top bit (gathers measured 2-3x slower).
// - The decoded weights come out in a fixed per-type order of whole natural dwords (D::PI), whatever order the
//   multishift reaches cheaply; decode permutes the activations the same way once per call, batches broadcast the
//   matching activation dword.
// The dot: vpdpbusd(unsigned weight + 128, signed activation), its accumulator starting at the exact correction
// -128 · (the activation bytes summed), precomputed per token; then × the chunk's activation scale into a float
// accumulator per group, × the group's fp16 scale at the group's end.
//
// Decode (1 to 4 tokens, gemm_tokens) runs every token of the call against each decoded step of NR rows (1.5-3
// cycles per pair of chunks and row on Zen 5, most of it vpermb / vpmultishiftqb / vpdpbusd port pressure). Most
// types walk their rows in lanes, each lane one sequential stream with its codebooks set up once per row group;
// the 2-D b4 and 4-D types (512-byte and 1 KiB tables) walk 8 consecutive rows at a time (4 / 2 for 2 / 3-4
// tokens), set up once per row group and segment into a stack cache. vq2_b3 decodes with V2B3Q: four chunks per
// step, half the shuffle operations per weight of V2B3. Batches (more than 4 tokens): the 16-row transposed
// kernel below.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"

#include <cstring>

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "ggml-lite/cpu/act_avx512.h"  // after the pragmas: act_sums (nc = -128 · block sum: shift 7)

namespace {

// ---- constant tables (generated; see the decoders for what they mean) -----------------------------------------
alignas(64) const uint8_t k_b2_ms[64] = {
    0, 8, 16, 24, 32, 40, 48, 56, 0, 8, 16, 24, 32, 40, 48, 56, 2, 10, 18, 26, 34, 42, 50, 58, 2, 10, 18, 26, 34, 42, 50, 58,
    4, 12, 20, 28, 36, 44, 52, 60, 4, 12, 20, 28, 36, 44, 52, 60, 6, 14, 22, 30, 38, 46, 54, 62, 6, 14, 22, 30, 38, 46, 54, 62,
};

alignas(64) const uint8_t k_b2_perm[64] = {
    0, 1, 2, 3, 4, 5, 6, 7, 32, 33, 34, 35, 36, 37, 38, 39, 8, 9, 10, 11, 12, 13, 14, 15, 40, 41, 42, 43, 44, 45, 46, 47,
    16, 17, 18, 19, 20, 21, 22, 23, 48, 49, 50, 51, 52, 53, 54, 55, 24, 25, 26, 27, 28, 29, 30, 31, 56, 57, 58, 59, 60, 61, 62, 63,
};

alignas(64) const uint8_t k_b3_arr[64] = {
    0, 1, 2, 3, 8, 10, 8, 8, 4, 5, 6, 7, 8, 10, 8, 8, 0, 1, 2, 3, 9, 11, 8, 8, 4, 5, 6, 7, 9, 11, 8, 8,
    12, 13, 14, 15, 20, 22, 20, 20, 16, 17, 18, 19, 20, 22, 20, 20, 12, 13, 14, 15, 21, 23, 20, 20, 16, 17, 18, 19, 21, 23, 20, 20,
};

alignas(64) const uint8_t k_b3_msa[64] = {
    0, 8, 16, 24, 4, 12, 20, 28, 0, 8, 16, 24, 4, 12, 20, 28, 2, 10, 18, 26, 6, 14, 22, 30, 2, 10, 18, 26, 6, 14, 22, 30,
    0, 8, 16, 24, 4, 12, 20, 28, 0, 8, 16, 24, 4, 12, 20, 28, 2, 10, 18, 26, 6, 14, 22, 30, 2, 10, 18, 26, 6, 14, 22, 30,
};

alignas(64) const uint8_t k_b3_msb[64] = {
    30, 31, 32, 33, 38, 39, 40, 41, 34, 35, 36, 37, 42, 43, 44, 45, 30, 31, 32, 33, 38, 39, 40, 41, 34, 35, 36, 37, 42, 43, 44, 45,
    30, 31, 32, 33, 38, 39, 40, 41, 34, 35, 36, 37, 42, 43, 44, 45, 30, 31, 32, 33, 38, 39, 40, 41, 34, 35, 36, 37, 42, 43, 44, 45,
};

alignas(64) const uint8_t k_b3_perm[64] = {
    0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23, 8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31,
    32, 33, 34, 35, 48, 49, 50, 51, 36, 37, 38, 39, 52, 53, 54, 55, 40, 41, 42, 43, 56, 57, 58, 59, 44, 45, 46, 47, 60, 61, 62, 63,
};

alignas(64) const uint8_t k_b4_ms[64] = {
    0, 8, 16, 24, 32, 40, 48, 56, 0, 8, 16, 24, 32, 40, 48, 56, 0, 8, 16, 24, 32, 40, 48, 56, 0, 8, 16, 24, 32, 40, 48, 56,
    4, 12, 20, 28, 36, 44, 52, 60, 4, 12, 20, 28, 36, 44, 52, 60, 4, 12, 20, 28, 36, 44, 52, 60, 4, 12, 20, 28, 36, 44, 52, 60,
};

alignas(64) const uint8_t k_b4_perm[64] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
};

alignas(64) const uint8_t k_p2_ms[64] = {
    0, 0, 8, 8, 16, 16, 24, 24, 0, 0, 8, 8, 16, 16, 24, 24, 32, 32, 40, 40, 48, 48, 56, 56, 32, 32, 40, 40, 48, 48, 56, 56,
    4, 4, 12, 12, 20, 20, 28, 28, 4, 4, 12, 12, 20, 20, 28, 28, 36, 36, 44, 44, 52, 52, 60, 60, 36, 36, 44, 44, 52, 52, 60, 60,
};

alignas(64) const uint8_t k_p2_perm[64] = {
    0, 1, 2, 3, 4, 5, 6, 7, 32, 33, 34, 35, 36, 37, 38, 39, 8, 9, 10, 11, 12, 13, 14, 15, 40, 41, 42, 43, 44, 45, 46, 47,
    16, 17, 18, 19, 20, 21, 22, 23, 48, 49, 50, 51, 52, 53, 54, 55, 24, 25, 26, 27, 28, 29, 30, 31, 56, 57, 58, 59, 60, 61, 62, 63,
};

alignas(64) const uint8_t k_p3_arr[64] = {
    0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11,
    12, 13, 14, 15, 20, 21, 22, 23, 16, 17, 18, 19, 20, 21, 22, 23, 12, 13, 14, 15, 20, 21, 22, 23, 16, 17, 18, 19, 20, 21, 22, 23,
};

alignas(64) const uint8_t k_p3_msa[64] = {
    0, 0, 8, 8, 16, 16, 24, 24, 0, 0, 8, 8, 16, 16, 24, 24, 4, 4, 12, 12, 20, 20, 28, 28, 4, 4, 12, 12, 20, 20, 28, 28,
    0, 0, 8, 8, 16, 16, 24, 24, 0, 0, 8, 8, 16, 16, 24, 24, 4, 4, 12, 12, 20, 20, 28, 28, 4, 4, 12, 12, 20, 20, 28, 28,
};

alignas(64) const uint8_t k_p3_msb[64] = {
    28, 28, 36, 36, 44, 44, 52, 52, 30, 30, 38, 38, 46, 46, 54, 54, 32, 32, 40, 40, 48, 48, 56, 56, 34, 34, 42, 42, 50, 50, 58, 58,
    28, 28, 36, 36, 44, 44, 52, 52, 30, 30, 38, 38, 46, 46, 54, 54, 32, 32, 40, 40, 48, 48, 56, 56, 34, 34, 42, 42, 50, 50, 58, 58,
};


alignas(64) const uint8_t k_p4_arr[64] = {
    0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15,
    16, 16, 17, 17, 18, 18, 19, 19, 20, 20, 21, 21, 22, 22, 23, 23, 24, 24, 25, 25, 26, 26, 27, 27, 28, 28, 29, 29, 30, 30, 31, 31,
};

alignas(64) const uint8_t k_q2_arr[64] = {
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7,
    8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11, 12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15,
};

alignas(64) const uint8_t k_even[64] = {
    0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 42, 44, 46, 48, 50, 52, 54, 56, 58, 60, 62,
    64, 66, 68, 70, 72, 74, 76, 78, 80, 82, 84, 86, 88, 90, 92, 94, 96, 98, 100, 102, 104, 106, 108, 110, 112, 114, 116, 118, 120, 122, 124, 126,
};

alignas(64) const uint8_t k_odd[64] = {
    1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 37, 39, 41, 43, 45, 47, 49, 51, 53, 55, 57, 59, 61, 63,
    65, 67, 69, 71, 73, 75, 77, 79, 81, 83, 85, 87, 89, 91, 93, 95, 97, 99, 101, 103, 105, 107, 109, 111, 113, 115, 117, 119, 121, 123, 125, 127,
};

alignas(64) const uint8_t k_quad0[64] = {
    0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 96, 100, 104, 108, 112, 116, 120, 124,
    0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60, 64, 68, 72, 76, 80, 84, 88, 92, 96, 100, 104, 108, 112, 116, 120, 124,
};

alignas(64) const uint8_t k_quad1[64] = {
    1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 65, 69, 73, 77, 81, 85, 89, 93, 97, 101, 105, 109, 113, 117, 121, 125,
    1, 5, 9, 13, 17, 21, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61, 65, 69, 73, 77, 81, 85, 89, 93, 97, 101, 105, 109, 113, 117, 121, 125,
};

alignas(64) const uint8_t k_quad2[64] = {
    2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 50, 54, 58, 62, 66, 70, 74, 78, 82, 86, 90, 94, 98, 102, 106, 110, 114, 118, 122, 126,
    2, 6, 10, 14, 18, 22, 26, 30, 34, 38, 42, 46, 50, 54, 58, 62, 66, 70, 74, 78, 82, 86, 90, 94, 98, 102, 106, 110, 114, 118, 122, 126,
};

alignas(64) const uint8_t k_quad3[64] = {
    3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63, 67, 71, 75, 79, 83, 87, 91, 95, 99, 103, 107, 111, 115, 119, 123, 127,
    3, 7, 11, 15, 19, 23, 27, 31, 35, 39, 43, 47, 51, 55, 59, 63, 67, 71, 75, 79, 83, 87, 91, 95, 99, 103, 107, 111, 115, 119, 123, 127,
};

alignas(64) const uint8_t k_identity[64] = {
    0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
    32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63,
};


// vq2_b3's quad decoder (V2B3Q below): four chunks (48 index bytes) -> 64 pair indices. Output qword m holds pairs
// {4h .. 4h+3, 4h+8 .. 4h+11} of chunk c = m / 2 (h = m % 2): arranged source bytes N[4h .. 4h+3] (their nibbles)
// and H[0..3] (the high bits: 2h for the first four pairs, 4 + 2h for the others); multishift A takes each nibble
// to bits 0..3, B each pair's two high bits to bits 4..5. act0 / act1: where the pair's coordinate 0 / 1 sits in
// the four chunks' 128 activation bytes (chunk c at 32c).
struct Q3Tables {
    uint8_t arr[64] = {}, msa[64] = {}, msb[64] = {}, act0[64] = {}, act1[64] = {};
    constexpr Q3Tables() {
        for (int m = 0; m < 8; ++m) {
            const int c = m / 2, h = m % 2;
            for (int b = 0; b < 8; ++b) {
                const int i = 8 * m + b, lo = b < 4, k = lo ? b : b - 4;
                arr[i] = (uint8_t) (12 * c + (lo ? 4 * h + k : 8 + k));
                msa[i] = (uint8_t) (lo ? 8 * k : 8 * k + 4);
                msb[i] = (uint8_t) (lo ? 28 + 8 * k + 2 * h : 32 + 8 * k + 2 * h);
                const int pair = lo ? 4 * h + k : 4 * h + 8 + k;
                act0[i] = (uint8_t) (32 * c + 2 * pair);
                act1[i] = (uint8_t) (32 * c + 2 * pair + 1);
            }
        }
    }
};
alignas(64) constexpr Q3Tables k_q3{};

const __mmask64 ODD_BYTES = 0xAAAAAAAAAAAAAAAAull;

inline __m512i ld(const uint8_t * t) { return _mm512_load_si512((const void *) t); }
inline __m512i bias() { return _mm512_set1_epi8((char) 0x80); }

// Decoders of two chunks per step (one 64-byte vector of weights) derive from Pairs; V2B3Q decodes four (two vectors,
// one per pair coordinate).
struct Pairs {
    static constexpr int CH = 2;  // chunks per step
    static constexpr int NV = 1;  // weight vectors per step
};

// ---- decoders: D::decode(p, lut) = the pair of chunks at p (two chunks of D::BYTES; the second may lie past the
// row's end when a row has an odd number of chunks: its activations are zero) as 64 unsigned bytes, codebook
// entry + 128, in D's byte order: output byte i is weight perm[i] % 32 of the pair's chunk perm[i] / 32. ---------

// 1-D, 2 bits: byte j, bits 2k..2k+1 = index of weight j + 8k. Qword m of the broadcast = chunk m % 2.
struct V1B2 : Pairs {
    static constexpr int BYTES = 8;
    static constexpr bool BIG = false;
    // output dword k holds the weights of natural dword PI[k] of the pair (0..7: first chunk, 8..15: second)
    static constexpr uint8_t PI[16] = {0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15};
    static const uint8_t * perm() { return k_b2_perm; }
    struct Lut { __m512i t; };
    static inline void setup(const int8_t * cb, Lut & L) { L.t = _mm512_xor_si512(_mm512_set1_epi32(load_i32(cb)), bias()); }
    static inline __m512i decode(const uint8_t * p, const Lut & L) {
        const __m512i x = _mm512_broadcast_i64x2(_mm_loadu_si128((const __m128i *) p));
        return _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(ld(k_b2_ms), x), L.t);
    }
};

// 1-D, 3 bits: the 2-bit layout in bytes 0..7, bit w of the word at byte 8 = bit 2 of weight w's index. Source
// qword m of chunk m / 4 = bytes {4i .. 4i+3, 8 + k, 10 + k} (i = m % 2, k = m / 2 % 2): everything of weights
// 4i .. 4i+3 + 8k and + 8(k+2), which are its two output dwords; multishift A takes the low bits to bits 0..1, B
// the high bit to bit 2, vpternlogd merges.
struct V1B3 : Pairs {
    static constexpr int BYTES = 12;
    static constexpr bool BIG = false;
    // output dword k holds the weights of natural dword PI[k] of the pair (0..7: first chunk, 8..15: second)
    static constexpr uint8_t PI[16] = {0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15};
    static const uint8_t * perm() { return k_b3_perm; }
    struct Lut { __m512i t; };
    static inline void setup(const int8_t * cb, Lut & L) { L.t = _mm512_xor_si512(_mm512_set1_epi64(load_i64(cb)), bias()); }
    static inline __m512i decode(const uint8_t * p, const Lut & L) {
        const __m512i s = _mm512_permutexvar_epi8(ld(k_b3_arr), _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) p)));
        const __m512i a = _mm512_multishift_epi64_epi8(ld(k_b3_msa), s), b = _mm512_multishift_epi64_epi8(ld(k_b3_msb), s);
        return _mm512_permutexvar_epi8(_mm512_ternarylogic_epi32(a, b, _mm512_set1_epi8(3), 0xE4), L.t);  // c ? a : b
    }
};

// 1-D, 4 bits: byte j = weight j (low nibble), j + 16 (high). Lane l of the broadcast = chunk l % 2, nibble l / 2.
struct V1B4 : Pairs {
    static constexpr int BYTES = 16;
    static constexpr bool BIG = false;
    // output dword k holds the weights of natural dword PI[k] of the pair (0..7: first chunk, 8..15: second)
    static constexpr uint8_t PI[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
    static const uint8_t * perm() { return k_b4_perm; }
    struct Lut { __m512i t; };
    static inline void setup(const int8_t * cb, Lut & L) { L.t = _mm512_xor_si512(_mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *) cb)), bias()); }
    static inline __m512i decode(const uint8_t * p, const Lut & L) {
        const __m512i x = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) p));
        return _mm512_permutexvar_epi8(_mm512_multishift_epi64_epi8(ld(k_b4_ms), x), L.t);
    }
};

// 2-D, 2 bits (16 pairs of 4-bit indices): byte j = pair j (low nibble), j + 8 (high). The multishift puts a pair's
// index in the low byte of its word; vpermw looks the word (both coordinates) up in the codebook as stored (16
// words, repeated twice: index bit 4 is not masked).
struct V2B2 : Pairs {
    static constexpr int BYTES = 8;
    static constexpr bool BIG = false;
    // output dword k holds the weights of natural dword PI[k] of the pair (0..7: first chunk, 8..15: second)
    static constexpr uint8_t PI[16] = {0, 1, 8, 9, 2, 3, 10, 11, 4, 5, 12, 13, 6, 7, 14, 15};
    static const uint8_t * perm() { return k_p2_perm; }
    struct Lut { __m512i t; };
    static inline void setup(const int8_t * cb, Lut & L) { L.t = _mm512_xor_si512(_mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *) cb)), bias()); }
    static inline __m512i decode(const uint8_t * p, const Lut & L) {
        const __m512i x = _mm512_broadcast_i64x2(_mm_loadu_si128((const __m128i *) p));
        return _mm512_permutexvar_epi16(_mm512_multishift_epi64_epi8(ld(k_p2_ms), x), L.t);
    }
};

// 2-D, 3 bits (16 pairs of 6-bit indices): low nibbles as 2-D b2, bits 4..5 of pair j + 4k at bits 2k of byte 8 + j.
// Source qword m of chunk m / 4 = bytes {4i .. 4i+3, 8 .. 11} (i = m % 2): everything of pairs 4q .. 4q+3 (q = m % 4),
// which are its output qword, so the order is natural. Multishift A takes the nibble to bits 0..3, B the high bits
// to 4..5, vpternlogd merges; vpermi2w looks the pair up in the codebook as stored (64 words in two registers).
struct V2B3 : Pairs {
    static constexpr int BYTES = 12;
    static constexpr bool BIG = true;
    // output dword k holds the weights of natural dword PI[k] of the pair (0..7: first chunk, 8..15: second)
    static constexpr uint8_t PI[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const uint8_t * perm() { return k_identity; }
    struct Lut { __m512i t0, t1; };
    static inline void setup(const int8_t * cb, Lut & L) {
        L.t0 = _mm512_xor_si512(_mm512_loadu_si512((const void *) cb), bias());
        L.t1 = _mm512_xor_si512(_mm512_loadu_si512((const void *) (cb + 64)), bias());
    }
    static inline __m512i decode(const uint8_t * p, const Lut & L) {
        const __m512i s = _mm512_permutexvar_epi8(ld(k_p3_arr), _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) p)));
        const __m512i a = _mm512_multishift_epi64_epi8(ld(k_p3_msa), s), b = _mm512_multishift_epi64_epi8(ld(k_p3_msb), s);
        const __m512i i = _mm512_ternarylogic_epi32(a, b, _mm512_set1_epi8(0x0F), 0xE4);  // c ? a : b
        return _mm512_permutex2var_epi16(L.t0, i, L.t1);
    }
};

// 2-D, 3 bits, four chunks per step (the decode kernel's; batches use V2B3): 64 pair indices in one vector (k_q3),
// looked up per coordinate with vpermb in a 64-byte table (its low 6 bits are the index: bits 6..7 need no mask).
// Weight vector e holds coordinate e of the pairs, against the activations arranged the same way (k_q3.act<e>):
// five shuffle-port operations per 128 weights where V2B3 takes five per 64.
struct V2B3Q {
    static constexpr int CH = 4;
    static constexpr int NV = 2;
    static constexpr int BYTES = 12;
    static constexpr bool BIG = true;
    struct Lut { __m512i t0, t1; };  // coordinate 0 / 1 of the 64 entries, + 128
    static inline void setup(const int8_t * cb, Lut & L) {
        const __m512i a = _mm512_xor_si512(_mm512_loadu_si512((const void *) cb), bias());
        const __m512i b = _mm512_xor_si512(_mm512_loadu_si512((const void *) (cb + 64)), bias());
        L.t0 = _mm512_permutex2var_epi8(a, ld(k_even), b);
        L.t1 = _mm512_permutex2var_epi8(a, ld(k_odd), b);
    }
    // Reads 64 bytes at p: past the row's 48 when fewer chunks remain, still inside the tensor (the side section
    // follows the last row), and those indices meet zero activations.
    static inline void decode(const uint8_t * p, const Lut & L, __m512i W[2]) {
        const __m512i s = _mm512_permutexvar_epi8(ld(k_q3.arr), _mm512_loadu_si512((const void *) p));
        const __m512i a = _mm512_multishift_epi64_epi8(ld(k_q3.msa), s), b = _mm512_multishift_epi64_epi8(ld(k_q3.msb), s);
        const __m512i i = _mm512_ternarylogic_epi32(a, b, _mm512_set1_epi8(0x0F), 0xE4);  // c ? a : b
        W[0] = _mm512_permutexvar_epi8(i, L.t0);
        W[1] = _mm512_permutexvar_epi8(i, L.t1);
    }
};

// 2-D, 4 bits: byte j = index of pair j (256 pairs, 512 bytes). Each index byte doubled (natural order); per
// coordinate a 256-entry table in 4 registers: two vpermt2b (entries 0..127, 128..255) and a blend on bit 7.
struct V2B4 : Pairs {
    static constexpr int BYTES = 16;
    static constexpr bool BIG = true;
    // output dword k holds the weights of natural dword PI[k] of the pair (0..7: first chunk, 8..15: second)
    static constexpr uint8_t PI[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const uint8_t * perm() { return k_identity; }
    struct Lut { __m512i t[8]; };  // t[4e + q]: coordinate e, entries 64q .. 64q + 63
    static inline void setup(const int8_t * cb, Lut & L) {
        GL_UNROLL
        for (int q = 0; q < 4; ++q) {
            const __m512i a = _mm512_xor_si512(_mm512_loadu_si512((const void *) (cb + 128 * q)), bias());
            const __m512i b = _mm512_xor_si512(_mm512_loadu_si512((const void *) (cb + 128 * q + 64)), bias());
            L.t[q] = _mm512_permutex2var_epi8(a, ld(k_even), b);
            L.t[4 + q] = _mm512_permutex2var_epi8(a, ld(k_odd), b);
        }
    }
    static inline __m512i decode(const uint8_t * p, const Lut & L) {
        const __m512i x = _mm512_permutexvar_epi8(ld(k_p4_arr), _mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *) p)));
        const __mmask64 hi = _mm512_movepi8_mask(x);
        const __m512i r0 = _mm512_mask_blend_epi8(hi, _mm512_permutex2var_epi8(L.t[0], x, L.t[1]), _mm512_permutex2var_epi8(L.t[2], x, L.t[3]));
        const __m512i r1 = _mm512_mask_blend_epi8(hi, _mm512_permutex2var_epi8(L.t[4], x, L.t[5]), _mm512_permutex2var_epi8(L.t[6], x, L.t[7]));
        return _mm512_mask_blend_epi8(ODD_BYTES, r0, r1);
    }
};

// 4-D, 2 bits: byte j = index of quad j (256 quads, 1 KB). As 2-D b4 with four coordinates (16 table registers).
struct V4B2 : Pairs {
    static constexpr int BYTES = 8;
    static constexpr bool BIG = true;
    // output dword k holds the weights of natural dword PI[k] of the pair (0..7: first chunk, 8..15: second)
    static constexpr uint8_t PI[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const uint8_t * perm() { return k_identity; }
    struct Lut { __m512i t[16]; };  // t[4e + q]: coordinate e, entries 64q .. 64q + 63
    static inline void setup(const int8_t * cb, Lut & L) {
        const uint8_t * qi[4] = {k_quad0, k_quad1, k_quad2, k_quad3};
        GL_UNROLL
        for (int q = 0; q < 4; ++q) {
            __m512i r[4];
            GL_UNROLL
            for (int j = 0; j < 4; ++j) r[j] = _mm512_xor_si512(_mm512_loadu_si512((const void *) (cb + 256 * q + 64 * j)), bias());
            GL_UNROLL
            for (int e = 0; e < 4; ++e)
                L.t[4 * e + q] = _mm512_mask_blend_epi8((__mmask64) 0xFFFFFFFF00000000ull, _mm512_permutex2var_epi8(r[0], ld(qi[e]), r[1]),
                                                        _mm512_permutex2var_epi8(r[2], ld(qi[e]), r[3]));
        }
    }
    static inline __m512i decode(const uint8_t * p, const Lut & L) {
        const __m512i x = _mm512_permutexvar_epi8(ld(k_q2_arr), _mm512_castsi128_si512(_mm_loadu_si128((const __m128i *) p)));
        const __mmask64 hi = _mm512_movepi8_mask(x);
        __m512i r[4];
        GL_UNROLL
        for (int e = 0; e < 4; ++e)
            r[e] = _mm512_mask_blend_epi8(hi, _mm512_permutex2var_epi8(L.t[4 * e], x, L.t[4 * e + 1]), _mm512_permutex2var_epi8(L.t[4 * e + 2], x, L.t[4 * e + 3]));
        __m512i w = _mm512_mask_blend_epi8((__mmask64) 0x2222222222222222ull, r[0], r[1]);
        w = _mm512_mask_blend_epi8((__mmask64) 0x4444444444444444ull, w, r[2]);
        return _mm512_mask_blend_epi8((__mmask64) 0x8888888888888888ull, w, r[3]);
    }
};

// ---- activations ----------------------------------------------------------------------------------------------

// One step (D::CH Q8_0 blocks) of one token in a decoder's byte order: the bytes (one vector per weight vector), the
// exact offset correction -128 · (each dword lane's bytes summed over the vectors) as the dot's starting value, and
// each lane's block scale.
template <int NV> struct StepAct {
    __m512i a[NV], nc;
    __m512 dy;
};
template <class D> using ActOf = StepAct<D::NV>;

// Steps [p0, p0 + np) of one token's row of nch blocks (blocks past the last one read as zeros).
template <class D> void act_setup(const gl_block_q8_0 * a, int64_t p0, int64_t np, int64_t nch, ActOf<D> * out) {
    const __m512i ones80 = bias();
    if constexpr (D::NV == 2) {  // V2B3Q: chunk c of the quad in dword lanes 4c .. 4c+3
        const __m512i lane_chunk = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
        for (int64_t i = 0; i < np; ++i) {
            const int64_t c = 4 * (p0 + i);
            __m256i q[4];
            alignas(16) float d[4];
            for (int k = 0; k < 4; ++k) {
                const bool in = c + k < nch;
                q[k] = in ? _mm256_loadu_si256((const __m256i *) a[c + k].qs) : _mm256_setzero_si256();
                d[k] = in ? h2f(a[c + k].d) : 0.0f;
            }
            const __m512i X = _mm512_inserti64x4(_mm512_castsi256_si512(q[0]), q[1], 1);
            const __m512i Y = _mm512_inserti64x4(_mm512_castsi256_si512(q[2]), q[3], 1);
            out[i].a[0] = _mm512_permutex2var_epi8(X, ld(k_q3.act0), Y);
            out[i].a[1] = _mm512_permutex2var_epi8(X, ld(k_q3.act1), Y);
            const __m512i s = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), ones80, out[i].a[0]), ones80, out[i].a[1]);
            out[i].nc = _mm512_sub_epi32(_mm512_setzero_si512(), s);
            out[i].dy = _mm512_permutexvar_ps(lane_chunk, _mm512_castps128_ps512(_mm_load_ps(d)));
        }
    } else {
        const __m512i perm = ld(D::perm());
        __mmask16 second = 0;  // dword lanes of the pair's second chunk
        for (int l = 0; l < 16; ++l) second |= (__mmask16) ((D::perm()[4 * l] >= 32 ? 1u : 0u) << l);
        for (int64_t i = 0; i < np; ++i) {
            const int64_t c = 2 * (p0 + i);
            const bool two = c + 1 < nch;
            const __m256i lo = _mm256_loadu_si256((const __m256i *) a[c].qs);
            const __m256i hi = two ? _mm256_loadu_si256((const __m256i *) a[c + 1].qs) : _mm256_setzero_si256();
            const __m512i A = _mm512_permutexvar_epi8(perm, _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
            out[i].a[0] = A;
            out[i].nc = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), ones80, A));
            out[i].dy = _mm512_mask_blend_ps(second, _mm512_set1_ps(h2f(a[c].d)), _mm512_set1_ps(two ? h2f(a[c + 1].d) : 0.0f));
        }
    }
}

// ---- the product ----------------------------------------------------------------------------------------------

struct Geo {
    const uint8_t * data;     // index rows
    const uint8_t * scales;   // fp16 per group
    const int8_t * cbs;       // codebooks
    size_t row_bytes, cb_bytes;
    int64_t R, ncg, n_groups, nch, npair, pg;  // npair: steps per row (D::CH chunks each); pg: per column group
};

constexpr int64_t PFD = 2;  // blocks of rows between the one computed and the one prefetched (block walk)
constexpr int64_t PFL = 2;  // rows between the one computed and the one prefetched in each lane (lane walk)

// One step (local index p) of NR rows × T tokens; also prefetches the same bytes of the rows fdelta bytes on.
template <class D, int T, int NR>
inline void pair_step(const uint8_t * const rp[NR], size_t fdelta, const typename D::Lut * const lut[NR], int64_t p, const ActOf<D> * act,
                      int64_t act_seg, __m512 facc[NR * T]) {
    constexpr size_t SB = (size_t) D::CH * D::BYTES;  // index bytes per step
    __m512i A[T][D::NV], NC[T];
    __m512 DY[T];
    GL_UNROLL
    for (int t = 0; t < T; ++t) {
        const ActOf<D> & x = act[t * act_seg + p];
        GL_UNROLL
        for (int v = 0; v < D::NV; ++v) A[t][v] = x.a[v];
        NC[t] = x.nc;
        DY[t] = x.dy;
    }
    GL_UNROLL
    for (int r = 0; r < NR; ++r) {
        _mm_prefetch((const char *) rp[r] + fdelta + (size_t) p * SB, _MM_HINT_T0);
        __m512i W[D::NV];
        if constexpr (D::NV == 2) D::decode(rp[r] + (size_t) p * SB, *lut[r], W);
        else W[0] = D::decode(rp[r] + (size_t) p * SB, *lut[r]);
        GL_UNROLL
        for (int t = 0; t < T; ++t) {
            __m512i acc = NC[t];
            GL_UNROLL
            for (int v = 0; v < D::NV; ++v) acc = _mm512_dpbusd_epi32(acc, W[v], A[t][v]);
            facc[r * T + t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc), DY[t], facc[r * T + t]);
        }
    }
}

// NR rows (index bytes of the segment's first step at rp[r]) × T tokens over the column groups [cg0, cg1) of the
// segment starting at step p0. Rows r and r' share a row group rg[r / SUB] (its codebooks and scales) when
// r / SUB == r' / SUB: then the codebooks are set up once per group for the SUB rows (or come set up in `cache`,
// indexed by cg - cg0, when CACHED: all NR rows in one row group).
// A row of the lane walk: its index, and its lane's codebooks (D::Lut, set up) and scales for the segment's groups.
struct LaneRow {
    int64_t row;
    const void * lut;
    const float * sc;
};

// Codebooks and scales: set up here per group for each SUB rows (MODE_OWN), set up in `cache` for all NR rows
// (MODE_CACHED: one row group), or set up in each row's lane (MODE_LANES, SUB = 1).
enum { MODE_OWN, MODE_CACHED, MODE_LANES };

template <class D, int T, int NR, int SUB, int MODE>
inline void rows_segment(const Geo & G, const uint8_t * const rp[NR], size_t fdelta, const int64_t rg[NR / SUB], const LaneRow * lane,
                         int64_t cg0, int64_t cg1, int64_t p0, const ActOf<D> * act, int64_t act_seg, const typename D::Lut * cache,
                         __m512 racc[NR * T]) {
    constexpr int NS = NR / SUB;
    for (int64_t cg = cg0; cg < cg1; ++cg) {
        const int64_t pa = cg * G.pg - p0, pb = min_i64((cg + 1) * G.pg, G.npair) - p0;
        typename D::Lut own[MODE == MODE_OWN ? NS : 1];
        const typename D::Lut * lut[NR];
        if (MODE == MODE_OWN) {
            GL_UNROLL
            for (int i = 0; i < NS; ++i) D::setup(G.cbs + (size_t) (rg[i] * G.ncg + cg) * G.cb_bytes, own[i]);
        }
        GL_UNROLL
        for (int r = 0; r < NR; ++r)
            lut[r] = MODE == MODE_LANES ? (const typename D::Lut *) lane[r].lut + (cg - cg0) : MODE == MODE_CACHED ? cache + (cg - cg0) : &own[r / SUB];
        __m512 facc[NR * T];
        GL_UNROLL
        for (int i = 0; i < NR * T; ++i) facc[i] = _mm512_setzero_ps();
        if (pb - pa == 8 / D::CH) {  // a whole group of 256 columns: unrolled
            GL_UNROLL
            for (int q = 0; q < 8 / D::CH; ++q) pair_step<D, T, NR>(rp, fdelta, lut, pa + q, act, act_seg, facc);
        } else {
            for (int64_t p = pa; p < pb; ++p) pair_step<D, T, NR>(rp, fdelta, lut, p, act, act_seg, facc);
        }
        GL_UNROLL
        for (int i = 0; i < NS; ++i) {
            const __m512 s = _mm512_set1_ps(MODE == MODE_LANES ? lane[i].sc[cg - cg0] : h2f(load_u16(G.scales + 2 * (rg[i] * G.ncg + cg))));
            GL_UNROLL
            for (int r = i * SUB; r < (i + 1) * SUB; ++r) {
                GL_UNROLL
                for (int t = 0; t < T; ++t) racc[r * T + t] = _mm512_fmadd_ps(facc[r * T + t], s, racc[r * T + t]);
            }
        }
    }
}

// The lane sums of v[0..3], as 4 floats.
inline __m128 reduce4(__m512 v0, __m512 v1, __m512 v2, __m512 v3) {
    const __m512 a = _mm512_add_ps(_mm512_shuffle_f32x4(v0, v1, 0x44), _mm512_shuffle_f32x4(v0, v1, 0xEE));  // v0 | v1, 256-bit halves added
    const __m512 b = _mm512_add_ps(_mm512_shuffle_f32x4(v2, v3, 0x44), _mm512_shuffle_f32x4(v2, v3, 0xEE));
    __m512 c = _mm512_add_ps(_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD));  // 128-bit lane i: 4 partials of v[i]
    c = _mm512_add_ps(c, _mm512_permute_ps(c, 0x4E));
    c = _mm512_add_ps(c, _mm512_permute_ps(c, 0xB1));
    return _mm512_castps512_ps128(_mm512_maskz_compress_ps(0x1111, c));
}

inline void store_out(float * o, float v, bool add) { *o = add ? *o + v : v; }

// NR rows × T tokens over the segment's column groups [cg0, cg1): rows row .. row + NR - 1 (lane == nullptr), or
// lane[r].row (the lane walk, SUB = 1). Each row's bytes fdelta on are prefetched as it goes.

template <class D, int T, int NR, int SUB, int MODE>
inline void rows_run(const Geo & G, int64_t row, const LaneRow * lane, size_t fdelta, int64_t r0, int64_t cg0, int64_t cg1, int64_t p0,
                     const ActOf<D> * act, int64_t act_seg, const typename D::Lut * cache, bool first_seg, float * y, int64_t y_stride) {
    constexpr int NS = NR / SUB;
    const uint8_t * rp[NR];
    int64_t rg[NS];
    GL_UNROLL
    for (int r = 0; r < NR; ++r) rp[r] = G.data + (size_t) (lane ? lane[r].row : row + r) * G.row_bytes + (size_t) p0 * D::CH * D::BYTES;
    GL_UNROLL
    for (int i = 0; i < NS; ++i) rg[i] = lane ? 0 : (row + i * SUB) / G.R;
    __m512 racc[NR * T];
    GL_UNROLL
    for (int i = 0; i < NR * T; ++i) racc[i] = _mm512_setzero_ps();
    rows_segment<D, T, NR, SUB, MODE>(G, rp, fdelta, rg, lane, cg0, cg1, p0, act, act_seg, cache, racc);
    GL_UNROLL
    for (int t = 0; t < T; ++t) {
        float * o = y + t * y_stride - r0;
        int r = 0;
        GL_UNROLL
        for (; r + 4 <= NR; r += 4) {
            __m128 v = reduce4(racc[r * T + t], racc[(r + 1) * T + t], racc[(r + 2) * T + t], racc[(r + 3) * T + t]);
            if (!lane) {
                if (!first_seg) v = _mm_add_ps(v, _mm_loadu_ps(o + row + r));
                _mm_storeu_ps(o + row + r, v);
            } else {
                alignas(16) float f[4];
                _mm_store_ps(f, v);
                GL_UNROLL
                for (int k = 0; k < 4; ++k) store_out(o + lane[r + k].row, f[k], !first_seg);
            }
        }
        GL_UNROLL
        for (; r < NR; ++r) store_out(o + (lane ? lane[r].row : row + r), _mm512_reduce_add_ps(racc[r * T + t]), !first_seg);
    }
}

inline void prefetch_range(const void * begin, size_t bytes) {
    const char * p = (const char *) ((uintptr_t) begin & ~(uintptr_t) 63);
    for (; p < (const char *) begin + bytes; p += 64) _mm_prefetch(p, _MM_HINT_T0);
}

// Whether decode walks D's rows in lanes (below): the types whose codebooks are cheap to set up per row (every one but
// the 2-D b4 and 4-D types, whose 512-byte and 1 KiB lookup tables are set up once per row group).
template <class D> constexpr bool lane_walk() { return !D::BIG || D::NV == 2; }

// Rows [r0, r0 + nr) × tokens [0, T).
// Lane walk: the rows are cut into NR lanes of nr / NR contiguous rows, and each step of the walk takes the next row
// of every lane, so that every lane is one sequential stream through memory (its prefetches, PFL rows ahead, run on
// into its next rows). Measured on the issue-11 host (one thread, vq2_b3 at Llama-2-7B's shapes and decode chunks,
// against a plain 8-stream read of the same bytes): reading NR consecutive rows in step (the block walk, which the
// 2-D b4 and 4-D types keep) streamed 66-79% of the read, 8 lanes 87-107%, 4 lanes (fewer registers spilled)
// 90-110%. The rows left over (fewer than NR) and the block walk's rows: NR rows at a time of one row group where
// they share one, else one by one.
template <class D, int T>
void gemm_tokens(const Geo & G, int64_t r0, int64_t nr, const uint8_t * act, size_t act_stride, float * y, int64_t y_stride) {
    constexpr bool LANES = lane_walk<D>();
    constexpr int NR = T == 1 ? (LANES ? 4 : 8) : T == 2 ? 4 : 2;
    // Steps per segment: the activation setup (192 or 256 bytes per step and token) stays in L1 or L2. The lane
    // walk's segments hold at most LG column groups, whose codebooks each lane keeps set up (with its scales as
    // floats) while it stays in one row group: for one or two tokens, whole rows of up to 12,288 weights in
    // 256-column groups (Llama-2-7B's ffn_down: 11,008), since a lane that reads its rows in several passes (a segment at a
    // time) no longer streams (77% of the read stream there, against 90% and more for 4,096-weight rows).
    constexpr int64_t LG = T <= 2 ? 48 : 16;
    constexpr int64_t SEGP = LANES ? LG * 8 / D::CH : (T <= 2 ? 128 : 64) / D::CH;
    alignas(64) ActOf<D> abuf[T * SEGP];
    // Big codebooks of one row group for the segment's column groups (BIG types have groups of 8 chunks, or one group).
    alignas(64) typename D::Lut cache[D::BIG ? SEGP * D::CH / 8 : 1];
    alignas(64) typename D::Lut lane_lut[LANES ? NR * LG : 1];
    alignas(64) float lane_sc[LANES ? NR * LG : 1];
    const int64_t segg = G.ncg == 1 ? 1 : LANES ? min_i64(LG, SEGP / G.pg) : SEGP / G.pg;
    const int64_t L = LANES ? nr / NR : 0;  // rows per lane
    for (int64_t cs = 0; cs < G.ncg; cs += segg) {
        const int64_t ce = min_i64(G.ncg, cs + segg), p0 = cs * G.pg, np = min_i64(ce * G.pg, G.npair) - p0;
        GL_UNROLL
        for (int t = 0; t < T; ++t) act_setup<D>((const gl_block_q8_0 *) (act + (size_t) t * act_stride), p0, np, G.nch, abuf + t * SEGP);
        // Lane l starts at its row phase_l = l (and wraps to its first row after its last): lanes of 2^k rows of a
        // size dividing 4096 would otherwise read at the same page offset, on the same cache sets.
        LaneRow lr[NR];
        int64_t lnext[NR], lrg[NR];  // lane step at which lane l's row group changes (or it wraps); its row group
        auto enter = [&](int l, int64_t i) {  // lane l at step i enters row lr[l].row: its row group's codebooks
            const int64_t row = lr[l].row, rg = row / G.R;
            lnext[l] = i + min_i64((rg + 1) * G.R - row, r0 + (l + 1) * L - row);
            if (rg == lrg[l]) return;
            lrg[l] = rg;
            for (int64_t cg = cs; cg < ce; ++cg) {
                D::setup(G.cbs + (size_t) (rg * G.ncg + cg) * G.cb_bytes, lane_lut[l * LG + cg - cs]);
                lane_sc[l * LG + cg - cs] = h2f(load_u16(G.scales + 2 * (rg * G.ncg + cg)));
            }
        };
        for (int l = 0; l < (L > 0 ? NR : 0); ++l) {
            lr[l].row = r0 + l * L + (l % L);
            lr[l].lut = lane_lut + l * LG;
            lr[l].sc = lane_sc + l * LG;
            lrg[l] = -1;
            enter(l, 0);
        }
        for (int64_t i = 0; i < L; ++i) {
            for (int l = 0; l < NR; ++l) {
                if (i == lnext[l]) {
                    if (lr[l].row == r0 + (l + 1) * L) lr[l].row = r0 + l * L;  // the wrap
                    enter(l, i);
                }
                // the lane's scales and codebooks two rows before it enters a new row group
                if (i + 2 == lnext[l]) {
                    const int64_t ga = (lr[l].row + 2) / G.R * G.ncg + cs, gb = ga + (ce - cs);
                    if (gb <= G.n_groups) {
                        prefetch_range(G.scales + 2 * ga, (size_t) (gb - ga) * 2);
                        prefetch_range(G.cbs + (size_t) ga * G.cb_bytes, (size_t) (gb - ga) * G.cb_bytes);
                    }
                }
            }
            rows_run<D, T, NR, 1, MODE_LANES>(G, 0, lr, PFL * G.row_bytes, r0, cs, ce, p0, abuf, SEGP, nullptr, cs == 0, y, y_stride);
            for (int l = 0; l < NR; ++l) ++lr[l].row;
        }
        int64_t cached = -1;
        for (int64_t r = NR * L; r < nr;) {
            const int64_t row = r0 + r;
            const int64_t rg = row / G.R;
            const bool full = !LANES && r + NR <= nr;
            // Rows sharing codebooks: SUB consecutive rows of one row group (the largest power of two <= NR that fits).
            int sub = full ? NR : 1;
            for (; sub > 1; sub /= 2) {
                bool ok = true;
                for (int64_t i = 0; i < NR; i += sub) ok = ok && (row + i) / G.R == (row + i + sub - 1) / G.R;
                if (ok) break;
            }
            const bool block = full && (!D::BIG || sub == NR);
            const int64_t n = block ? NR : 1;
            if (D::BIG && rg != cached) {
                for (int64_t cg = cs; cg < ce; ++cg) D::setup(G.cbs + (size_t) (rg * G.ncg + cg) * G.cb_bytes, cache[cg - cs]);
                cached = rg;
            }
            // The rows PFD blocks ahead (or the next call's first rows, the same thread's next chunk in gl_mul_mat) are
            // prefetched step by step; their scales and (when they change) codebooks now.
            const int64_t fr = row + PFD * NR;
            const int64_t fg0 = fr / G.R, fg1 = (fr + NR - 1) / G.R;
            if (fg1 * G.ncg < G.n_groups && (!D::BIG || fg1 != (fr - NR) / G.R || r == 0)) {
                const int64_t ga = fg0 * G.ncg + cs, gb = fg1 * G.ncg + ce;
                prefetch_range(G.scales + 2 * ga, (size_t) (gb - ga) * 2);
                prefetch_range(G.cbs + (size_t) ga * G.cb_bytes, (size_t) (gb - ga) * G.cb_bytes);
            }
            const size_t fd = (size_t) (fr - row) * G.row_bytes;
            if (D::BIG) {
                if (block) rows_run<D, T, NR, NR, MODE_CACHED>(G, row, nullptr, fd, r0, cs, ce, p0, abuf, SEGP, cache, cs == 0, y, y_stride);
                else rows_run<D, T, 1, 1, MODE_CACHED>(G, row, nullptr, fd, r0, cs, ce, p0, abuf, SEGP, cache, cs == 0, y, y_stride);
            } else if (!block) {
                rows_run<D, T, 1, 1, MODE_OWN>(G, row, nullptr, fd, r0, cs, ce, p0, abuf, SEGP, nullptr, cs == 0, y, y_stride);
            } else {
                switch (sub) {
                    case 1: rows_run<D, T, NR, 1, MODE_OWN>(G, row, nullptr, fd, r0, cs, ce, p0, abuf, SEGP, nullptr, cs == 0, y, y_stride); break;
                    case 2: rows_run<D, T, NR, (NR >= 2 ? 2 : 1), MODE_OWN>(G, row, nullptr, fd, r0, cs, ce, p0, abuf, SEGP, nullptr, cs == 0, y, y_stride); break;
                    case 4: rows_run<D, T, NR, (NR >= 4 ? 4 : 1), MODE_OWN>(G, row, nullptr, fd, r0, cs, ce, p0, abuf, SEGP, nullptr, cs == 0, y, y_stride); break;
                    default: rows_run<D, T, NR, NR, MODE_OWN>(G, row, nullptr, fd, r0, cs, ce, p0, abuf, SEGP, nullptr, cs == 0, y, y_stride); break;
                }
            }
            r += n;
        }
    }
}

// ---- batches: more than 4 tokens ---------------------------------------------------------------------------------
// 16 rows, two per 128-bit lane: every pair of the 16 rows is decoded as above (into natural qword order: D::PI
// pairs output dwords 2m, 2m+1 with natural ones, else one vpermd puts them there) and each group of 8 rows is
// transposed by qwords, X[h][n] lanes 2r', 2r'+1 = qword n of row 8h + r'. A token then costs, per chunk, 8
// vpdpbusd against the chunk's 4 activation qwords broadcast straight from the Q8_0 block (one broadcast serves
// both halves: half the loads of a dword layout, which bounded the token part), a fold of the lane pairs into one
// 16-row vector (two vpermt2d and an add), the -128·sum correction, and one FMA by the block scale. The decode and
// transpose (about 9 operations per row and pair) are shared by all tokens: TKB at a time in registers, the
// transposed pairs of a group kept in a 4 KB buffer.
constexpr int TKB = 6;         // tokens in registers
constexpr int TPASS = 32;      // tokens per pass over the rows (their accumulators and block sums stay in L1)
constexpr int64_t BSEGP = 32;  // pairs per segment of the batch kernel

// Whether D's output qwords are whole natural qwords (output dwords 2m, 2m+1 = natural 2n, 2n+1).
template <class D> constexpr bool natural_qwords() {
    for (int m = 0; m < 8; ++m)
        if (D::PI[2 * m] % 2 != 0 || D::PI[2 * m + 1] != D::PI[2 * m] + 1) return false;
    return true;
}

// 8 rows × 8 qwords: out[n] lanes 2r, 2r+1 (dwords) = in[r] qword n.
inline void transpose8q(const __m512i in[8], __m512i out[8]) {
    __m512i A[4], B[4];  // lane L: rows 2i, 2i+1, qword 2L (A) / 2L+1 (B)
    GL_UNROLL
    for (int i = 0; i < 4; ++i) {
        A[i] = _mm512_unpacklo_epi64(in[2 * i], in[2 * i + 1]);
        B[i] = _mm512_unpackhi_epi64(in[2 * i], in[2 * i + 1]);
    }
    const __m512i a0 = _mm512_shuffle_i64x2(A[0], A[1], 0x88), a1 = _mm512_shuffle_i64x2(A[0], A[1], 0xDD);
    const __m512i a2 = _mm512_shuffle_i64x2(A[2], A[3], 0x88), a3 = _mm512_shuffle_i64x2(A[2], A[3], 0xDD);
    const __m512i b0 = _mm512_shuffle_i64x2(B[0], B[1], 0x88), b1 = _mm512_shuffle_i64x2(B[0], B[1], 0xDD);
    const __m512i b2 = _mm512_shuffle_i64x2(B[2], B[3], 0x88), b3 = _mm512_shuffle_i64x2(B[2], B[3], 0xDD);
    out[0] = _mm512_shuffle_i64x2(a0, a2, 0x88);
    out[4] = _mm512_shuffle_i64x2(a0, a2, 0xDD);
    out[2] = _mm512_shuffle_i64x2(a1, a3, 0x88);
    out[6] = _mm512_shuffle_i64x2(a1, a3, 0xDD);
    out[1] = _mm512_shuffle_i64x2(b0, b2, 0x88);
    out[5] = _mm512_shuffle_i64x2(b0, b2, 0xDD);
    out[3] = _mm512_shuffle_i64x2(b1, b3, 0x88);
    out[7] = _mm512_shuffle_i64x2(b1, b3, 0xDD);
}

// 16 decoded rows (D's order) -> XB[h * 8 + n] = qword n (natural) of rows 8h .. 8h+7.
template <class D> inline void transpose_pair(__m512i W[16], __m512i * XB) {
    if (!natural_qwords<D>()) {
        alignas(64) uint32_t inv[16];
        for (int k = 0; k < 16; ++k) inv[D::PI[k]] = (uint32_t) k;
        const __m512i to_nat = _mm512_load_si512((const void *) inv);
        GL_UNROLL
        for (int r = 0; r < 16; ++r) W[r] = _mm512_permutexvar_epi32(to_nat, W[r]);
    }
    GL_UNROLL
    for (int h = 0; h < 2; ++h) {
        __m512i T[8];
        transpose8q(W + 8 * h, T);
        GL_UNROLL
        for (int m = 0; m < 8; ++m) XB[8 * h + (natural_qwords<D>() ? D::PI[2 * m] / 2 : m)] = T[m];
    }
}

// One transposed pair (XB) × TK tokens: the pair's first Q8_0 block of token t at a[t] (its second right after, or
// absent when HALF), the blocks' corrections and scales at nc[t][0..1], dy[t][0..1].
template <int TK, bool HALF>
inline void batch_pair(const __m512i * XB, const gl_block_q8_0 * const a[TK], const int32_t * const nc[TK], const float * const dy[TK],
                       __m512 f[TK]) {
    const __m512i ev = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i od = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    GL_UNROLL
    for (int c = 0; c < (HALF ? 1 : 2); ++c) {
        __m512i X[2][4];
        GL_UNROLL
        for (int h = 0; h < 2; ++h) {
            GL_UNROLL
            for (int n = 0; n < 4; ++n) X[h][n] = _mm512_load_si512((const void *) (XB + 8 * h + 4 * c + n));
        }
        GL_UNROLL
        for (int t = 0; t < TK; ++t) {
            __m512i acc[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
            GL_UNROLL
            for (int n = 0; n < 4; ++n) {
                const __m512i av = _mm512_set1_epi64(load_i64(a[t][c].qs + 8 * n));
                acc[0] = _mm512_dpbusd_epi32(acc[0], X[0][n], av);
                acc[1] = _mm512_dpbusd_epi32(acc[1], X[1][n], av);
            }
            __m512i z = _mm512_add_epi32(_mm512_permutex2var_epi32(acc[0], ev, acc[1]), _mm512_permutex2var_epi32(acc[0], od, acc[1]));
            z = _mm512_add_epi32(z, _mm512_set1_epi32(nc[t][c]));
            f[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(z), _mm512_set1_ps(dy[t][c]), f[t]);
        }
    }
}

// Tokens [t0, t0 + n) (n <= TK; the block is padded with token t0) × the group's np pairs in XB (16 zmm each).
template <int TK>
inline void batch_tokens(const __m512i * XB, int64_t np, int64_t pair0, int64_t nch, int64_t t0, int n, const uint8_t * act, size_t act_stride,
                         const int32_t * ncs, const float * dys, int64_t c0, __m512 S, __m512 * racc) {
    __m512 f[TK];
    GL_UNROLL
    for (int t = 0; t < TK; ++t) f[t] = _mm512_setzero_ps();
    for (int64_t q = 0; q < np; ++q) {
        const int64_t c = 2 * (pair0 + q);  // the pair's first chunk
        const gl_block_q8_0 * a[TK];
        const int32_t * nc[TK];
        const float * dy[TK];
        GL_UNROLL
        for (int t = 0; t < TK; ++t) {
            const int64_t tt = t0 + (t < n ? t : 0);
            a[t] = (const gl_block_q8_0 *) (act + (size_t) tt * act_stride) + c;
            nc[t] = ncs + tt * 2 * BSEGP + (c - c0);
            dy[t] = dys + tt * 2 * BSEGP + (c - c0);
        }
        if (c + 1 < nch) batch_pair<TK, false>(XB + 16 * q, a, nc, dy, f);
        else batch_pair<TK, true>(XB + 16 * q, a, nc, dy, f);
    }
    GL_UNROLL
    for (int t = 0; t < TK; ++t) {
        if (t < n) racc[t0 + t] = _mm512_fmadd_ps(f[t], S, racc[t0 + t]);
    }
}

// Rows [row, row + nrr) (nrr <= 16; missing rows repeat the last) × tokens [0, nt) (nt <= TPASS) over the column
// groups [cg0, cg1) of the segment starting at pair p0 (chunk c0 = 2 p0; block sums of token t at ncs/dys + 2 BSEGP t).
template <class D>
void batch_tile(const Geo & G, int64_t row, int nrr, int64_t r0, int64_t cg0, int64_t cg1, int64_t p0, int nt, const uint8_t * act,
                size_t act_stride, const int32_t * ncs, const float * dys, bool first_seg, float * y, int64_t y_stride) {
    const uint8_t * rp[16];
    int du[16];              // row -> index of its row group among the tile's distinct ones
    int64_t ug[16];          // the distinct row groups
    int nu = 0;
    for (int r = 0; r < 16; ++r) {
        const int64_t rr = row + (r < nrr ? r : nrr - 1);
        rp[r] = G.data + (size_t) rr * G.row_bytes;
        const int64_t rg = rr / G.R;
        if (nu == 0 || ug[nu - 1] != rg) ug[nu++] = rg;
        du[r] = nu - 1;
    }
    alignas(64) __m512 racc[TPASS];
    for (int t = 0; t < nt; ++t) racc[t] = _mm512_setzero_ps();
    alignas(64) __m512i XB[4 * 16];
    typename D::Lut lut[16];
    for (int64_t cg = cg0; cg < cg1; ++cg) {
        const int64_t pa = cg * G.pg, np = min_i64((cg + 1) * G.pg, G.npair) - pa;  // np <= 4
        alignas(64) float su[16], sr[16];
        for (int i = 0; i < nu; ++i) {
            const int64_t grp = ug[i] * G.ncg + cg;
            D::setup(G.cbs + (size_t) grp * G.cb_bytes, lut[i]);
            su[i] = h2f(load_u16(G.scales + 2 * grp));
        }
        for (int r = 0; r < 16; ++r) sr[r] = su[du[r]];
        const __m512 S = _mm512_load_ps(sr);
        for (int64_t q = 0; q < np; ++q) {
            __m512i W[16];
            GL_UNROLL
            for (int r = 0; r < 16; ++r) W[r] = D::decode(rp[r] + (size_t) (pa + q) * 2 * D::BYTES, lut[du[r]]);
            transpose_pair<D>(W, XB + 16 * q);
        }
        for (int t = 0; t < nt; t += TKB) batch_tokens<TKB>(XB, np, pa, G.nch, t, (int) min_i64(TKB, nt - t), act, act_stride, ncs, dys, 2 * p0, S, racc);
    }
    const __mmask16 m = (__mmask16) ((1u << nrr) - 1);
    for (int t = 0; t < nt; ++t) {
        float * o = y + t * y_stride + (row - r0);
        __m512 v = racc[t];
        if (!first_seg) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, o));
        _mm512_mask_storeu_ps(o, m, v);
    }
}

// Rows [r0, r0 + nr) × tokens [0, nt), nt > 4.
template <class D>
void gemm_batch(const Geo & G, int64_t r0, int64_t nr, int64_t nt, const uint8_t * act, size_t act_stride, float * y, int64_t y_stride) {
    alignas(64) int32_t ncs[TPASS * 2 * BSEGP];
    alignas(64) float dys[TPASS * 2 * BSEGP];
    const int64_t segg = G.ncg == 1 ? 1 : BSEGP / G.pg;
    for (int64_t t0 = 0; t0 < nt; t0 += TPASS) {
        const int n = (int) min_i64(TPASS, nt - t0);
        const uint8_t * a = act + (size_t) t0 * act_stride;
        for (int64_t cs = 0; cs < G.ncg; cs += segg) {
            const int64_t ce = min_i64(G.ncg, cs + segg), p0 = cs * G.pg, c0 = 2 * p0, c1 = min_i64(2 * ce * G.pg, G.nch);
            for (int t = 0; t < n; ++t)
                act_sums((const gl_block_q8_0 *) (a + (size_t) t * act_stride) + c0, c1 - c0, 7, ncs + t * 2 * BSEGP, dys + t * 2 * BSEGP);
            for (int64_t r = 0; r < nr; r += 16)
                batch_tile<D>(G, r0 + r, (int) min_i64(16, nr - r), r0, cs, ce, p0, n, a, act_stride, ncs, dys, cs == 0, y + t0 * y_stride, y_stride);
        }
    }
}

// The product's geometry in D's steps (D::CH chunks each).
template <class D> Geo make_geo(const gl_vq_geom & g, const void * data) {
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
    G.npair = (G.nch + D::CH - 1) / D::CH;
    const int64_t chunks_per_group = (g.C + 31) / 32;
    G.pg = (chunks_per_group + D::CH - 1) / D::CH;  // a partial step only when one group spans the row
    return G;
}

// Whether D's steps tile every column group (or one group spans the row, its last step partial).
template <class D> bool steps_fit(const gl_vq_geom & g) { return g.n_col_groups == 1 || ((g.C + 31) / 32) % D::CH == 0; }

// 1-4 tokens through gemm_tokens.
template <class D>
void tokens(const Geo & G, int64_t r0, int64_t nr, int64_t nt, const uint8_t * a, size_t act_stride, float * y, int64_t y_stride) {
    switch (nt) {
        case 1: gemm_tokens<D, 1>(G, r0, nr, a, act_stride, y, y_stride); return;
        case 2: gemm_tokens<D, 2>(G, r0, nr, a, act_stride, y, y_stride); return;
        case 3: gemm_tokens<D, 3>(G, r0, nr, a, act_stride, y, y_stride); return;
        default: gemm_tokens<D, 4>(G, r0, nr, a, act_stride, y, y_stride); return;
    }
}

// 1-4 tokens: gemm_tokens with D where its steps fit the groups, else with DB; batches: gemm_batch with DB.
template <class D, class DB = D>
void vq_gemm(const gl_vq_geom & g, const void * data, int64_t r0, int64_t nr, int64_t nt, const void * act, size_t act_stride, float * y,
             int64_t y_stride) {
    if (nr <= 0 || nt <= 0) return;
    const uint8_t * a = (const uint8_t *) act;
    if (nt <= 4 && steps_fit<D>(g)) tokens<D>(make_geo<D>(g, data), r0, nr, nt, a, act_stride, y, y_stride);
    else if (nt <= 4) tokens<DB>(make_geo<DB>(g, data), r0, nr, nt, a, act_stride, y, y_stride);
    else gemm_batch<DB>(make_geo<DB>(g, data), r0, nr, nt, a, act_stride, y, y_stride);
}

}  // namespace

static constexpr gl_type_entry<gl_vq_gemm_fn> k_entries[] = {
    {GL_TYPE_VQ1_B2_G256, vq_gemm<V1B2>},
    {GL_TYPE_VQ1_B2_G128, vq_gemm<V1B2>},
    {GL_TYPE_VQ1_B3_G512, vq_gemm<V1B3>},
    {GL_TYPE_VQ1_B4_G1024, vq_gemm<V1B4>},
    {GL_TYPE_VQ2_B2_G2048, vq_gemm<V2B2>},
    {GL_TYPE_VQ2_B2_G1024, vq_gemm<V2B2>},
    {GL_TYPE_VQ2_B3_G8192, vq_gemm<V2B3Q, V2B3>},
    {GL_TYPE_VQ2_B4_G32768, vq_gemm<V2B4>},
    {GL_TYPE_VQ4_B2_G65536, vq_gemm<V4B2>},
    {GL_TYPE_VQ4_B2_G32768, vq_gemm<V4B2>},
};
constexpr gl_type_table<gl_vq_gemm_fn> gl_vq_gemm_avx512 = gl_type_table_make(k_entries);
static_assert(!gl_vq_gemm_avx512.dup, "a type is listed twice");
