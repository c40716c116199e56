// The quantizers' dense kernels at the AVX2 level: ggml-lite/cpu/linalg_impl.h built with -mavx2 -mfma -mf16c
// (CMakeLists.txt). The AVX-512 level has its own gemm_nt_block (linalg_avx512.cpp) and falls back to this table for the rest.
#include "ggml-lite/cpu.h"
#include "ggml-lite/cpu/linalg_impl.h"

GL_LINALG_TABLE(gl_linalg_avx2)
