// llama2.c checkpoint reader (legacy "version 0" format) plus its tokenizer.bin.
//
// Layout: int32[7] header {dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len}; a negative
// vocab_size means an untied classifier follows the weights. Then fp32, row-major, no padding:
// tok_embeddings[V,D], rms_att[L,D], wq[L,D,D], wk[L,KV,D], wv[L,KV,D], wo[L,D,D], rms_ffn[L,D], w1[L,H,D],
// w2[L,D,H], w3[L,H,D], rms_final[D], freq_cis_real[seq,hs/2], freq_cis_imag[seq,hs/2], (wcls[V,D]).
// llama2.c rotates adjacent pairs, which is quill's (GGUF's) layout, so Q and K are used as they are, in place.
#include "formats/byte_reader.h"
#include "formats/arch.h"
#include "formats/model_file.h"

#include <memory>

namespace quill {

ModelFile load_llama2c(const std::string & path, const LoadOptions & opt) {
    auto map = std::make_shared<MappedFile>(path);
    ModelFile mf;
    mf.path = path;
    mf.format = "llama2c";
    mf.owners.push_back(map);
    ByteReader r(map->data, map->size, path);

    int32_t h[7];
    for (int k = 0; k < 7; ++k) h[k] = r.read<int32_t>("llama2.c header");
    const int64_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv = h[4], seq_len = h[6];
    const bool shared_cls = h[5] > 0;
    const int64_t vocab = h[5] < 0 ? -(int64_t) h[5] : h[5];
    const int64_t lim = 1 << 20;
    if (dim <= 0 || hidden <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv <= 0 || vocab <= 0 || seq_len <= 0 ||
        dim > lim || hidden > lim || n_layers > 4096 || n_heads > 4096 || vocab > lim || seq_len > lim)
        throw_error("%s: not a llama2.c checkpoint (absurd header: dim %d, hidden %d, layers %d, heads %d, kv heads %d, vocab %d, seq_len %d)",
                    path.c_str(), h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    if (dim % n_heads != 0 || n_heads % n_kv != 0 || (dim / n_heads) % 2 != 0)
        throw_error("%s: inconsistent llama2.c header: dim %lld, heads %lld, kv heads %lld", path.c_str(), (long long) dim,
                    (long long) n_heads, (long long) n_kv);
    const int64_t hs = dim / n_heads, kv_dim = n_kv * hs;

    // Expected size in floats, checked before any pointer is formed.
    const int64_t n_floats = vocab * dim + n_layers * (dim + dim * dim + 2 * kv_dim * dim + dim * dim + dim + 3 * hidden * dim) + dim +
                             seq_len * hs + (shared_cls ? 0 : vocab * dim);
    const size_t expect = 28 + (size_t) n_floats * 4;
    if (map->size != expect)
        throw_error("%s: llama2.c checkpoint should be %zu bytes for its header, but is %zu (truncated or not a llama2.c file)",
                    path.c_str(), expect, map->size);

    if (opt.tokenizer_path.empty())
        throw_error("%s: a llama2.c checkpoint has no tokenizer; give one with --tokenizer tokenizer.bin", path.c_str());

    Metadata & m = mf.meta;
    m.set_str("general.architecture", "llama");
    m.set_str("general.name", "llama2.c");
    m.set_str("general.source.format", "llama2c");
    m.set_u32("llama.context_length", (uint32_t) seq_len);
    m.set_u32("llama.embedding_length", (uint32_t) dim);
    m.set_u32("llama.feed_forward_length", (uint32_t) hidden);
    m.set_u32("llama.block_count", (uint32_t) n_layers);
    m.set_u32("llama.attention.head_count", (uint32_t) n_heads);
    m.set_u32("llama.attention.head_count_kv", (uint32_t) n_kv);
    m.set_u32("llama.rope.dimension_count", (uint32_t) hs);
    m.set_f32("llama.rope.freq_base", 10000.0f);
    m.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    m.set_u32("llama.vocab_size", (uint32_t) vocab);
    import_llama2c_tokenizer(opt.tokenizer_path, m);

    const float * p = (const float *) (map->data + 28);
    auto add = [&](const std::string & name, std::vector<int64_t> ne) {
        TensorData t;
        t.name = name;
        t.type = GL_TYPE_F32;
        t.ne = std::move(ne);
        t.data = (const uint8_t *) p;
        t.nbytes = (size_t) t.n_elements() * 4;
        p += t.n_elements();
        mf.tensors.push_back(std::move(t));
    };
    // The checkpoint's order: each kind of tensor for every layer, then the next kind (w1 = gate, w2 = down, w3 = up).
    const BlockDims dims{dim, hidden, n_heads, n_kv, dim / n_heads};
    add(k_tensor_token_embd, {dim, vocab});
    using LT = LayerTensor;
    for (LT role : {LT::ATTN_NORM, LT::ATTN_Q, LT::ATTN_K, LT::ATTN_V, LT::ATTN_OUT, LT::FFN_NORM, LT::FFN_GATE, LT::FFN_DOWN, LT::FFN_UP})
        for (int64_t l = 0; l < n_layers; ++l) add(layer_tensor_name(l, role), layer_tensor_shape(role, dims));
    add(k_tensor_output_norm, {dim});
    p += seq_len * hs;  // freq_cis tables: quill computes RoPE itself
    if (!shared_cls) add(k_tensor_output, {dim, vocab});
    return mf;
}

}  // namespace quill
