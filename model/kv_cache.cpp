#include "model/kv_cache.h"

#include "ggml-lite/common.h"

namespace quill {

void KvCache::init(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int32_t ctx, int32_t seqs, gl_type t) {
    char why[256];
    if (!gl_kv_supports(t, head_dim, why, sizeof(why))) throw_error("%s", why);
    type = t;
    n_ctx = ctx;
    n_seq = seqs;
    n_layer_ = n_layer;
    kv_dim_ = n_head_kv * head_dim;
    row_bytes_ = gl_kv_row_size(t, kv_dim_);
    const size_t total = (size_t) n_layer_ * (size_t) n_seq * (size_t) n_ctx * row_bytes_;
    k_.alloc(total);  // zeroed, in the backend's memory
    v_.alloc(total);
    len.assign((size_t) n_seq, 0);
}

size_t KvCache::offset(int64_t layer, int32_t seq, int32_t pos) const {
    GL_ASSERT(layer >= 0 && layer < n_layer_ && seq >= 0 && seq < n_seq && pos >= 0 && pos < n_ctx);
    return (((size_t) layer * (size_t) n_seq + (size_t) seq) * (size_t) n_ctx + (size_t) pos) * row_bytes_;
}

void KvCache::write(int64_t layer, int32_t seq, int32_t pos, const float * k, const float * v) {
    const size_t off = offset(layer, seq, pos);
    const gl_from_float_fn w = gl_kv_kernels_get(type).write;
    w(k, k_.u8() + off, kv_dim_);
    w(v, v_.u8() + off, kv_dim_);
}

gl_kv_view KvCache::k_view(int64_t layer, int32_t seq) const { return {type, k_.u8() + offset(layer, seq, 0), row_bytes_}; }
gl_kv_view KvCache::v_view(int64_t layer, int32_t seq) const { return {type, v_.u8() + offset(layer, seq, 0), row_bytes_}; }

}  // namespace quill
