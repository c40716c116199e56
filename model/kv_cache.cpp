#include "model/kv_cache.h"

#include "ggml-lite/common.h"

namespace quill {

void KvCache::init(int64_t n_layer, int64_t n_head_kv, int64_t head_dim, int32_t ctx, int32_t seqs, gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    if (!tr || tr->block_size != 1) throw_error("KV cache type %s is not supported (f32, f16)", gl_type_name(t));
    type = t;
    n_ctx = ctx;
    n_seq = seqs;
    n_layer_ = n_layer;
    row_bytes_ = gl_row_size(t, n_head_kv * head_dim);
    const size_t total = (size_t) n_layer_ * (size_t) n_seq * (size_t) n_ctx * row_bytes_;
    k_.assign(total, 0);
    v_.assign(total, 0);
    len.assign((size_t) n_seq, 0);
}

size_t KvCache::offset(int64_t layer, int32_t seq, int32_t pos) const {
    return (((size_t) layer * (size_t) n_seq + (size_t) seq) * (size_t) n_ctx + (size_t) pos) * row_bytes_;
}
uint8_t * KvCache::k_row(int64_t layer, int32_t seq, int32_t pos) { return k_.data() + offset(layer, seq, pos); }
uint8_t * KvCache::v_row(int64_t layer, int32_t seq, int32_t pos) { return v_.data() + offset(layer, seq, pos); }
gl_kv_view KvCache::k_view(int64_t layer, int32_t seq) const { return {type, k_.data() + offset(layer, seq, 0), row_bytes_}; }
gl_kv_view KvCache::v_view(int64_t layer, int32_t seq) const { return {type, v_.data() + offset(layer, seq, 0), row_bytes_}; }

}  // namespace quill
