// Uniform asymmetric integer quantization of a linear layer onto GPTQ's per-group min/max grid, in the form both
// GPTQ and plain round-to-nearest (RTN) produce: one code per weight and one grid (fp16 scale, integer zero) per
// (row, group of columns), then packed into an intq type (ggml-lite/types.h: q<b>_g<g>).
#pragma once

#include "ggml-lite/types.h"

#include <cstdint>
#include <vector>

namespace quill {

// A quantized layer of rows × cols weights (row-major, a row = one output feature's cols input weights).
// Groups are `group` consecutive columns; the last one is partial when cols is not a multiple (only possible when
// the result is stored as float, see pack_layer).
struct IntQuantLayer {
    int64_t rows = 0, cols = 0;
    int     bits = 0, group = 0;
    std::vector<uint8_t>        codes;  // rows × cols, 0 .. 2^bits − 1
    std::vector<gl_intq_params> grids;  // rows × n_groups()
    int64_t n_groups() const { return (cols + group - 1) / group; }
    const gl_intq_params & grid(int64_t r, int64_t c) const { return grids[(size_t) (r * n_groups() + c / group)]; }
    float value(int64_t r, int64_t c) const { return gl_intq_value(codes[(size_t) (r * cols + c)], grid(r, c)); }
};

// Plain rounding: fits each group's grid on W and rounds every weight to it. W (rows × cols) is overwritten with
// the quantized values (exactly what the packed type decodes to).
void rtn_quantize(float * W, int64_t rows, int64_t cols, int bits, int group, IntQuantLayer * out);

// The stored type for a layer of `cols` columns asked to take b bits in groups of g: q<b>_g<g'> with g' the
// largest supported group <= g that divides cols (a 64-wide row asked for g128 takes g64: one group per row, as
// GPTQ does when g exceeds the row), or GL_TYPE_F16 when no intq type fits (cols not a multiple of 32).
// *group_out is the group the quantizer must use: g' for an intq type, g (the last group partial) for f16.
gl_type intq_layer_type(int bits, int group, int64_t cols, int * group_out);

// The per-row ("per-channel") type of b bits (3, 4 or 8) for a layer of `cols` columns: q<b>_row (float activations) or
// q<b>_row_a8 (int8 per-token activations, a8), or GL_TYPE_F16 when cols is not a multiple of 32. The layer is then
// quantized with one group per row (group = cols). GL_TYPE_COUNT for bits without a per-row type.
gl_type row_layer_type(int bits, bool a8, int64_t cols);

// Serialises a quantized layer as `type`: an intq type with the layer's bits and group packs the codes and grids
// exactly, a per-row type a layer of one group per row; GL_TYPE_F16/F32 store the quantized values (fallback for rows
// no such type can hold).
std::vector<uint8_t> pack_layer(const IntQuantLayer & q, gl_type type);

}  // namespace quill
