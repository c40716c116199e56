#include "quantize/rtn.h"

#include "ggml-lite/rowq.h"

#include "ggml-lite/common.h"

#include <algorithm>

namespace quill {

void rtn_quantize(float * W, int64_t rows, int64_t cols, int bits, int group, IntQuantLayer * out) {
    GL_ASSERT(bits >= 2 && bits <= 8 && group > 0);
    out->rows = rows;
    out->cols = cols;
    out->bits = bits;
    out->group = group;
    const int64_t ng = out->n_groups();
    out->codes.assign((size_t) (rows * cols), 0);
    out->grids.assign((size_t) (rows * ng), gl_intq_params());
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 20))
    for (int64_t r = 0; r < rows; ++r) {
        float * w = W + r * cols;
        for (int64_t g = 0; g < ng; ++g) {
            const int64_t c0 = g * group, c1 = std::min(cols, c0 + group);
            const gl_intq_params p = gl_intq_fit(w + c0, c1 - c0, bits);
            out->grids[(size_t) (r * ng + g)] = p;
            for (int64_t c = c0; c < c1; ++c) {
                const int q = gl_intq_code(w[c], p, bits);
                out->codes[(size_t) (r * cols + c)] = (uint8_t) q;
                w[c] = gl_intq_value(q, p);
            }
        }
    }
}

gl_type intq_layer_type(int bits, int group, int64_t cols, int * group_out) {
    for (int g = group; g >= 32; g /= 2) {
        const gl_type t = gl_intq_type(bits, g);
        if (t != GL_TYPE_COUNT && cols % g == 0) {
            *group_out = g;
            return t;
        }
    }
    *group_out = group;
    return GL_TYPE_F16;
}

gl_type row_layer_type(int bits, bool a8, int64_t cols) {
    if (bits != 3 && bits != 4 && bits != 8) return GL_TYPE_COUNT;
    if (cols % 32 != 0) return GL_TYPE_F16;
    if (bits == 3) return a8 ? GL_TYPE_Q3_ROW_A8 : GL_TYPE_Q3_ROW;
    if (bits == 4) return a8 ? GL_TYPE_Q4_ROW_A8 : GL_TYPE_Q4_ROW;
    return a8 ? GL_TYPE_Q8_ROW_A8 : GL_TYPE_Q8_ROW;
}

std::vector<uint8_t> pack_layer(const IntQuantLayer & q, gl_type type) {
    const size_t row_bytes = gl_row_size(type, q.cols);
    std::vector<uint8_t> out(row_bytes * (size_t) q.rows);
    int bits = 0, group = 0;
    if (gl_intq_info(type, &bits, &group)) {
        GL_ASSERT(bits == q.bits && group == q.group && q.cols % group == 0);
        for (int64_t r = 0; r < q.rows; ++r)
            gl_intq_pack_row(type, q.cols, &q.codes[(size_t) (r * q.cols)], &q.grids[(size_t) (r * q.n_groups())], out.data() + (size_t) r * row_bytes);
        return out;
    }
    const gl_type_traits * tr = gl_get_type_traits(type);
    if (tr->row_header) {
        const int b = (int) (tr->type_size * 8 / tr->block_size);
        GL_ASSERT(b == q.bits && q.group == q.cols && q.cols % tr->block_size == 0);
        for (int64_t r = 0; r < q.rows; ++r)
            gl_row_pack(b, q.cols, &q.codes[(size_t) (r * q.cols)], q.grids[(size_t) r].d16, q.grids[(size_t) r].z, out.data() + (size_t) r * row_bytes);
        return out;
    }
    GL_ASSERT(tr && tr->block_size == 1 && q.cols % tr->block_size == 0);
    std::vector<float> row((size_t) q.cols);
    for (int64_t r = 0; r < q.rows; ++r) {
        for (int64_t c = 0; c < q.cols; ++c) row[(size_t) c] = q.value(r, c);
        tr->from_float(row.data(), out.data() + (size_t) r * row_bytes, q.cols);
    }
    return out;
}

}  // namespace quill
