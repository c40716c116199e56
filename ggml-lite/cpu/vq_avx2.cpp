// Codebook-type (GPTVQ) products at the avx2 level. Built with per-file flags (CMakeLists.txt).
#include "ggml-lite/cpu.h"

const gl_vq_gemm_fn gl_vq_gemm_avx2[GL_TYPE_COUNT] = {};
