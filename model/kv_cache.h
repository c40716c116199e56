// The KV cache of a context: keys and values of every layer and sequence, n_ctx rows each.
#pragma once

#include "ggml-lite/ops.h"

#include <cstdint>
#include <vector>

namespace quill {

// The KV cache: for each layer and sequence, n_ctx rows of kv_dim elements of kv_type, for keys and for values.
class KvCache {
public:
    // n_layer layers of n_head_kv heads of head_dim values per row.
    void init(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int32_t n_ctx, int32_t n_seq, gl_type type);
    uint8_t * k_row(int64_t layer, int32_t seq, int32_t pos);
    uint8_t * v_row(int64_t layer, int32_t seq, int32_t pos);
    gl_kv_view k_view(int64_t layer, int32_t seq) const;
    gl_kv_view v_view(int64_t layer, int32_t seq) const;
    gl_type type = GL_TYPE_F16;
    int32_t n_ctx = 0, n_seq = 0;
    std::vector<int32_t> len;  // filled positions per sequence
    size_t bytes() const { return k_.size() + v_.size(); }

private:
    int64_t n_layer_ = 0;
    size_t row_bytes_ = 0;
    std::vector<uint8_t> k_, v_;
    size_t offset(int64_t layer, int32_t seq, int32_t pos) const;
};

}  // namespace quill
