// ggml-lite tensor types: one traits entry per type, indexed by gl_type.
//
// The enum values are stored in quill files, so they are append-only. Nothing outside ggml-lite/types.cpp lists
// the types: readers, ops and tools go through gl_type_traits. Adding a type means adding an enum value, its
// traits entry and its kernel files.
//
// Tensor shape convention (as ggml): ne[0] is the number of elements in a row (contiguous), ne[1] the number of
// rows, ne[2], ne[3] outer dimensions. A weight matrix of a linear layer y = W x with in_features K and
// out_features N has ne = {K, N}.
#pragma once

#include <cstddef>
#include <cstdint>

enum gl_type : uint32_t {
    GL_TYPE_F32  = 0,
    GL_TYPE_F16  = 1,
    GL_TYPE_BF16 = 2,
    GL_TYPE_Q8_0 = 3,  // ggml's Q8_0 block layout, bit for bit
    GL_TYPE_Q4_0 = 4,  // ggml's Q4_0 block layout, bit for bit
    GL_TYPE_COUNT
};

#define GL_QK8_0 32
#define GL_QK4_0 32

// Q8_0: 32 weights, one fp16 scale.      value[j] = qs[j] * d
//   byte 0..1  d (IEEE fp16, little-endian)
//   byte 2..33 qs[0..31] (int8)
struct gl_block_q8_0 {
    uint16_t d;
    int8_t   qs[GL_QK8_0];
};
static_assert(sizeof(gl_block_q8_0) == 34, "Q8_0 block must be 34 bytes");

// Q4_0: 32 weights, one fp16 scale, 4-bit unsigned codes with an implicit offset of 8.
//   byte 0..1  d (IEEE fp16)
//   byte 2+j   low nibble: code of weight j, high nibble: code of weight j+16   (j = 0..15)
//   value = (code - 8) * d
struct gl_block_q4_0 {
    uint16_t d;
    uint8_t  qs[GL_QK4_0 / 2];
};
static_assert(sizeof(gl_block_q4_0) == 18, "Q4_0 block must be 18 bytes");

typedef void (*gl_to_float_fn)(const void * x, float * y, int64_t n);
typedef void (*gl_from_float_fn)(const float * x, void * y, int64_t n);
// s = dot(x, y) over n elements; x is a row of the weight type, y the activations in the type's vec_dot_type.
typedef void (*gl_vec_dot_fn)(int64_t n, float * s, const void * x, const void * y);

struct gl_type_traits {
    const char *     name;          // lower-case, as used on the command line ("q4_0")
    int64_t          block_size;    // elements per block (1 for plain float types)
    size_t           type_size;     // bytes per block
    bool             is_quantized;
    gl_type          vec_dot_type;  // activation format the dot product takes: F32, F16, BF16 or Q8_0
    gl_to_float_fn   to_float;      // dequantize / widen
    gl_from_float_fn from_float;    // reference quantizer (round to nearest), bit-exact with ggml for Q8_0/Q4_0
    gl_vec_dot_fn    vec_dot;       // scalar reference dot product
};

const gl_type_traits * gl_get_type_traits(gl_type t);
bool        gl_type_valid(uint32_t t);
const char * gl_type_name(gl_type t);
// Type from its name ("f32", "Q4_0", ...); returns false when unknown.
bool        gl_type_from_name(const char * name, gl_type * out);

// Bytes of one row of n elements. n must be a multiple of the block size (checked by gl_row_size_checked).
size_t gl_row_size(gl_type t, int64_t n);
// Exact storage size of a tensor; returns false when the shape is invalid for the type (row not a whole number
// of blocks, negative or zero dims) or the size overflows. Readers use it to validate files.
bool   gl_nbytes_checked(gl_type t, const int64_t * ne, int n_dims, size_t * out);

// Scalar conversions (round to nearest even, like F16C / ggml).
float    gl_fp16_to_fp32_ref(uint16_t h);  // bit manipulation; builds gl_fp16_table
extern float gl_fp16_table[1 << 16];
inline float gl_fp16_to_fp32(uint16_t h) { return gl_fp16_table[h]; }
uint16_t gl_fp32_to_fp16(float f);
float    gl_bf16_to_fp32(uint16_t h);
uint16_t gl_fp32_to_bf16(float f);
