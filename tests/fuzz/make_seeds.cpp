// quill_fuzz_seeds SHARED OUT: writes the seed corpus of every fuzz target into OUT/<target>/, made at run time from
// the real files in SHARED (../shared) and from small models derived from them (scripts/fuzz.sh calls it).
//
// Real files are used as they are (stories260K .bin + tok512.bin, the golden stories260K GGUFs, llama.cpp's vocab
// GGUFs, the fixtures' GGUFs and Hugging Face directories, tokenizer.json files, chat templates from
// tokenizer_config.json). Because small inputs fuzz much faster, each format also gets tiny models (one block, a
// 300-token vocabulary, every tensor type the format holds) built from the real tokenizers. Without SHARED only the
// synthetic seeds are written.
#include "formats/arch.h"
#include "formats/gguf_writer.h"
#include "formats/model_file.h"
#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "model/synthetic.h"
#include "tests/fuzz/fuzz_util.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <sys/stat.h>

using namespace quill;
using json = nlohmann::json;

namespace {

std::string g_out;
int g_count = 0;

bool exists(const std::string & p) {
    struct stat st;
    return !p.empty() && stat(p.c_str(), &st) == 0;
}

std::string read_file(const std::string & p) {
    std::ifstream f(p, std::ios::binary);
    if (!f) throw_error("cannot read %s", p.c_str());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void seed(const std::string & target, const std::string & name, const std::string & bytes) {
    const std::string dir = g_out + "/" + target;
    mkdir(dir.c_str(), 0755);
    const std::string path = dir + "/" + name;
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), (std::streamsize) bytes.size());
    if (!f) throw_error("cannot write %s", path.c_str());
    ++g_count;
}

// Runs one seed family; a missing or unreadable input skips it with a note instead of failing the whole corpus.
void family(const char * what, const std::function<void()> & fn) {
    try {
        fn();
    } catch (const std::exception & e) {
        fprintf(stderr, "fuzz seeds: skipped %s: %s\n", what, e.what());
    }
}

uint64_t rng_state = 0x9e3779b97f4a7c15ull;
uint64_t next_rand() {
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}
float rand_float(float scale) { return scale * (2.0f * (float) (next_rand() >> 40) / 16777216.0f - 1.0f); }

// ---- tiny llama models ------------------------------------------------------------------------------------------

struct TinyShape {
    int64_t n_embd = 32, n_ff = 64, n_layer = 1, n_head = 4, n_head_kv = 2, n_vocab = 300, n_ctx = 16;
    bool tied = true;
};

// The first n entries of the tokenizer.ggml.* arrays (ids beyond are dropped, special ids kept when in range).
Metadata truncate_vocab(const Metadata & src, size_t n) {
    Metadata m;
    for (const auto & kv : src.items()) {
        if (kv.first.rfind("tokenizer.", 0) != 0) continue;
        MetaValue v = kv.second;
        if (v.type == MetaType::ARRAY && kv.first != "tokenizer.ggml.merges") {
            if (v.as.size() > n) v.as.resize(n);
            if (v.af.size() > n) v.af.resize(n);
            if (v.ai.size() > n) v.ai.resize(n);
            if (v.au.size() > n) v.au.resize(n);
        }
        if (kv.first == "tokenizer.ggml.merges" && v.as.size() > 2 * n) v.as.resize(2 * n);
        m.set(kv.first, v);
    }
    return m;
}

void fill(TensorData & t) {
    const int64_t ne0 = t.ne[0], rows = t.n_rows();
    uint8_t * dst = const_cast<uint8_t *>(t.data);
    gl_vq_geom g;
    if (gl_vq_geometry(t.type, ne0, rows, &g)) {
        std::vector<uint8_t> idx((size_t) (rows * (ne0 / g.dim)));
        std::vector<int8_t> cb((size_t) (g.n_groups * g.k * g.dim));
        std::vector<uint16_t> sc((size_t) g.n_groups, gl_fp32_to_fp16(0.5f / 127.0f));
        for (uint8_t & v : idx) v = (uint8_t) (next_rand() % (uint64_t) g.k);
        for (int8_t & v : cb) v = (int8_t) ((int) (next_rand() % 255) - 127);
        gl_vq_pack(g, idx.data(), cb.data(), sc.data(), dst);
        return;
    }
    const gl_type_traits * tr = gl_get_type_traits(t.type);
    const size_t row_bytes = gl_row_size(t.type, ne0);
    std::vector<float> row((size_t) ne0);
    for (int64_t r = 0; r < rows; ++r) {
        for (float & x : row) x = rand_float(0.5f);
        tr->from_float(row.data(), dst + (size_t) r * row_bytes, ne0);
    }
}

bool type_fits(gl_type t, int64_t ne0, int64_t ne1) {
    const int64_t ne[2] = {ne0, ne1};
    size_t n = 0;
    return gl_nbytes_checked(t, ne, 2, &n);
}

ModelFile tiny_model(const Metadata & tok_meta, TinyShape s, gl_type type) {
    ModelFile mf;
    mf.path = "tiny";
    mf.format = "synthetic";
    Metadata & m = mf.meta;
    m.set_str("general.architecture", "llama");
    m.set_str("general.name", "fuzz-seed-tiny");
    set_llama_hparams(m, SyntheticShape{"tiny", s.n_embd, s.n_ff, s.n_layer, s.n_head, s.n_head_kv, s.n_vocab, s.n_ctx, 10000.0f, s.tied});
    for (const auto & kv : tok_meta.items()) m.set(kv.first, kv.second);
    const int64_t hd = s.n_embd / s.n_head;
    auto w2 = [&](const std::string & name, int64_t ne0, int64_t ne1) {
        fill(mf.add_owned_uninit(name, type_fits(type, ne0, ne1) ? type : GL_TYPE_F16, {ne0, ne1}));
    };
    auto norm = [&](const std::string & name, int64_t n) {
        TensorData & t = mf.add_owned_uninit(name, GL_TYPE_F32, {n});
        for (int64_t i = 0; i < n; ++i) ((float *) const_cast<uint8_t *>(t.data))[i] = 1.0f + rand_float(0.1f);
    };
    w2("token_embd.weight", s.n_embd, s.n_vocab);
    for (int64_t l = 0; l < s.n_layer; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        norm(b + "attn_norm.weight", s.n_embd);
        w2(b + "attn_q.weight", s.n_embd, s.n_head * hd);
        w2(b + "attn_k.weight", s.n_embd, s.n_head_kv * hd);
        w2(b + "attn_v.weight", s.n_embd, s.n_head_kv * hd);
        w2(b + "attn_output.weight", s.n_head * hd, s.n_embd);
        norm(b + "ffn_norm.weight", s.n_embd);
        w2(b + "ffn_gate.weight", s.n_embd, s.n_ff);
        w2(b + "ffn_up.weight", s.n_embd, s.n_ff);
        w2(b + "ffn_down.weight", s.n_ff, s.n_embd);
    }
    norm("output_norm.weight", s.n_embd);
    if (!s.tied) w2("output.weight", s.n_embd, s.n_vocab);
    return mf;
}

// The smallest embedding width (32, 64, 128) at which every matrix of a tiny model fits the type.
TinyShape shape_for(gl_type t) {
    TinyShape s;
    for (int64_t e : {32, 64, 128}) {
        s.n_embd = e;
        s.n_ff = 2 * e;
        if (type_fits(t, e, s.n_vocab) && type_fits(t, s.n_ff, e)) return s;
    }
    s.n_embd = 32;
    s.n_ff = 64;
    return s;
}

std::string scratch_file(const std::string & name) { return g_out + "/.tmp-" + name; }

// The bytes of `mf` as written by save_quill or save_gguf (through a scratch file, as the writers take a path).
std::string file_bytes(const ModelFile & mf, bool gguf) {
    const std::string p = scratch_file(gguf ? "seed.gguf" : "seed.quill");
    if (gguf) save_gguf(p, mf);
    else save_quill(p, mf);
    std::string b = read_file(p);
    remove(p.c_str());
    return b;
}
std::string quill_bytes(const ModelFile & mf) { return file_bytes(mf, false); }
std::string gguf_bytes(const ModelFile & mf) { return file_bytes(mf, true); }

std::string llama2c_checkpoint(const TinyShape & s, bool shared_cls) {
    const int64_t hs = s.n_embd / s.n_head, kv = s.n_head_kv * hs;
    int32_t h[7] = {(int32_t) s.n_embd, (int32_t) s.n_ff, (int32_t) s.n_layer, (int32_t) s.n_head, (int32_t) s.n_head_kv,
                    (int32_t) (shared_cls ? s.n_vocab : -s.n_vocab), (int32_t) s.n_ctx};
    std::string out((const char *) h, sizeof(h));
    const int64_t D = s.n_embd, L = s.n_layer, H = s.n_ff, V = s.n_vocab;
    const int64_t n = V * D + L * (D + D * D + 2 * kv * D + D * D + D + 3 * H * D) + D + s.n_ctx * hs + (shared_cls ? 0 : V * D);
    for (int64_t i = 0; i < n; ++i) {
        const float x = rand_float(0.5f);
        out.append((const char *) &x, 4);
    }
    return out;
}

// ---- safetensors / Hugging Face ---------------------------------------------------------------------------------

struct StTensor {
    std::string name, dtype;
    std::vector<int64_t> shape;
};

std::string safetensors(const std::vector<StTensor> & ts, bool with_meta) {
    json h = json::object();
    std::string data;
    for (const StTensor & t : ts) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        const size_t el = t.dtype == "F32" ? 4 : 2;
        const size_t begin = data.size();
        for (int64_t i = 0; i < n; ++i) {
            const float x = t.name.find("norm") != std::string::npos ? 1.0f : rand_float(0.5f);
            if (el == 4) {
                data.append((const char *) &x, 4);
            } else {
                const uint16_t b = t.dtype == "F16" ? gl_fp32_to_fp16(x) : gl_fp32_to_bf16(x);
                data.append((const char *) &b, 2);
            }
        }
        h[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {begin, data.size()}}};
    }
    if (with_meta) h["__metadata__"] = {{"format", "pt"}};
    std::string hs = h.dump();
    while (hs.size() % 8) hs += ' ';
    const uint64_t len = hs.size();
    return std::string((const char *) &len, 8) + hs + data;
}

struct HfShape : TinyShape {
    int64_t head_dim = 0;  // 0: not written (hidden / heads)
    std::string dtype = "F32";
    json rope_scaling;
};

std::pair<json, std::string> tiny_hf(const HfShape & s) {
    const int64_t hd = s.head_dim ? s.head_dim : s.n_embd / s.n_head;
    json cfg = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"hidden_size", s.n_embd},
                {"intermediate_size", s.n_ff}, {"num_hidden_layers", s.n_layer}, {"num_attention_heads", s.n_head},
                {"num_key_value_heads", s.n_head_kv}, {"vocab_size", s.n_vocab}, {"max_position_embeddings", s.n_ctx},
                {"rms_norm_eps", 1e-5}, {"rope_theta", 10000.0}, {"tie_word_embeddings", s.tied},
                {"bos_token_id", 1}, {"eos_token_id", 2}, {"torch_dtype", "float32"}};
    if (s.head_dim) cfg["head_dim"] = s.head_dim;
    if (!s.rope_scaling.is_null()) cfg["rope_scaling"] = s.rope_scaling;
    std::vector<StTensor> ts;
    const std::string & dt = s.dtype;
    ts.push_back({"model.embed_tokens.weight", dt, {s.n_vocab, s.n_embd}});
    for (int64_t l = 0; l < s.n_layer; ++l) {
        const std::string b = "model.layers." + std::to_string(l) + ".";
        ts.push_back({b + "input_layernorm.weight", dt, {s.n_embd}});
        ts.push_back({b + "self_attn.q_proj.weight", dt, {s.n_head * hd, s.n_embd}});
        ts.push_back({b + "self_attn.k_proj.weight", dt, {s.n_head_kv * hd, s.n_embd}});
        ts.push_back({b + "self_attn.v_proj.weight", dt, {s.n_head_kv * hd, s.n_embd}});
        ts.push_back({b + "self_attn.o_proj.weight", dt, {s.n_embd, s.n_head * hd}});
        ts.push_back({b + "post_attention_layernorm.weight", dt, {s.n_embd}});
        ts.push_back({b + "mlp.gate_proj.weight", dt, {s.n_ff, s.n_embd}});
        ts.push_back({b + "mlp.up_proj.weight", dt, {s.n_ff, s.n_embd}});
        ts.push_back({b + "mlp.down_proj.weight", dt, {s.n_embd, s.n_ff}});
    }
    ts.push_back({"model.norm.weight", dt, {s.n_embd}});
    if (!s.tied) ts.push_back({"lm_head.weight", dt, {s.n_vocab, s.n_embd}});
    return {cfg, safetensors(ts, true)};
}

// A tokenizer.json cut down to the ids below n (and the merges between kept tokens), keeping its added tokens.
std::string small_tokenizer_json(const std::string & text, int64_t n, size_t max_merges) {
    json tj = json::parse(text);
    json & model = tj["model"];
    json vocab = json::object();
    for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it)
        if (it.value().get<int64_t>() < n) vocab[it.key()] = it.value();
    json merges = json::array();
    for (const json & mg : model["merges"]) {
        if (merges.size() >= max_merges) break;
        std::string a, b;
        if (mg.is_string()) {
            const std::string s = mg.get<std::string>();
            const size_t sp = s.find(' ');
            if (sp == std::string::npos) continue;
            a = s.substr(0, sp), b = s.substr(sp + 1);
        } else {
            a = mg[0].get<std::string>(), b = mg[1].get<std::string>();
        }
        if (vocab.contains(a) && vocab.contains(b) && vocab.contains(a + b)) merges.push_back(mg);
    }
    model["vocab"] = vocab;
    model["merges"] = merges;
    // The first added tokens, renumbered right after the kept ids (Llama 3's start at 128000).
    json added = json::array();
    if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
        for (json a : tj["added_tokens"]) {
            if (added.size() >= 16) break;
            a["id"] = n + (int64_t) added.size();
            added.push_back(a);
        }
    }
    tj["added_tokens"] = added;
    return tj.dump(1);
}

std::string hf_container(const std::string & config, const std::string & tok_json, const std::string & st,
                         const std::string & tok_cfg = "", const std::string & index = "") {
    std::vector<std::string> parts = {config, tok_json, st};
    if (!tok_cfg.empty() || !index.empty()) parts.push_back(tok_cfg);
    if (!index.empty()) parts.push_back(index);
    return quill_fuzz::join_files(parts);
}

// ---- chat ----------------------------------------------------------------------------------------------------------

std::string chat_input(const std::string & tmpl, const std::string & bos, const std::vector<std::pair<std::string, std::string>> & msgs) {
    std::string s = tmpl + "\x1e" + bos;
    for (const auto & m : msgs) s += "\x1e" + m.first + "\x1f" + m.second;
    return s;
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s SHARED_DIR OUT_DIR   (SHARED_DIR may be missing: synthetic seeds only)\n", argv[0]);
        return 2;
    }
    const std::string shared = argv[1];
    g_out = argv[2];
    mkdir(g_out.c_str(), 0755);
    const bool have_shared = exists(shared + "/models");
    auto S = [&](const char * rel) { return shared + "/" + rel; };
    if (!have_shared) fprintf(stderr, "fuzz seeds: %s not found: synthetic seeds only\n", shared.c_str());

    // The SentencePiece tokenizer of stories260K (or the synthetic one), cut to 300 tokens (specials + 256 bytes + a
    // few merges), for the tiny models.
    Metadata spm;
    if (have_shared && exists(S("models/stories260K/tok512.bin"))) import_llama2c_tokenizer(S("models/stories260K/tok512.bin"), spm);
    else spm = make_synthetic_model("stories260k", GL_TYPE_F32).meta;
    const Metadata spm300 = truncate_vocab(spm, 300);

    // ---- quill: stories260K converted, and a tiny model in every tensor type
    family("quill: stories260K", [&] {
        LoadOptions opt;
        opt.tokenizer_path = S("models/stories260K/tok512.bin");
        seed("quill", "stories260K.quill", quill_bytes(load_model(S("models/stories260K/stories260K.bin"), opt)));
    });
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        family("quill: tiny", [&] {
            TinyShape s = shape_for((gl_type) t);
            s.tied = t % 2 == 0;
            seed("quill", std::string("tiny-") + gl_type_name((gl_type) t) + ".quill", quill_bytes(tiny_model(spm300, s, (gl_type) t)));
        });
        if (gl_get_type_traits((gl_type) t)->vec_dot_type != GL_TYPE_A8_ROW || t == GL_TYPE_A8_ROW) continue;
        family("quill: tiny, static activation grids", [&] {  // formats/SPEC.md "input_scale" beside every a8 block linear
            TinyShape s = shape_for((gl_type) t);
            ModelFile mf = tiny_model(spm300, s, (gl_type) t);
            std::vector<std::string> weights;
            for (const TensorData & td : mf.tensors)
                if (td.type == (gl_type) t && td.name.compare(0, 4, "blk.") == 0) weights.push_back(td.name);
            for (const std::string & w : weights) {
                const float g[2] = {0.05f, 3.0f};
                mf.add_owned(input_scale_name(w), GL_TYPE_F32, {2}, g, sizeof g);
            }
            seed("quill", std::string("tiny-") + gl_type_name((gl_type) t) + "-static.quill", quill_bytes(mf));
        });
    }

    // ---- gguf: the golden stories260K files, llama.cpp's vocab files, the fixtures, and tiny models
    for (const char * f : {"golden/stories260K/stories260K-F32.gguf", "golden/stories260K/stories260K-F16.gguf",
                           "golden/stories260K/stories260K-Q8_0.gguf", "golden/stories260K/stories260K-Q4_0.gguf",
                           "tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf", "tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf",
                           "tokenizers/llamacpp-vocab/ggml-vocab-phi-3.gguf", "fixtures/stories260K-qwen2/stories260K-qwen2-F16.gguf",
                           "fixtures/stories260K-qwen3/stories260K-qwen3-F16.gguf",
                           "fixtures/stories260K-gemma3/stories260K-gemma3-F16.gguf"}) {
        family(f, [&] {
            const std::string p = S(f);
            seed("gguf", p.substr(p.find_last_of('/') + 1), read_file(p));
        });
    }
    for (uint32_t ti = 0; ti < GL_TYPE_COUNT; ++ti) {
        const gl_type t = (gl_type) ti;
        if (gl_get_type_traits(t)->gguf_type < 0) continue;  // the types GGUF files can hold, from the registry
        family("gguf: tiny", [&] {
            TinyShape s;
            s.tied = t != GL_TYPE_F16;
            seed("gguf", std::string("tiny-") + gl_type_name(t) + ".gguf", gguf_bytes(tiny_model(spm300, s, t)));
        });
    }
    family("gguf: tiny llama-bpe vocab", [&] {
        // Llama 3's byte-level BPE vocabulary (tokenizer.json), cut to 600 tokens + 16 added ones.
        const std::string p = scratch_file("tokenizer.json");
        const std::string text = small_tokenizer_json(read_file(S("tokenizers/llama3/tokenizer.json")), 600, 400);
        std::ofstream(p, std::ios::binary) << text;
        Metadata m;
        import_hf_tokenizer(p, S("tokenizers/llama3/tokenizer_config.json"), m);
        remove(p.c_str());
        TinyShape s;
        s.n_vocab = 616;
        seed("gguf", "tiny-llama-bpe.gguf", gguf_bytes(tiny_model(m, s, GL_TYPE_Q8_0)));
    });

    // ---- llama2c: checkpoint + kFileSep + tokenizer.bin
    family("llama2c: stories260K", [&] {
        seed("llama2c", "stories260K", quill_fuzz::join_files({read_file(S("models/stories260K/stories260K.bin")),
                                                               read_file(S("models/stories260K/tok512.bin"))}));
    });
    {
        std::string tok512;
        family("llama2c: tok512", [&] { tok512 = read_file(S("models/stories260K/tok512.bin")); });
        if (!tok512.empty()) {
            TinyShape s;
            s.n_vocab = 512;
            seed("llama2c", "tiny-shared-cls", quill_fuzz::join_files({llama2c_checkpoint(s, true), tok512}));
            s.n_layer = 2;
            s.n_head_kv = 4;
            seed("llama2c", "tiny-own-cls", quill_fuzz::join_files({llama2c_checkpoint(s, false), tok512}));
            seed("llama2c", "tokenizer-only", quill_fuzz::join_files({"", tok512}));
        }
        family("llama2c: llama2 tokenizer", [&] {
            TinyShape s;
            seed("llama2c", "tiny-llama2-tokenizer", quill_fuzz::join_files({llama2c_checkpoint(s, true), read_file(S("tokenizers/llama2/tokenizer.bin"))}));
        });
    }

    // ---- hf: the real directories, then tiny models with the real tokenizers in several configurations
    for (const char * d : {"models/stories260K-hf", "fixtures/stories260K-qwen2/hf", "fixtures/stories260K-qwen3/hf",
                           "fixtures/stories260K-gemma3/hf"}) {
        family(d, [&] {
            const std::string p = S(d);
            std::string name = d;
            for (char & c : name) if (c == '/') c = '_';
            seed("hf", name, hf_container(read_file(p + "/config.json"), read_file(p + "/tokenizer.json"),
                                          read_file(p + "/model.safetensors"), read_file(p + "/tokenizer_config.json")));
        });
    }
    family("hf: tiny", [&] {
        const std::string tok_json = read_file(S("models/stories260K-hf/tokenizer.json"));
        const std::string tok_cfg = read_file(S("models/stories260K-hf/tokenizer_config.json"));
        std::string llama3_tok, llama3_cfg;
        family("hf: llama3 tokenizer", [&] {
            llama3_tok = small_tokenizer_json(read_file(S("tokenizers/llama3/tokenizer.json")), 600, 400);
            llama3_cfg = read_file(S("tokenizers/llama3/tokenizer_config.json"));
        });
        HfShape s;
        s.n_vocab = 64;
        auto add = [&](const std::string & name, const HfShape & sh, const std::string & tj, const std::string & tc,
                       bool index = false) {
            auto [cfg, st] = tiny_hf(sh);
            std::string idx;
            if (index) {
                json wm = json::object();
                const json h = json::parse(st.substr(8, (size_t) *(const uint64_t *) st.data()));
                for (auto it = h.begin(); it != h.end(); ++it)
                    if (it.key() != "__metadata__") wm[it.key()] = "model.safetensors";
                idx = json{{"metadata", {{"total_size", st.size()}}}, {"weight_map", wm}}.dump(1);
            }
            seed("hf", name, hf_container(cfg.dump(1), tj, st, tc, idx));
        };
        add("tiny-f32", s, tok_json, tok_cfg);
        HfShape u = s;
        u.tied = false;
        u.dtype = "F16";
        u.rope_scaling = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0}, {"high_freq_factor", 4.0},
                          {"original_max_position_embeddings", 8192}};
        add("tiny-f16-untied-llama3rope", u, tok_json, "");
        HfShape b = s;
        b.dtype = "BF16";
        b.head_dim = 16;
        b.n_head_kv = 4;
        b.rope_scaling = {{"type", "linear"}, {"factor", 2.0}};
        add("tiny-bf16-headdim-linear-index", b, tok_json, tok_cfg, true);
        if (!llama3_tok.empty()) {
            add("tiny-llama3-tokenizer", s, llama3_tok, llama3_cfg);
            // The same vocabulary with the GPT-2 pre-tokenizer (ByteLevel with its own regex).
            json g = json::parse(llama3_tok);
            g["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
            add("tiny-gpt2-tokenizer", s, g.dump(1), "{\"add_bos_token\": false, \"eos_token\": \"<|end_of_text|>\"}");
        }
    });

    // ---- chat: templates from tokenizer_config.json files and the names, with a few conversations
    {
        std::vector<std::pair<std::string, std::string>> templates = {
            {"name-llama2", "llama2"}, {"name-chatml", "chatml"}, {"name-llama3", "llama3"}, {"name-plain", "plain"}, {"empty", ""},
            {"jinja-chatml", "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"},
            {"jinja-llama2", "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}{% endfor %}"},
        };
        for (const char * f : {"tokenizers/llama3/tokenizer_config.json", "models/stories260K-hf/tokenizer_config.json",
                               "fixtures/stories260K-qwen2/hf/tokenizer_config.json", "fixtures/stories260K-qwen3/hf/tokenizer_config.json",
                               "fixtures/stories260K-gemma3/hf/tokenizer_config.json"}) {
            family(f, [&] {
                const json c = json::parse(read_file(S(f)));
                if (c.contains("chat_template") && c["chat_template"].is_string()) {
                    std::string name = f;
                    for (char & ch : name) if (ch == '/') ch = '_';
                    templates.push_back({name, c["chat_template"].get<std::string>()});
                }
            });
        }
        const std::vector<std::vector<std::pair<std::string, std::string>>> convs = {
            {{"user", "Hello!"}},
            {{"system", "You are a helpful assistant."}, {"user", "Tell me a story."}, {"assistant", " Once upon a time... "}, {"user", "More"}},
            {{"user", "  \xe2\x80\x83spaces\xc2\xa0 "}, {"system", "late system"}, {"assistant", ""}, {"tool", "odd role"}},
            {{"system", "a"}, {"system", "b"}},
        };
        for (const auto & t : templates)
            for (size_t c = 0; c < convs.size(); ++c)
                seed("chat", t.first + "-" + std::to_string(c), chat_input(t.second, c == 2 ? "<|begin_of_text|>" : "<s>", convs[c]));
    }

    // ---- server_request: request bodies for both endpoints
    {
        const std::vector<std::pair<std::string, json>> bodies = {
            {"chat-min", {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}}},
            {"chat-full", {{"model", "stories"}, {"messages", {{{"role", "developer"}, {"content", "Be brief."}},
                                                              {{"role", "user"}, {"content", {{{"type", "text"}, {"text", "Once"}}, {{"type", "text"}, {"text", "upon"}}}}},
                                                              {{"role", "assistant"}, {"content", nullptr}},
                                                              {{"role", "user"}, {"content", "a time"}}}},
                           {"max_tokens", 16}, {"max_completion_tokens", 8}, {"temperature", 0.7}, {"top_p", 0.9}, {"top_k", 40},
                           {"min_p", 0.05}, {"repeat_penalty", 1.1}, {"presence_penalty", 0.5}, {"frequency_penalty", -0.5},
                           {"seed", 42}, {"n", 2}, {"stop", {"\n", "The end"}}, {"stream", true},
                           {"stream_options", {{"include_usage", true}}}, {"logprobs", true}, {"top_logprobs", 3},
                           {"tool_choice", "none"}, {"response_format", {{"type", "text"}}}, {"modalities", {"text"}}}},
            {"chat-tools", {{"messages", {{{"role", "tool"}, {"content", "x"}}}}, {"tools", {{{"type", "function"}}}}}},
            {"completion-string", {{"prompt", "Once upon a time"}, {"max_tokens", 32}, {"logprobs", 2}, {"echo", false}, {"suffix", ""}}},
            {"completion-strings", {{"prompt", {"Once", "upon a time"}}, {"n", 2}, {"best_of", 2}, {"stop", "."}}},
            {"completion-ids", {{"prompt", {1, 403, 407, 261}}, {"seed", -1}, {"temperature", 0}}},
            {"completion-id-arrays", {{"prompt", {{1, 2, 3}, {4.0, 5}}}, {"max_tokens", 1e3}}},
            {"bad-types", {{"prompt", {{"nested"}}}, {"messages", 1}, {"n", "2"}, {"max_tokens", -1}, {"logit_bias", {{"1", 2}}}}},
        };
        for (const auto & b : bodies) seed("server_request", b.first + ".json", b.second.dump());
        seed("server_request", "not-an-object.json", "[1, 2, {\"a\": \"\\u00e9\\ud83e\\udd99\"}]");
        seed("server_request", "big-numbers.json",
             "{\"prompt\": [18446744073709551615, -9223372036854775808, 1e308, 0.5], \"max_tokens\": 9223372036854775807, \"seed\": 1.0e19}");
    }

    fprintf(stderr, "fuzz seeds: %d files in %s\n", g_count, g_out.c_str());
    return 0;
}
