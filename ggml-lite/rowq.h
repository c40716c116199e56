// The per-row types' scalar reference (types.h: a8_row, q3_row, q4_row, q8_row and their _a8 forms), for types.cpp's
// registry and the SIMD files' tests. Internal to ggml-lite.
#pragma once

#include "ggml-lite/types.h"

#include <cstdint>

// The grid of a weight row: d (fp16-rounded, as a float), z, and its header.
gl_row_header gl_row_header_make(uint16_t d16, uint8_t z, int32_t qsum);

// Packs n codes (0 .. 2^bits − 1) of one row with its grid into a q3, q4 or q8 row (bits 3, 4, 8).
void gl_row_pack(int bits, int64_t n, const uint8_t * codes, uint16_t d16, uint8_t z, void * dst);
// The inverse: the codes (and grid) of a packed row.
void gl_row_unpack(int bits, int64_t n, const void * src, uint8_t * codes, uint16_t * d16, uint8_t * z);

void a8_row_from_float(const float * x, void * y, int64_t n);
// On a static grid (s > 0, z in −128 .. 127): codes clamped to it.
void a8_row_from_float_grid(const float * x, void * y, int64_t n, float s, int32_t z);
void a8_row_to_float(const void * x, float * y, int64_t n);
void a8_row_vec_dot(int64_t n, float * s, const void * x, const void * y);
void q3_row_from_float(const float * x, void * y, int64_t n);
void q3_row_to_float(const void * x, float * y, int64_t n);
void q3_row_vec_dot_f32(int64_t n, float * s, const void * x, const void * y);
void q3_row_vec_dot_a8(int64_t n, float * s, const void * x, const void * y);
void q4_row_from_float(const float * x, void * y, int64_t n);
void q4_row_to_float(const void * x, float * y, int64_t n);
void q8_row_from_float(const float * x, void * y, int64_t n);
void q8_row_to_float(const void * x, float * y, int64_t n);
void q4_row_vec_dot_f32(int64_t n, float * s, const void * x, const void * y);
void q8_row_vec_dot_f32(int64_t n, float * s, const void * x, const void * y);
void q4_row_vec_dot_a8(int64_t n, float * s, const void * x, const void * y);
void q8_row_vec_dot_a8(int64_t n, float * s, const void * x, const void * y);
