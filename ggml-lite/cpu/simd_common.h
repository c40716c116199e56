// Scalar helpers shared by the SIMD kernel files (avx512.cpp, vq_avx2.cpp, vq_avx512.cpp). Everything here is in an
// anonymous namespace: each kernel file gets its own copy compiled with its own -m flags, so the linker can never
// merge an AVX-512 build of a helper into the AVX2 file (the hazard of ordinary inline functions across targets).
// Include only from ggml-lite/cpu/*.cpp, after <immintrin.h>; the file needs F16C.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

// Full unrolling of the small fixed-count loops over registers (GCC does not always do it at -O2).
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

}  // namespace
