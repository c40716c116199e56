// Run-time CPU dispatch. The CPU's features are read once (cpuid); each dispatch level has its own kernel table,
// built in its own file with per-file compiler flags (ggml-lite/cpu/avx2.cpp, avx512.cpp). The default build has
// no -march: one binary runs on every x86-64 and uses the best level the CPU has. QUILL_CPU=scalar|avx2|avx512
// forces a lower level (tests and benchmarks); asking for a level the CPU lacks is an error.
//
// A kernel entry left null at a level falls back to the level below, down to the scalar reference.
#pragma once

#include "ggml-lite/types.h"

#include <cstddef>
#include <cstdint>

enum gl_cpu_level {
    GL_CPU_SCALAR = 0,
    GL_CPU_AVX2   = 1,  // AVX2 + FMA + F16C
    GL_CPU_AVX512 = 2,  // AVX-512 F/BW/VL (+ VNNI when present)
    GL_CPU_LEVEL_COUNT
};

struct gl_cpu_features {
    bool avx = false, avx2 = false, fma = false, f16c = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false, avxvnni = false;
    bool avx512vbmi = false, avx512dq = false;
};

// A CPU feature by the name of its compiler flag (-m<name>), and its field in gl_cpu_features.
struct gl_cpu_feature_info {
    const char * name;
    bool gl_cpu_features::*has;
};
// The features a level needs (nullptr-terminated): the probe (gl_cpu_max_level) reads these, and they cover every
// -m flag its kernel files are built with (CMakeLists.txt; tests/test_kernel_harness.cpp checks this).
const gl_cpu_feature_info * gl_cpu_level_features(gl_cpu_level level);

const gl_cpu_features & gl_cpu_get_features();
gl_cpu_level gl_cpu_max_level();     // the best level this CPU supports
gl_cpu_level gl_cpu_level_get();     // the active level
bool         gl_cpu_level_set(gl_cpu_level level);  // false (and no change) when the CPU lacks it
const char * gl_cpu_level_name(gl_cpu_level level);
bool         gl_cpu_level_from_name(const char * name, gl_cpu_level * out);

// Tile of a matrix product: y[t * y_stride + r] = dot(W row r, activation row t) for r < nr, t < nt.
// w: first weight row, rows w_stride bytes apart; act: first activation row (in the type's vec_dot_type),
// rows act_stride bytes apart. n is the row length in elements.
typedef void (*gl_gemm_fn)(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                           float * y, int64_t y_stride);
// y[i] += a * x[i] for a row x of the type (used for the values in attention).
typedef void (*gl_axpy_fn)(int64_t n, float a, const void * x, float * y);

// Product of rows [r0, r0 + nr) of a codebook-type weight (geometry g, the whole tensor at data) with nt activation
// rows (Q8_0, ceil(ne0/32) blocks each, the last one zero-padded): y[t * y_stride + r - r0] for r0 <= r < r0 + nr.
typedef void (*gl_vq_gemm_fn)(const gl_vq_geom & g, const void * data, int64_t r0, int64_t nr, int64_t nt, const void * act,
                              size_t act_stride, float * y, int64_t y_stride);

// Quantizes a row on a given grid (a8_row with a static scale s and zero point z: clamped, not fitted to the row).
typedef void (*gl_from_float_grid_fn)(const float * x, void * y, int64_t n, float s, int32_t z);

// The hot paths of one type at one level. Null means "use the level below".
struct gl_type_kernels {
    gl_vec_dot_fn    vec_dot;       // weight row · activations (in vec_dot_type)
    gl_from_float_fn quantize_act;  // float -> this type, used when this type is an activation format (Q8_0, F16, BF16)
    gl_to_float_fn   to_float;      // widen a row (embedding lookup, KV cache reads)
    gl_gemm_fn       gemm;          // optional tiled product for batches (prompt processing)
    gl_axpy_fn       axpy;          // optional, float-like types only
    gl_gemm_fn       gemm_x16 = nullptr;  // the product over weights in the x16 layout (types.h; traits.x16 types only):
                                    // w is the first row of a 16-row group, nr a multiple of 16, w_stride the row size
    gl_from_float_grid_fn quantize_act_grid = nullptr;  // as quantize_act on a static grid (a8_row only)
};

// Float ops at one level. Null means "use the level below".
struct gl_float_kernels {
    float (*dot_f32)(int64_t n, const float * x, const float * y);
    void  (*rms_norm)(const float * x, const float * weight, int64_t n, float eps, float * y);
    void  (*softmax)(float * x, int64_t n, float scale);
    void  (*swiglu)(const float * gate, const float * up, int64_t n, float * out);
    void  (*geglu)(const float * gate, const float * up, int64_t n, float * out);
    void  (*add)(float * y, const float * x, int64_t n);
    // The two products of batched attention (ops.h gl_attention_batch), n and hd multiples of 16, every sum a chain
    // of fused multiply-adds in index order (so every level gives the reference's bits):
    //   s[i][j] = Σ_d q[i][d]·kt[d][j]  (i < nq, j < n; q rows ldq floats apart, kt hd rows of ldk, s rows of lds)
    //   o[i][d] = Σ_j p[i][j]·v[j][d]   (i < nq, d < hd; p rows of ldp, v n rows of ldv, o rows of ldo)
    void  (*att_qk)(int64_t nq, int64_t hd, int64_t n, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds);
    void  (*att_pv)(int64_t nq, int64_t hd, int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo);
};

// The resolved kernels of the active level (never null: the scalar reference fills every gap; codebook types have
// only gl_vq_gemm, their rows needing the tensor's side section).
const gl_type_kernels & gl_kernels(gl_type t);
gl_vq_gemm_fn gl_vq_gemm(gl_type t);
const gl_float_kernels & gl_float_ops();

// ---- per-level tables -------------------------------------------------------------------------------------------
// Each kernel file lists {type, kernels} pairs for the types it has kernels for; gl_type_table_make places them by
// enum value at compile time (the tables are constant-initialised, so cpu.cpp may read them during static
// initialisation) and flags a type listed twice (static_assert(!table.dup) where the table is defined). Types a
// table does not list are zero, i.e. "use the level below". No table lists every type.
template <typename K> struct gl_type_entry {
    gl_type type;
    K       k;
};
template <typename K> struct gl_type_table {
    K    at[GL_TYPE_COUNT] = {};
    bool dup = false;  // some type was listed twice
};
template <typename K, size_t N> constexpr gl_type_table<K> gl_type_table_make(const gl_type_entry<K> (&entries)[N]) {
    gl_type_table<K> t{};
    bool seen[GL_TYPE_COUNT] = {};
    for (size_t i = 0; i < N; ++i) {
        if (seen[entries[i].type]) t.dup = true;
        seen[entries[i].type] = true;
        t.at[entries[i].type] = entries[i].k;
    }
    return t;
}

extern const gl_type_table<gl_type_kernels> gl_kernels_scalar;  // ggml-lite/types.cpp
extern const gl_type_table<gl_type_kernels> gl_kernels_avx2;    // ggml-lite/cpu/avx2.cpp (+ intq_avx2.cpp's kernels)
extern const gl_type_table<gl_type_kernels> gl_kernels_avx512;  // ggml-lite/cpu/avx512.cpp (+ x16_avx512.cpp's kernels)
// Codebook-type products per level (null: the level below), indexed by gl_type; defined in types.cpp (scalar) and
// ggml-lite/cpu/vq_avx2.cpp, vq_avx512.cpp. The AVX-512 ones need VBMI too: an extension (gl_cpu_exts below).
extern const gl_type_table<gl_vq_gemm_fn> gl_vq_gemm_scalar;
extern const gl_type_table<gl_vq_gemm_fn> gl_vq_gemm_avx2;
extern const gl_type_table<gl_vq_gemm_fn> gl_vq_gemm_avx512;
extern const gl_float_kernels gl_float_scalar;
extern const gl_float_kernels gl_float_avx2;
extern const gl_float_kernels gl_float_avx512;

// ---- kernels gated on a feature beyond their level's ------------------------------------------------------------
// Resolved in cpu.cpp before the level's own table when the CPU has the feature and extensions are enabled
// (gl_cpu_ext_set_enabled; QUILL_CPU_EXT=off at start-up). Nothing else checks CPU features.
struct gl_cpu_ext {
    const char *                          name;     // "avx512bf16"
    gl_cpu_level                          level;    // used at this level and above
    bool gl_cpu_features::*               feature;
    const gl_type_table<gl_type_kernels> * kernels;  // may be null
    const gl_type_table<gl_vq_gemm_fn> *   vq;       // may be null
};
extern const gl_cpu_ext gl_cpu_exts[];
extern const int        gl_cpu_ext_count;
extern const gl_type_table<gl_type_kernels> gl_kernels_avx512_bf16;  // ggml-lite/cpu/avx512.cpp, needs AVX512-BF16
// false: resolve the active level again without any extension (the plain level tables); true: with those the CPU has.
void gl_cpu_ext_set_enabled(bool on);
bool gl_cpu_ext_enabled();

// ---- the quantizers' dense kernels (ops.h: gl_gemm_nt_f32, gl_axpy_f32, ...) ---------------------------------------
// Null means "use the level below". Scalar: ggml-lite/linalg.cpp; AVX2: ggml-lite/cpu/linalg_avx2.cpp (the AVX-512
// level uses the AVX2 ones). Same bodies (ggml-lite/cpu/linalg_impl.h) at every level.
struct gl_linalg_kernels {
    // C (mb × nb, rows ldc apart) = A·Bᵀ over k (+ C when add); A mb × k, B nb × k, rows lda / ldb floats apart.
    void   (*gemm_nt_block)(int64_t mb, int64_t nb, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C,
                           int64_t ldc, bool add);
    void   (*axpy_f32)(int64_t n, float a, const float * x, float * y);
    void   (*axpy_f64)(int64_t n, double a, const double * x, double * y);
    double (*dot_f64)(int64_t n, const double * x, const double * y);
    void   (*syrk_tile_f64)(double * A, int64_t n, int64_t i0, int64_t j0, int64_t k0, int64_t kb);
    // vq_nearest[0, 1, 2]: vectors of 1, 2, 4 floats (ops.h gl_vq_nearest)
    void   (*vq_nearest[3])(int64_t n, const float * X, const float * w, int k, int ib, const float * cA, int32_t * out, float * second);
};
extern const gl_linalg_kernels gl_linalg_scalar;
extern const gl_linalg_kernels gl_linalg_avx2;
extern const gl_linalg_kernels gl_linalg_avx512;  // gemm_nt_block only
const gl_linalg_kernels & gl_linalg_ops();
