// AVX-512 (F, BW, VL, VNNI) kernels. Built with per-file flags (see CMakeLists.txt) and used only when the CPU
// has them (ggml-lite/cpu.cpp). Same rule as avx2.cpp: no inline functions from shared headers, no std:: templates.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

const gl_type_kernels gl_kernels_avx512[GL_TYPE_COUNT] = {};
const gl_float_kernels gl_float_avx512 = {};
