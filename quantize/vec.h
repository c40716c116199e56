// Small vector helpers shared by the quantizers (quantize/gptq.cpp, gptvq.cpp): GCC vector types, unaligned
// loads/stores, and a dispatch macro that compiles one always_inline body for AVX2+FMA and for baseline x86-64 and
// picks one per call from the active CPU level (ggml-lite/cpu.h). Internal to quantize/; include only from .cpp files.
#pragma once

#include "ggml-lite/cpu.h"

#include <cstdint>
#include <cstring>

// NAME(params) calls NAME_avx2 or NAME_base, both NAME_impl(args) compiled for their target.
#define QUILL_VEC_DISPATCH(ret, name, params, args)                                                              \
    __attribute__((target("avx2,fma"))) static ret name##_avx2 params { return name##_impl args; }              \
    static ret name##_base params { return name##_impl args; }                                                    \
    static ret name params { return gl_cpu_level_get() >= GL_CPU_AVX2 ? name##_avx2 args : name##_base args; }

// The vectors never cross a function boundary (every helper is always_inline), so the ABI note does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float   v8f __attribute__((vector_size(32)));
typedef double  v4d __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));

template <typename V, typename T> __attribute__((always_inline)) static inline V loadv(const T * p) {
    V v;
    memcpy(&v, p, sizeof v);
    return v;
}
template <typename V, typename T> __attribute__((always_inline)) static inline void storev(T * p, V v) { memcpy(p, &v, sizeof v); }

// y[i] += a·x[i]
__attribute__((always_inline)) static inline void axpy_f32_impl(int64_t n, float a, const float * x, float * y) {
    int64_t i = 0;
    const v8f av = {a, a, a, a, a, a, a, a};
    for (; i + 8 <= n; i += 8) storev(y + i, loadv<v8f>(y + i) + av * loadv<v8f>(x + i));
    for (; i < n; ++i) y[i] += a * x[i];
}
