// Scalar pieces of the per-row types (ggml-lite/types.h) that the reference (rowq.cpp) and the SIMD files
// (cpu/rowq_avx2.cpp, cpu/rowq_avx512.cpp) share: the a8_row grid and code, its header, and the integer identity of
// the A8 dot product. As simd_common.h: an anonymous namespace, so each file gets its own copy built with its own -m
// flags; the SIMD files stay bit-identical to the reference because they run these same operations.
#pragma once

#include "ggml-lite/types.h"

#include <cmath>
#include <cstdint>
#include <cstring>

namespace {

// The a8_row grid of a row whose range (forced to include 0) is [mn, mx]: s = (mx − mn)/255, zero point zp in
// [0, 255]. `zero`: nothing to represent (all zero, or a range that is not finite): code 0 on a zero grid.
struct A8Grid {
    float s = 0.0f, inv = 0.0f, zp = 0.0f;
    bool  zero = true;
};
inline A8Grid a8_grid(float mn, float mx) {
    A8Grid g;
    g.s = (mx - mn) / 255.0f;
    if (!(g.s > 0.0f) || !(g.s <= 3.4028235e38f)) return A8Grid();
    g.zero = false;
    g.inv = 1.0f / g.s;
    g.zp = fmaxf(fminf(nearbyintf(-mn * g.inv), 255.0f), 0.0f);
    return g;
}

// A static grid (a tensor's calibrated scale s > 0 and zero point z in −128 .. 127, types.h): the same operations.
inline A8Grid a8_grid_static(float s, int32_t z) {
    A8Grid g;
    g.s = s;
    g.zero = false;
    g.inv = 1.0f / s;
    g.zp = (float) (z + 128);
    return g;
}

// c = clamp(round(x/s) + zp, 0, 255) − 128, ties to even (a NaN x gives 255 − 128, as fmaxf(fminf(NaN, 255), 0)).
inline int8_t a8_code(float x, const A8Grid & g) {
    const float q = fmaxf(fminf(nearbyintf(x * g.inv) + g.zp, 255.0f), 0.0f);
    return (int8_t) ((int) q - 128);
}

// The row's header; for a zero grid also its n codes (all code 0).
inline void a8_finish_row(void * row, int64_t n, const A8Grid & g, int32_t csum) {
    gl_row_header_a8 h;
    memset(&h, 0, sizeof h);
    if (g.zero) {
        memset((uint8_t *) row + GL_ROW_HEADER_A, 0x80, (size_t) n);
        h.z = -128;
        h.csum = (int32_t) (-128 * n);
    } else {
        h.s = g.s;
        h.z = (int32_t) g.zp - 128;
        h.csum = csum;
    }
    memcpy(row, &h, sizeof h);
}

// dot − z2·s1 − z1·s2 + n·z1·z2 in 64-bit two's complement (exact for real rows; the header fields come from files,
// where any int32 must not overflow a signed product, and the AVX-512 lanes wrap the same way).
inline int64_t a8_total(int64_t dot, int64_t n, int64_t z1, int64_t s1, int64_t z2, int64_t s2) {
    const uint64_t t = (uint64_t) dot - (uint64_t) z2 * (uint64_t) s1 - (uint64_t) z1 * (uint64_t) s2 + (uint64_t) n * (uint64_t) z1 * (uint64_t) z2;
    return (int64_t) t;
}

// A weight row (header at w) · an a8_row (header at a) whose integer sum Σ code·c is `dot`: the identity of types.h,
// exact in int64, then d·s·total in float.
inline float row_dot_a8(int64_t n, const void * w, const void * a, int64_t dot) {
    gl_row_header wh;
    gl_row_header_a8 ah;
    memcpy(&wh, w, sizeof wh);
    memcpy(&ah, a, sizeof ah);
    const int64_t total = a8_total(dot, n, wh.z, wh.qsum, ah.z, ah.csum);
    return gl_fp16_to_fp32(wh.d) * ah.s * (float) total;
}

// Decoding a q3 chunk (types.h) with SIMD: of the chunk's m = 128, 64 or 32 codes (index mi = 0, 1, 2), code i takes
// its low two bits from byte i % P of the low part shifted right by 2·(i / P) (P = m/4) and its third bit from bit
// i / Q of byte i % Q of the high part (Q = m/8). With either part broadcast at its period, these are per-lane shift
// counts (per 16-bit word, per dword: P >= 8, so a dword's four codes share one) and per-byte bit selectors
// (zero past m).
struct Q3Consts {
    uint16_t shift16[3][64];
    uint32_t shift32[3][32];
    uint8_t  sel[3][128];
};
constexpr Q3Consts q3_consts() {
    Q3Consts k{};
    for (int mi = 0; mi < 3; ++mi) {
        const int m = 128 >> mi, P = m / 4, Q = m / 8;
        for (int i = 0; i < 128; ++i) {
            const int sh = i < m ? 2 * (i / P) : 0;
            if (i % 2 == 0) k.shift16[mi][i / 2] = (uint16_t) sh;
            if (i % 4 == 0) k.shift32[mi][i / 4] = (uint32_t) sh;
            k.sel[mi][i] = (uint8_t) (i < m ? 1 << (i / Q) : 0);
        }
    }
    return k;
}
alignas(64) constexpr Q3Consts k_q3 = q3_consts();
inline int q3_chunk_index(int m) { return m == 128 ? 0 : m == 64 ? 1 : 2; }

}  // namespace
