// The KV cache of a context: keys and values of every layer and sequence, n_ctx rows each.
#pragma once

#include "ggml-lite/backend.h"
#include "ggml-lite/kv.h"
#include "ggml-lite/ops.h"

#include <cstdint>
#include <vector>

namespace quill {

// The KV cache: for each layer and sequence, n_ctx rows of kv_dim = n_head_kv * head_dim values of a KV type
// (ggml-lite/kv.h: f32, f16, bf16, q8_0, q4_0), for keys and for values. Quantized types keep their blocks inside a
// head (head_dim a multiple of 32).
class KvCache {
public:
    // n_layer layers of n_head_kv heads of head_dim values per row. Throws quill::Error (one line) when t is not a KV
    // type or cannot hold heads of head_dim values (q8_0/q4_0 need a multiple of 32).
    void init(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int32_t n_ctx, int32_t n_seq, gl_type type);
    // Stores the key and value rows (kv_dim floats each, after RoPE for k) of position pos of sequence seq in layer
    // `layer`, converted to the cache type (quantized types: per-head blocks, ggml's layouts bit for bit). This is
    // the only way rows should be written. Allocates nothing. Bounds are checked (GL_ASSERT).
    void write(int64_t layer, int32_t seq, int32_t pos, const float * k, const float * v);
    gl_kv_view k_view(int64_t layer, int32_t seq) const;
    gl_kv_view v_view(int64_t layer, int32_t seq) const;
    gl_type type = GL_TYPE_F16;
    int32_t n_ctx = 0, n_seq = 0;
    std::vector<int32_t> len;  // filled positions per sequence
    size_t bytes() const { return k_.size() + v_.size(); }
    // Bytes that one position takes over all layers, keys and values.
    size_t bytes_per_token() const { return 2 * (size_t) n_layer_ * row_bytes_; }

private:
    int64_t n_layer_ = 0, kv_dim_ = 0;
    size_t row_bytes_ = 0;
    gl_buffer k_, v_;  // (n_layer, n_seq, n_ctx, row_bytes_)
    size_t offset(int64_t layer, int32_t seq, int32_t pos) const;
};

}  // namespace quill
