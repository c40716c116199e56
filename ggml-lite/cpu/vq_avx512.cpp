// Codebook-type (GPTVQ) products at the avx512 level. Built with per-file flags (CMakeLists.txt).
#include "ggml-lite/cpu.h"

const gl_vq_gemm_fn gl_vq_gemm_avx512[GL_TYPE_COUNT] = {};
