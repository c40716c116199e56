#include "model/synthetic.h"

#include "formats/arch.h"
#include "ggml-lite/common.h"

#include <cmath>

namespace quill {

static const SyntheticShape k_shapes[] = {
    // name              embd  ff     layers heads kv  vocab  ctx   theta     tied
    {"tinyllama-1.1b", 2048, 5632, 22, 32, 4, 32000, 2048, 10000.0f, false},
    {"llama2-7b", 4096, 11008, 32, 32, 32, 32000, 4096, 10000.0f, false},
    {"stories260k", 64, 172, 5, 8, 4, 512, 512, 10000.0f, true},
};

const SyntheticShape & synthetic_shape(const std::string & name) {
    for (const SyntheticShape & s : k_shapes) {
        if (name == s.name) return s;
    }
    std::string names;
    for (const SyntheticShape & s : k_shapes) names += std::string(names.empty() ? "" : ", ") + s.name;
    throw_error("unknown synthetic model '%s' (known: %s)", name.c_str(), names.c_str());
}

std::vector<std::string> synthetic_names() {
    std::vector<std::string> v;
    for (const SyntheticShape & s : k_shapes) v.push_back(s.name);
    return v;
}

static uint64_t mix(uint64_t x) {  // splitmix64 finaliser
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Fills a tensor of `type` with uniform values in [-scale, scale], row by row in parallel; each row's values depend
// only on (seed, row), so the result does not depend on the thread count.
static void fill_random(TensorData & t, uint64_t seed, float scale, float offset) {
    const int64_t ne0 = t.ne[0], rows = t.n_rows();
    gl_vq_geom g;
    if (gl_vq_geometry(t.type, ne0, rows, &g)) {
        // A codebook type: random indices into random int8 codebooks (entries uniform in [-127, 127], scale/127 per
        // codebook), so the weights are uniform in [-scale, scale] as for the other types.
        std::vector<uint8_t> idx((size_t) (rows * (ne0 / g.dim)));
        std::vector<int8_t> cb((size_t) (g.n_groups * g.k * g.dim));
        std::vector<uint16_t> sc((size_t) g.n_groups, gl_fp32_to_fp16(scale / 127.0f));
        uint64_t st = mix(seed);
        auto next = [&]() { st ^= st << 13, st ^= st >> 7, st ^= st << 17; return st; };
        for (uint8_t & v : idx) v = (uint8_t) (next() % (uint64_t) g.k);
        for (int8_t & v : cb) v = (int8_t) ((int) (next() % 255) - 127);
        gl_vq_pack(g, idx.data(), cb.data(), sc.data(), const_cast<uint8_t *>(t.data));
        return;
    }
    const gl_type_traits * tr = gl_get_type_traits(t.type);
    const size_t row_bytes = gl_row_size(t.type, ne0);
    uint8_t * data = const_cast<uint8_t *>(t.data);
#pragma omp parallel
    {
        std::vector<float> row((size_t) ne0);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; ++r) {
            uint64_t s = mix(seed ^ mix((uint64_t) r));
            for (int64_t i = 0; i < ne0; ++i) {
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;  // xorshift64
                const float u = (float) (s >> 40) * (1.0f / 16777216.0f);  // [0, 1)
                row[(size_t) i] = offset + scale * (2.0f * u - 1.0f);
            }
            tr->from_float(row.data(), data + (size_t) r * row_bytes, ne0);
        }
    }
}

void set_llama_hparams(Metadata & m, const SyntheticShape & s) {
    m.set_u32("llama.context_length", (uint32_t) s.n_ctx);
    m.set_u32("llama.embedding_length", (uint32_t) s.n_embd);
    m.set_u32("llama.feed_forward_length", (uint32_t) s.n_ff);
    m.set_u32("llama.block_count", (uint32_t) s.n_layer);
    m.set_u32("llama.attention.head_count", (uint32_t) s.n_head);
    m.set_u32("llama.attention.head_count_kv", (uint32_t) s.n_head_kv);
    m.set_u32("llama.rope.dimension_count", (uint32_t) (s.n_embd / s.n_head));
    m.set_f32("llama.rope.freq_base", s.rope_base);
    m.set_f32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    m.set_u32("llama.vocab_size", (uint32_t) s.n_vocab);
}

ModelFile make_synthetic_model(const std::string & name, gl_type type, uint64_t seed) {
    const SyntheticShape & s = synthetic_shape(name);
    ModelFile mf;
    mf.path = "synthetic:" + name;
    mf.format = "synthetic";
    Metadata & m = mf.meta;
    m.set_str("general.architecture", "llama");
    m.set_str("general.name", "synthetic " + name + " (random weights)");
    m.set_str("quill.synthetic", name);
    set_llama_hparams(m, s);

    // A SentencePiece-style vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then filler words.
    std::vector<std::string> tokens;
    std::vector<double> scores;
    std::vector<int64_t> types;
    tokens = {"<unk>", "<s>", "</s>"};
    scores = {0, 0, 0};
    types = {2, 3, 3};
    for (int b = 0; b < 256; ++b) {
        tokens.push_back(strfmt("<0x%02X>", b));
        scores.push_back(0);
        types.push_back(6);
    }
    for (int64_t i = (int64_t) tokens.size(); i < s.n_vocab; ++i) {
        tokens.push_back(strfmt("\xe2\x96\x81w%lld", (long long) i));
        scores.push_back(-(double) i);
        types.push_back(1);
    }
    m.set_str("tokenizer.ggml.model", "llama");
    m.set("tokenizer.ggml.tokens", MetaValue::of_strs(tokens));
    m.set("tokenizer.ggml.scores", MetaValue::of_f32s(scores));
    m.set("tokenizer.ggml.token_type", MetaValue::of_i32s(types));
    m.set_u32("tokenizer.ggml.unknown_token_id", 0);
    m.set_u32("tokenizer.ggml.bos_token_id", 1);
    m.set_u32("tokenizer.ggml.eos_token_id", 2);
    m.set_bool("tokenizer.ggml.add_bos_token", true);

    auto weight_type = [&](int64_t ne0) {
        if (gl_get_type_traits(type)->vq) return ne0 % gl_get_type_traits(type)->vq->dim == 0 ? type : GL_TYPE_F16;
        return ne0 % gl_get_type_traits(type)->block_size == 0 ? type : GL_TYPE_F16;
    };
    // Codebook types hold the blocks' linear layers; the embedding and the output take Q4_0 (row lookups and the
    // output product), so a VQ model differs from the Q4_0 one only in its linears.
    const gl_type outer_type = gl_get_type_traits(type)->vq ? GL_TYPE_Q4_0 : type;
    uint64_t tensor_seed = mix(seed);
    auto add = [&](const std::string & tname, std::vector<int64_t> ne, float scale, float offset, bool outer = false) {
        gl_type ty = ne.size() == 1 ? GL_TYPE_F32 : outer ? outer_type : weight_type(ne[0]);
        TensorData & t = mf.add_owned_uninit(tname, ty, ne);
        fill_random(t, tensor_seed = mix(tensor_seed), scale, offset);
    };
    const int64_t hd = s.n_embd / s.n_head;
    const float w = 1.0f / sqrtf((float) s.n_embd);
    const BlockDims dims{s.n_embd, s.n_ff, s.n_head, s.n_head_kv, hd};
    add(k_tensor_token_embd, {s.n_embd, s.n_vocab}, 1.0f, 0.0f, true);
    const Arch & arch = *arch_find("llama");
    for (int64_t l = 0; l < s.n_layer; ++l) {
        for (const ArchLayerTensor & t : arch.layer) {
            const std::vector<int64_t> ne = layer_tensor_shape(t.role, dims);
            if (ne.size() == 1) add(layer_tensor_name(l, t.role), ne, 0.1f, 1.0f);  // norms around 1
            else add(layer_tensor_name(l, t.role), ne, 1.0f / sqrtf((float) ne[0]), 0);
        }
    }
    add(k_tensor_output_norm, {s.n_embd}, 0.1f, 1.0f);
    if (!s.tied) add(k_tensor_output, {s.n_embd, s.n_vocab}, w, 0, true);
    return mf;
}

}  // namespace quill
