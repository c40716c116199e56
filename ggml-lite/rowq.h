// The per-row types' scalar reference (types.h: a8_row, q4_row, q8_row, q4_row_a8, q8_row_a8), for types.cpp's
// registry and the SIMD files' tests. Internal to ggml-lite.
#pragma once

#include "ggml-lite/types.h"

#include <cstdint>

// Position of code i (0 .. n−1) of a q4 row of n codes: byte offset into the codes, and whether it is the high nibble.
void gl_q4_row_code_pos(int64_t n, int64_t i, int64_t * byte, bool * high);

// The grid of a weight row: d (fp16-rounded, as a float), z, and its header.
gl_row_header gl_row_header_make(uint16_t d16, uint8_t z, int32_t qsum);

// Packs n codes (0 .. 2^bits − 1) of one row with its grid into a q4 (bits 4) or q8 (bits 8) row.
void gl_row_pack(int bits, int64_t n, const uint8_t * codes, uint16_t d16, uint8_t z, void * dst);
// The inverse: the codes (and grid) of a packed row.
void gl_row_unpack(int bits, int64_t n, const void * src, uint8_t * codes, uint16_t * d16, uint8_t * z);

void a8_row_from_float(const float * x, void * y, int64_t n);
void a8_row_to_float(const void * x, float * y, int64_t n);
void a8_row_vec_dot(int64_t n, float * s, const void * x, const void * y);
void q4_row_from_float(const float * x, void * y, int64_t n);
void q4_row_to_float(const void * x, float * y, int64_t n);
void q8_row_from_float(const float * x, void * y, int64_t n);
void q8_row_to_float(const void * x, float * y, int64_t n);
void q4_row_vec_dot_f32(int64_t n, float * s, const void * x, const void * y);
void q8_row_vec_dot_f32(int64_t n, float * s, const void * x, const void * y);
void q4_row_vec_dot_a8(int64_t n, float * s, const void * x, const void * y);
void q8_row_vec_dot_a8(int64_t n, float * s, const void * x, const void * y);
