// AVX2 + FMA + F16C kernels. Built with -mavx2 -mfma -mf16c (this file only; see CMakeLists.txt) and used only
// when the CPU has them (ggml-lite/cpu.cpp). Keep this file free of inline functions from shared headers and of
// std:: templates, so no AVX2 code can leak into the rest of the program through the linker.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

const gl_type_kernels gl_kernels_avx2[GL_TYPE_COUNT] = {};
const gl_float_kernels gl_float_avx2 = {};
