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

}  // namespace
