// Hugging Face reader: stories260K-hf against the golden GGUF, and malformed safetensors inputs.
#include "formats/model_file.h"
#include "formats/safetensors.h"
#include "ggml-lite/common.h"
#include "tests/test_util.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

using namespace quill;

namespace {

void write_file(const std::string & path, const std::string & bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), (std::streamsize) bytes.size());
}

std::string le64(uint64_t v) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[i] = (char) ((v >> (8 * i)) & 0xff);
    return s;
}

// A safetensors file: length prefix (the true length unless `len` is given), header, data.
std::string make_st(const std::string & header, const std::string & data, int64_t len = -1) {
    return le64(len < 0 ? header.size() : (uint64_t) len) + header + data;
}

void parse_bytes(const std::string & b) {
    parse_safetensors(reinterpret_cast<const uint8_t *>(b.data()), b.size(), "test.safetensors");
}

std::string error_of(const std::string & b) {
    try {
        parse_bytes(b);
    } catch (const Error & e) {
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("hf: stories260K-hf loads bit-identical to the golden GGUF") {
    REQUIRE_SHARED();
    const std::string dir = shared_path("models/stories260K-hf");
    const std::string golden = shared_path("golden/stories260K/stories260K-F32.gguf");

    ModelFile hf = load_hf(dir);
    ModelFile gg = load_gguf(golden);
    CHECK(hf.format == "hf");

    CHECK(hf.meta.get_str("general.architecture", "") == "llama");
    CHECK(hf.meta.get_int("llama.embedding_length", 0) == 64);
    CHECK(hf.meta.get_int("llama.block_count", 0) == 5);
    CHECK(hf.meta.get_int("llama.feed_forward_length", 0) == 172);
    CHECK(hf.meta.get_int("llama.attention.head_count", 0) == 8);
    CHECK(hf.meta.get_int("llama.attention.head_count_kv", 0) == 4);
    CHECK(hf.meta.get_int("llama.rope.dimension_count", 0) == 8);
    CHECK(hf.meta.get_int("llama.context_length", 0) == 512);
    CHECK(hf.meta.get_int("llama.vocab_size", 0) == 512);
    CHECK(hf.meta.get_float("llama.attention.layer_norm_rms_epsilon", 0) == doctest::Approx(1e-5));
    CHECK(hf.meta.get_float("llama.rope.freq_base", 0) == doctest::Approx(10000.0));
    CHECK(!hf.meta.has("llama.rope.scaling.type"));
    CHECK(hf.find("output.weight") == nullptr);  // tied
    CHECK(hf.find("rope_freqs.weight") == nullptr);

    // Every golden tensor is in the HF model (output.weight as token_embd), same shape, same bytes.
    size_t compared = 0;
    for (const TensorData & g : gg.tensors) {
        CAPTURE(g.name);
        const TensorData * h = hf.find(g.name);
        if (!h && g.name == "output.weight") h = hf.find("token_embd.weight");
        REQUIRE(h != nullptr);
        CHECK(h->type == g.type);
        CHECK(h->ne == g.ne);
        REQUIRE(h->nbytes == g.nbytes);
        CHECK(std::memcmp(h->data, g.data, g.nbytes) == 0);
        ++compared;
    }
    CHECK(compared == 47 + 1);
    for (const TensorData & h : hf.tensors) {
        CAPTURE(h.name);
        CHECK(gg.find(h.name) != nullptr);
    }
    // Data of unpermuted tensors stays in the mapping: it must not be corrupted by the permutation buffers.
    CHECK(hf.get("blk.0.attn_q.weight").ne == std::vector<int64_t>{64, 64});
    CHECK(hf.get("blk.0.attn_k.weight").ne == std::vector<int64_t>{64, 32});
}

TEST_CASE("hf: load_model detects a directory") {
    REQUIRE_SHARED();
    ModelFile m = load_model(shared_path("models/stories260K-hf"));
    CHECK(m.format == "hf");
}

TEST_CASE("safetensors: a valid file parses") {
    std::string data(16 + 4, '\0');
    const float one = 1.0f;
    std::memcpy(&data[0], &one, 4);
    const std::string hdr =
        R"({"__metadata__":{"format":"pt"},"b":{"dtype":"F16","shape":[2],"data_offsets":[16,20]},)"
        R"("a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
    const std::string b = make_st(hdr, data);
    SafetensorsHeader h = parse_safetensors(reinterpret_cast<const uint8_t *>(b.data()), b.size());
    REQUIRE(h.tensors.size() == 2);
    CHECK(h.metadata.at("format") == "pt");
    CHECK(h.data_start == 8 + hdr.size());
    const SafetensorsTensor & a = h.tensors[0].name == "a" ? h.tensors[0] : h.tensors[1];
    const SafetensorsTensor & bt = h.tensors[0].name == "a" ? h.tensors[1] : h.tensors[0];
    CHECK(a.type == GL_TYPE_F32);
    CHECK(a.shape == std::vector<int64_t>{2, 2});
    CHECK(a.nbytes == 16);
    CHECK(a.offset == h.data_start);
    CHECK(bt.type == GL_TYPE_F16);
    CHECK(bt.offset == h.data_start + 16);
    // An empty header is valid (no tensors).
    const std::string e = make_st("{}", "");
    CHECK(parse_safetensors(reinterpret_cast<const uint8_t *>(e.data()), e.size()).tensors.empty());
}

TEST_CASE("safetensors: malformed inputs are rejected with quill::Error") {
    const std::string ok_t = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
    const std::string data(8, '\0');

    // Too short for the length prefix; truncated prefix.
    CHECK_THROWS_AS(parse_bytes(""), Error);
    CHECK_THROWS_AS(parse_bytes(std::string("\x10\x00\x00", 3)), Error);
    // Header length past EOF, huge, or tiny.
    CHECK(error_of(make_st(ok_t, data, (int64_t) (ok_t.size() + 9))).find("past the end") != std::string::npos);
    CHECK_THROWS_AS(parse_bytes(make_st(ok_t, data, (int64_t) 1 << 40)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(ok_t, data, INT64_MAX)), Error);
    CHECK_THROWS_AS(parse_bytes(le64(UINT64_MAX) + ok_t), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(ok_t, data, 0)), Error);
    // Bad JSON: truncated, garbage, not an object, wrong entry types.
    CHECK(error_of(make_st(ok_t.substr(0, ok_t.size() - 3), data)).find("JSON") != std::string::npos);
    CHECK_THROWS_AS(parse_bytes(make_st("\xff\xfe garbage", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st("[1,2,3]", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":5})", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"__metadata__":[1]})", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[2]}})", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", data)), Error);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", data)), Error);
    // Offsets out of range, reversed, past the data.
    CHECK(error_of(make_st(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data)).find("past") !=
          std::string::npos);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data)), Error);
    CHECK_THROWS_AS(
        parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,18446744073709551615]}})", data)),
        Error);
    CHECK_THROWS_AS(
        parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999999]}})", data)),
        Error);
    // Size mismatch between the span and shape x dtype.
    CHECK(error_of(make_st(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data)).find("need") !=
          std::string::npos);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F16","shape":[2],"data_offsets":[0,8]}})", data)), Error);
    // Element count / byte size overflow.
    CHECK_THROWS_AS(parse_bytes(make_st(
                        R"({"t":{"dtype":"F32","shape":[4294967296,4294967296,4],"data_offsets":[0,8]}})", data)),
                    Error);
    CHECK_THROWS_AS(
        parse_bytes(make_st(R"({"t":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", data)),
        Error);
    // Unknown or unsupported dtype: the message names the dtype and the tensor.
    const std::string msg = error_of(make_st(R"({"weird":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", data));
    CHECK(msg.find("I64") != std::string::npos);
    CHECK(msg.find("weird") != std::string::npos);
    CHECK_THROWS_AS(parse_bytes(make_st(R"({"t":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", data)),
                    Error);
}

TEST_CASE("hf: broken checkpoint directories are rejected with quill::Error") {
    const std::string dir = make_temp_dir();
    const std::string cfg =
        R"({"architectures":["LlamaForCausalLM"],"model_type":"llama","hidden_size":8,"intermediate_size":16,)"
        R"("num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"vocab_size":4,"rms_norm_eps":1e-5})";

    // No config.json.
    CHECK_THROWS_AS(load_hf(dir), Error);
    // Unsupported architecture: the message names it.
    write_file(dir + "/config.json", R"({"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"})");
    try {
        load_hf(dir);
        FAIL("expected an error");
    } catch (const Error & e) {
        CHECK(std::string(e.what()).find("gpt2") != std::string::npos);
    }
    // Bad JSON config.
    write_file(dir + "/config.json", "{\"hidden_size\": ");
    CHECK_THROWS_AS(load_hf(dir), Error);
    // Bad values.
    write_file(dir + "/config.json", R"({"model_type":"llama","hidden_size":-8})");
    CHECK_THROWS_AS(load_hf(dir), Error);
    // Unsupported rope scaling.
    write_file(dir + "/config.json", cfg.substr(0, cfg.size() - 1) + R"(,"rope_scaling":{"rope_type":"yarn"}})");
    CHECK_THROWS_AS(load_hf(dir), Error);

    write_file(dir + "/config.json", cfg);
    // No safetensors at all.
    CHECK_THROWS_AS(load_hf(dir), Error);
    // A truncated safetensors file.
    write_file(dir + "/model.safetensors", le64(1000) + "{}");
    CHECK_THROWS_AS(load_hf(dir), Error);
    // Valid container but missing tensors.
    write_file(dir + "/model.safetensors", make_st("{}", ""));
    CHECK_THROWS_AS(load_hf(dir), Error);
    // A tensor with a wrong shape.
    write_file(dir + "/model.safetensors",
               make_st(R"({"model.embed_tokens.weight":{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}})",
                       std::string(64, '\0')));
    try {
        load_hf(dir);
        FAIL("expected an error");
    } catch (const Error & e) {
        CHECK(std::string(e.what()).find("model.embed_tokens.weight") != std::string::npos);
    }
    // An unexpected tensor name.
    write_file(dir + "/model.safetensors",
               make_st(R"({"model.layers.7.foo.weight":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                       std::string(8, '\0')));
    CHECK_THROWS_AS(load_hf(dir), Error);
    // A shard index pointing outside the directory.
    std::remove((dir + "/model.safetensors").c_str());
    write_file(dir + "/model.safetensors.index.json", R"({"weight_map":{"a":"../evil.safetensors"}})");
    CHECK_THROWS_AS(load_hf(dir), Error);
    std::remove((dir + "/model.safetensors.index.json").c_str());
    std::remove((dir + "/config.json").c_str());
    std::remove(dir.c_str());
}

namespace {

struct StTensor {
    std::string          name, dtype;
    std::vector<int64_t> shape;
    std::string          bytes;
};

std::string build_st(const std::vector<StTensor> & ts) {
    std::string hdr = "{", data;
    for (const StTensor & t : ts) {
        if (hdr.size() > 1) hdr += ",";
        std::string shape;
        for (size_t i = 0; i < t.shape.size(); ++i) shape += (i ? "," : "") + std::to_string(t.shape[i]);
        hdr += "\"" + t.name + "\":{\"dtype\":\"" + t.dtype + "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
               std::to_string(data.size()) + "," + std::to_string(data.size() + t.bytes.size()) + "]}";
        data += t.bytes;
    }
    hdr += "}";
    while ((8 + hdr.size()) % 8 != 0) hdr += " ";
    return make_st(hdr, data);
}

// Elements base, base+1, ... stored as dtype (values are small integers, exact in every type).
StTensor st_tensor(const std::string & name, const std::string & dtype, std::vector<int64_t> shape, int base) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    StTensor t{name, dtype, shape, ""};
    for (int64_t i = 0; i < n; ++i) {
        const float v = (float) (base + (i % 1024));
        if (dtype == "F32") {
            t.bytes.append(reinterpret_cast<const char *>(&v), 4);
        } else {
            const uint16_t h = dtype == "F16" ? gl_fp32_to_fp16(v) : gl_fp32_to_bf16(v);
            t.bytes.append(reinterpret_cast<const char *>(&h), 2);
        }
    }
    return t;
}

}  // namespace

TEST_CASE("hf: synthetic sharded checkpoint: names, permutation of F16/BF16 rows, llama3 rope factors") {
    REQUIRE_SHARED();
    const std::string dir = make_temp_dir();
    const int64_t E = 8, H = 2, KV = 1, HD = 4, FF = 16, V = 512;
    write_file(dir + "/config.json",
               R"({"architectures":["MistralForCausalLM"],"model_type":"mistral","hidden_size":8,)"
               R"("intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,)"
               R"("head_dim":4,"vocab_size":512,"rms_norm_eps":1e-6,"rope_theta":500000.0,)"
               R"("max_position_embeddings":131072,"tie_word_embeddings":false,)"
               R"("rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,)"
               R"("original_max_position_embeddings":8192}})");
    const std::string p = "model.layers.0.";
    write_file(dir + "/model-00001-of-00002.safetensors",
               build_st({st_tensor("model.embed_tokens.weight", "F32", {V, E}, 0),
                         st_tensor("model.norm.weight", "F32", {E}, 1), st_tensor("lm_head.weight", "F32", {V, E}, 5)}));
    write_file(dir + "/model-00002-of-00002.safetensors",
               build_st({st_tensor(p + "input_layernorm.weight", "BF16", {E}, 2),
                         st_tensor(p + "post_attention_layernorm.weight", "F32", {E}, 3),
                         st_tensor(p + "self_attn.q_proj.weight", "F16", {H * HD, E}, 100),
                         st_tensor(p + "self_attn.k_proj.weight", "BF16", {KV * HD, E}, 200),
                         st_tensor(p + "self_attn.v_proj.weight", "F32", {KV * HD, E}, 300),
                         st_tensor(p + "self_attn.o_proj.weight", "F32", {E, H * HD}, 400),
                         st_tensor(p + "self_attn.rotary_emb.inv_freq", "F32", {HD / 2}, 0),
                         st_tensor(p + "mlp.gate_proj.weight", "F16", {FF, E}, 500),
                         st_tensor(p + "mlp.up_proj.weight", "F32", {FF, E}, 600),
                         st_tensor(p + "mlp.down_proj.weight", "F32", {E, FF}, 700)}));
    std::string wm = "{\"weight_map\":{";
    for (const char * n : {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"})
        wm += std::string("\"") + n + "\":\"model-00001-of-00002.safetensors\",";
    for (const char * n : {"input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
                           "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
                           "self_attn.rotary_emb.inv_freq", "mlp.gate_proj.weight", "mlp.up_proj.weight",
                           "mlp.down_proj.weight"})
        wm += "\"" + p + n + "\":\"model-00002-of-00002.safetensors\",";
    wm.back() = '}';
    wm += "}";
    write_file(dir + "/model.safetensors.index.json", wm);

    LoadOptions opt;
    opt.tokenizer_path = shared_path("models/stories260K-hf/tokenizer.json");
    ModelFile m = load_hf(dir, opt);

    CHECK(m.meta.get_int("llama.attention.head_count_kv", 0) == 1);
    CHECK(m.meta.get_int("llama.rope.dimension_count", 0) == 4);
    CHECK(m.meta.get_int("llama.attention.key_length", 0) == 4);
    CHECK(m.meta.get_float("llama.rope.freq_base", 0) == doctest::Approx(500000.0));
    CHECK(m.tensors.size() == 3 + 9 + 1);
    CHECK(m.get("output.weight").ne == std::vector<int64_t>{E, V});
    CHECK(m.get("blk.0.attn_norm.weight").type == GL_TYPE_BF16);
    CHECK(m.get("blk.0.ffn_gate.weight").type == GL_TYPE_F16);
    CHECK(m.get("blk.0.ffn_down.weight").ne == std::vector<int64_t>{FF, E});

    // q (F16, 2 heads) and k (BF16, 1 head): GGUF row (h, 2i + j) holds HF row (h, j * HD/2 + i).
    for (const char * nm : {"blk.0.attn_q.weight", "blk.0.attn_k.weight"}) {
        CAPTURE(nm);
        const TensorData & t = m.get(nm);
        const bool q = std::string(nm).find("attn_q") != std::string::npos;
        const int64_t nh = q ? H : KV;
        const int base = q ? 100 : 200;
        REQUIRE(t.ne == std::vector<int64_t>{E, nh * HD});
        const uint16_t * d = reinterpret_cast<const uint16_t *>(t.data);
        for (int64_t h = 0; h < nh; ++h)
            for (int64_t i = 0; i < HD / 2; ++i)
                for (int64_t j = 0; j < 2; ++j)
                    for (int64_t c = 0; c < E; ++c) {
                        const int64_t src_row = h * HD + j * (HD / 2) + i;
                        const uint16_t raw = d[(h * HD + 2 * i + j) * E + c];
                        const float got = q ? gl_fp16_to_fp32(raw) : gl_bf16_to_fp32(raw);
                        CHECK(got == (float) (base + src_row * E + c));
                    }
    }

    // llama3 factors: head_dim 4 -> freqs 1 and 500000^-0.5 (wavelen 2*pi and ~4443: between 2048 and 8192).
    const TensorData & rf = m.get("rope_freqs.weight");
    REQUIRE(rf.ne == std::vector<int64_t>{2});
    const float * f = reinterpret_cast<const float *>(rf.data);
    CHECK(f[0] == 1.0f);
    const double wavelen = 2 * M_PI * std::sqrt(500000.0);
    const double smooth = (8192.0 / wavelen - 1.0) / 3.0;
    CHECK(f[1] == doctest::Approx(1.0 / ((1 - smooth) / 8.0 + smooth)).epsilon(1e-5));

    // Tied: lm_head is ignored.
    write_file(dir + "/config.json",
               R"({"model_type":"llama","hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,)"
               R"("num_attention_heads":2,"num_key_value_heads":1,"vocab_size":512,"tie_word_embeddings":true,)"
               R"("rope_scaling":{"type":"linear","factor":4.0}})");
    ModelFile t = load_hf(dir, opt);
    CHECK(t.find("output.weight") == nullptr);
    CHECK(t.find("rope_freqs.weight") == nullptr);
    CHECK(t.meta.get_str("llama.rope.scaling.type", "") == "linear");
    CHECK(t.meta.get_float("llama.rope.scaling.factor", 0) == doctest::Approx(4.0));
    CHECK(!t.meta.has("llama.attention.key_length"));
    CHECK(t.meta.get_int("llama.rope.dimension_count", 0) == 4);

    // A shard listed in the index for a tensor that lives elsewhere.
    write_file(dir + "/model.safetensors.index.json",
               "{\"weight_map\":{\"model.norm.weight\":\"model-00002-of-00002.safetensors\"}}");
    CHECK_THROWS_AS(load_hf(dir, opt), Error);

    for (const char * f2 : {"/config.json", "/model.safetensors.index.json", "/model-00001-of-00002.safetensors",
                            "/model-00002-of-00002.safetensors"})
        std::remove((dir + f2).c_str());
    std::remove(dir.c_str());
}
