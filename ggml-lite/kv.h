// KV-cache types: one registry entry per type a KV cache may hold, and per dispatch level the kernels that write a
// row and that attention reads the rows with.
//
// A KV type is named by the gl_type of its storage (a cache row of n values is gl_row_size(type, n) bytes in that
// type's block layout, ggml's bit for bit for Q8_0/Q4_0), so gl_kv_view keeps its gl_type field. Not every gl_type
// is a KV type: gl_kv_get returns null for those that are not (the weight-only integer and codebook types).
//
// What attention does with each type (gl_attention in ops.cpp, written once for all types):
//   q·k  q (one head, floats) is converted to the key type's query format q_type (f16 keys: q rounded to f16;
//        q8_0/q4_0 keys: q quantized to Q8_0 per 32 values), then kernels.qk scores every stored row.
//   p·v  kernels.pv accumulates out += Σ_j p_j · v_j. The probabilities are first rounded through p_type (f16/bf16
//        values: p rounded to f16/bf16, as ggml's mul_mat does); for q8_0/q4_0 values p stays float and each row is
//        dequantized to float and accumulated, as llama.cpp's CPU flash-attention path does.
//
// Quantized types keep blocks inside a head: head_dim must be a multiple of head_multiple (32 for q8_0/q4_0), so
// each head of a row is whole blocks and heads start at block boundaries.
//
// Kernels: the scalar reference is in ggml-lite/kv.cpp, the AVX2 and AVX-512 ones in ggml-lite/cpu/kv_avx2.cpp and
// kv_avx512.cpp. A level lists only the types it speeds up; a null kernel falls back to the level below (resolved
// like the weight kernels in ggml-lite/cpu.cpp). Float types read through the active level's weight kernels
// (vec_dot, axpy), so they need no entries of their own.
//
// Prompt batches whose keys are a float type take gl_attention_batch (ops.h) instead: it widens each head's rows with
// the types' to_float and runs two float products (gl_float_kernels att_qk, att_pv), with the same q_type and p_type
// roundings, so a value type needs nothing more for it.
//
// Adding a KV type: a registry entry in kv.cpp (with its scalar kernels), optional SIMD entries in kv_avx2.cpp /
// kv_avx512.cpp, and a case in tests/test_kv_types.cpp; the CLI's --kv-type choices and help come from the registry.
#pragma once

#include "ggml-lite/types.h"

#include <cstddef>
#include <cstdint>
#include <string>

// s[j] = dot(q, k_j) for j < n_kv: q is one head of head_dim values in the key type's q_type; row j of the head is at
// k + j * stride.
typedef void (*gl_kv_qk_fn)(int64_t head_dim, int64_t n_kv, const void * q, const void * k, size_t stride, float * s);
// out[d] += Σ_j p[j] · v_j[d] for d < head_dim, j < n_kv; row j of the head at v + j * stride. p is rounded through
// the type's p_type first (see above); p itself is not changed.
typedef void (*gl_kv_pv_fn)(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out);

struct gl_kv_kernels {
    gl_from_float_fn write;  // n floats (whole heads) -> a stored row; bit-identical at every level
    gl_kv_qk_fn      qk;
    gl_kv_pv_fn      pv;
};

struct gl_kv_type_traits {
    const char * name;           // as on the command line ("q8_0"), the same as gl_type_name(type)
    gl_type      type;           // storage type of a row
    int64_t      head_multiple;  // head_dim must be a multiple of this (1 for float types, the block for quantized)
    gl_type      q_type;         // format q takes for q·k (the key type's vec_dot_type, as ggml)
    gl_type      p_type;         // format p is rounded through before p·v (F32: not rounded)
    gl_kv_kernels scalar;        // the reference kernels
};

// The registry, in a fixed order (f32, f16, bf16, q8_0, q4_0).
int                       gl_kv_type_count();
const gl_kv_type_traits * gl_kv_type_at(int i);
// The entry of a type, or null when t is not a KV type.
const gl_kv_type_traits * gl_kv_get(gl_type t);
// KV type from its name (case-insensitive); false when no KV type has it.
bool gl_kv_type_from_name(const char * name, gl_type * out);
// The registry's names joined by sep ("f32, f16, bf16, q8_0, q4_0" for sep ", "), for help texts and errors.
std::string gl_kv_type_names(const char * sep = ", ");

// Bytes of one stored row of n values (n_head_kv * head_dim).
size_t gl_kv_row_size(gl_type t, int64_t n);
// Whether a cache of type t can hold heads of head_dim values. On false, writes a one-line reason to why (when not
// null, at most why_size bytes).
bool gl_kv_supports(gl_type t, int64_t head_dim, char * why, size_t why_size);

// The kernels of a KV type at the active dispatch level (each entry never null). t must be a KV type.
const gl_kv_kernels & gl_kv_kernels_get(gl_type t);
// Writes one row of n values (whole heads) of type t at dst: gl_kv_kernels_get(t).write.
void gl_kv_write(gl_type t, const float * x, void * dst, int64_t n);

// Per-level SIMD entries, each defined in its own file (ggml-lite/cpu/kv_avx2.cpp, kv_avx512.cpp): only the types
// a level speeds up, in any order; null kernels fall back to the level below.
struct gl_kv_level_entry {
    gl_type       type;
    gl_kv_kernels kernels;
};
extern const gl_kv_level_entry gl_kv_avx2[];
extern const size_t            gl_kv_avx2_count;
extern const gl_kv_level_entry gl_kv_avx512[];
extern const size_t            gl_kv_avx512_count;
