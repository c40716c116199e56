// Hugging Face checkpoint reader: load_hf(dir) (declared in formats/model_file.h).
//
// A directory holding config.json, one or more *.safetensors files (optionally with
// model.safetensors.index.json) and tokenizer.json (+ tokenizer_config.json) becomes a ModelFile with GGUF names:
//   - config.json's model_type / architectures pick the architecture entry (formats/arch.h: llama, mistral, qwen2,
//     qwen3, gemma3_text); config.json -> {arch}.* metadata, the same keys llama.cpp's convert_hf_to_gguf.py writes;
//   - tensors are renamed through the entry (model.layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight, ...);
//     their shapes are reversed ([out, in] -> ne = {in, out});
//   - for llama, q_proj and k_proj rows are permuted from HF's rotate-half order to the adjacent-pair order
//     (convert_hf_to_gguf LlamaModel.permute); the other architectures keep HF's order (NEOX RoPE); Gemma's
//     RMSNorm weights w become 1 + w in f32 (HF computes x̂·(1 + w)). Those go into owned buffers, everything else
//     stays in the read-only mappings (copied only when misaligned for its element type);
//   - lm_head.weight becomes output.weight unless tie_word_embeddings is true (then there is no output.weight);
//   - rope_scaling {"rope_type": "llama3", ...} adds rope_freqs.weight (F32, ne = {head_dim/2}), computed like
//     convert_hf_to_gguf (including its use of the top-level original_max_position_embeddings, default 8192);
//     "linear" sets llama.rope.scaling.type/factor; other scaling types are rejected.
// Mistral's sliding_window is ignored (as llama.cpp does for Mistral 7B v0.1; it only matters past 4096 tokens).
#include "formats/arch.h"
#include "formats/model_file.h"
#include "formats/safetensors.h"
#include "ggml-lite/common.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <dirent.h>
#include <map>
#include <set>
#include <sys/stat.h>

namespace quill {

namespace {

using json = nlohmann::json;

bool ends_with(const std::string & s, const char * suffix) {
    const size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

bool is_regular_file(const std::string & path) {
    struct stat st;
    return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

json parse_json_file(const std::string & path) {
    const std::string text = read_file_bounded(path, 256u << 20);
    try {
        return json::parse(text);
    } catch (const json::exception & e) {
        throw_error("%s is not valid JSON: %s", path.c_str(), e.what());
    }
}

// Accessors for config.json values that name the key and file on a bad value.
struct Config {
    const json & j;
    std::string  path;

    const json * find(const char * key) const {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) return nullptr;
        return &*it;
    }
    int64_t int_val(const json & v, const char * key, int64_t lo, int64_t hi) const {
        int64_t x;
        if (v.is_number_unsigned()) {
            uint64_t u = v.get<uint64_t>();
            if (u > (uint64_t) hi) throw_error("%s: %s = %llu is out of range", path.c_str(), key, (unsigned long long) u);
            x = (int64_t) u;
        } else if (v.is_number_integer()) {
            x = v.get<int64_t>();
        } else {
            throw_error("%s: %s must be an integer", path.c_str(), key);
        }
        if (x < lo || x > hi)
            throw_error("%s: %s = %lld is out of range [%lld, %lld]", path.c_str(), key, (long long) x, (long long) lo,
                        (long long) hi);
        return x;
    }
    int64_t get_int(const char * key, int64_t lo, int64_t hi) const {
        const json * v = find(key);
        if (!v) throw_error("%s: missing required key %s", path.c_str(), key);
        return int_val(*v, key, lo, hi);
    }
    int64_t get_int(const char * key, int64_t lo, int64_t hi, int64_t def) const {
        const json * v = find(key);
        return v ? int_val(*v, key, lo, hi) : def;
    }
    double float_val(const json & v, const char * key) const {
        if (!v.is_number()) throw_error("%s: %s must be a number", path.c_str(), key);
        double x = v.get<double>();
        if (!std::isfinite(x)) throw_error("%s: %s is not finite", path.c_str(), key);
        return x;
    }
    double get_float(const char * key, double def) const {
        const json * v = find(key);
        return v ? float_val(*v, key) : def;
    }
};

// Directory entries ending in ".safetensors", sorted.
std::vector<std::string> list_safetensors(const std::string & dir) {
    std::vector<std::string> out;
    DIR * d = opendir(dir.c_str());
    if (!d) throw_error("cannot open directory %s", dir.c_str());
    while (struct dirent * e = readdir(d)) {
        std::string n = e->d_name;
        const std::string ext = ".safetensors";
        if (n.size() > ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0 && n[0] != '.') out.push_back(n);
    }
    closedir(d);
    std::sort(out.begin(), out.end());
    return out;
}

struct SourceTensor {
    const SafetensorsTensor * info = nullptr;
    const MappedFile *        file = nullptr;
    std::string               file_name;
};

// w.reshape(n_head, 2, hd/2, in).swapaxes(1, 2).reshape(out, in) of convert_hf_to_gguf's LlamaModel.permute.
void permute_rows(const uint8_t * src, uint8_t * dst, int64_t n_head, int64_t hd, size_t row_bytes) {
    const int64_t half = hd / 2;
    for (int64_t h = 0; h < n_head; ++h)
        for (int64_t i = 0; i < half; ++i)
            for (int64_t j = 0; j < 2; ++j) {
                const int64_t d = h * hd + 2 * i + j;
                const int64_t s = h * hd + j * half + i;
                std::memcpy(dst + (size_t) d * row_bytes, src + (size_t) s * row_bytes, row_bytes);
            }
}

// rope_freqs factors for rope_type "llama3", as convert_hf_to_gguf's LlamaModel computes them with torch float32
// tensors: freqs = 1 / base^(arange(0, dim, 2) / dim); per frequency, 1 (high frequencies), factor (low) or
// 1 / ((1 - smooth) / factor + smooth) in between.
std::vector<float> llama3_rope_factors(double base, int64_t dim, double factor, double low_freq_factor,
                                       double high_freq_factor, double old_context_len) {
    const double low_freq_wavelen = old_context_len / low_freq_factor;
    const double high_freq_wavelen = old_context_len / high_freq_factor;
    std::vector<float> out;
    for (int64_t k = 0; k < dim; k += 2) {
        const float expo = (float) k / (float) dim;
        const float freq = 1.0f / std::pow((float) base, expo);
        const float wavelen = (1.0f / freq) * (float) (2 * M_PI);  // torch: scalar / t == t.reciprocal() * scalar
        if (wavelen < (float) high_freq_wavelen) {
            out.push_back(1.0f);
        } else if (wavelen > (float) low_freq_wavelen) {
            out.push_back((float) factor);
        } else {
            const float r = (1.0f / wavelen) * (float) old_context_len;
            const float smooth = (r - (float) low_freq_factor) / (float) (high_freq_factor - low_freq_factor);
            const float denom = (1.0f - smooth) / (float) factor + smooth;
            out.push_back(1.0f / denom);
        }
    }
    return out;
}

std::string base_name(std::string dir) {
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    size_t s = dir.find_last_of('/');
    return s == std::string::npos ? dir : dir.substr(s + 1);
}

// The hyper-parameters config.json gives, checked, and written as {arch}.* metadata.
struct HfConfig {
    const Arch * arch = nullptr;
    int64_t n_embd = 0, n_layer = 0, n_ff = 0, n_head = 0, n_head_kv = 0, n_vocab = 0, head_dim = 0;
    bool tied = false;
    std::vector<float> rope_factors;  // llama3 rope scaling: rope_freqs.weight
};

// Gemma 3's sliding-window layers: the window, which layers are global (sliding_window_pattern or layer_types) and
// their RoPE base. The GGUF keys are llama.cpp's; the pattern and local base are written only when they differ from
// what llama.cpp hard-codes for the architecture (the entry's values).
void read_sliding_window(const Config & cfg, const Arch & A, const HfConfig & hc, Metadata & m) {
    const std::string & cfg_path = cfg.path;
    const std::string arch = A.name;
    const int64_t window = cfg.get_int("sliding_window", 1, int64_t(1) << 24);
    m.set_u32(arch + ".attention.sliding_window", (uint32_t) window);
    int64_t pattern = cfg.get_int("sliding_window_pattern", 1, 4096, A.swa_pattern);
    if (const json * lt = cfg.find("layer_types")) {
        if (!lt->is_array() || (int64_t) lt->size() != hc.n_layer)
            throw_error("%s: layer_types must list the %lld layers", cfg_path.c_str(), (long long) hc.n_layer);
        for (int64_t l = 0; l < hc.n_layer; ++l) {
            const json & v = (*lt)[(size_t) l];
            const bool global = v.is_string() && v.get<std::string>() == "full_attention";
            if (!global && !(v.is_string() && v.get<std::string>() == "sliding_attention"))
                throw_error("%s: layer_types[%lld] must be sliding_attention or full_attention", cfg_path.c_str(), (long long) l);
            if (global != ((l + 1) % pattern == 0))
                throw_error("%s: layer_types does not follow a sliding window pattern of %lld, which is all quill supports", cfg_path.c_str(),
                            (long long) pattern);
        }
    }
    if (pattern != A.swa_pattern) m.set_u32(arch + ".attention.sliding_window_pattern", (uint32_t) pattern);
    const double local_base = cfg.get_float("rope_local_base_freq", A.swa_rope_base);
    if (!(local_base > 1.0)) throw_error("%s: rope_local_base_freq must be above 1", cfg_path.c_str());
    if ((float) local_base != A.swa_rope_base) m.set_f32(arch + ".rope.freq_base_swa", (float) local_base);
    // quill's attention scale is 1/sqrt(head_dim), as llama.cpp's for these models.
    if (const json * v = cfg.find("query_pre_attn_scalar"); v && cfg.float_val(*v, "query_pre_attn_scalar") != (double) hc.head_dim)
        throw_error("%s: query_pre_attn_scalar %s differs from head_dim %lld, which quill does not support", cfg_path.c_str(), v->dump().c_str(),
                    (long long) hc.head_dim);
}

// rope_scaling {"rope_type": "linear" | "llama3", ...}.
void read_rope_scaling(const Config & cfg, const json & rs, const std::string & arch, double rope_theta, HfConfig & hc, Metadata & m) {
    const std::string & cfg_path = cfg.path;
    if (!rs.is_object()) throw_error("%s: rope_scaling must be an object or null", cfg_path.c_str());
    Config rsc{rs, cfg_path + " rope_scaling"};
    std::string type;
    if (const json * t = rsc.find("rope_type"); t && t->is_string()) type = t->get<std::string>();
    else if (const json * t2 = rsc.find("type"); t2 && t2->is_string()) type = t2->get<std::string>();
    std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return (char) std::tolower(c); });
    if (type == "linear") {
        const double f = rsc.get_float("factor", 1.0);
        if (!(f > 0)) throw_error("%s: rope_scaling factor must be positive", cfg_path.c_str());
        m.set_str(arch + ".rope.scaling.type", "linear");
        m.set_f32(arch + ".rope.scaling.factor", (float) f);
    } else if (type == "llama3") {
        const double f = rsc.get_float("factor", 8.0);
        const double lo = rsc.get_float("low_freq_factor", 1.0);
        const double hi = rsc.get_float("high_freq_factor", 4.0);
        // convert_hf_to_gguf reads original_max_position_embeddings from the top-level config.
        const double old_ctx = cfg.get_float("original_max_position_embeddings", 8192.0);
        if (!(f > 0) || !(lo > 0) || !(hi > lo) || !(old_ctx > 0))
            throw_error("%s: invalid llama3 rope_scaling parameters", cfg_path.c_str());
        hc.rope_factors = llama3_rope_factors(rope_theta, hc.head_dim, f, lo, hi, old_ctx);
    } else if (!type.empty() && type != "default") {
        throw_error("%s: unsupported rope_scaling type '%s' (supported: linear, llama3)", cfg_path.c_str(), type.c_str());
    }
}

HfConfig read_config(const Config & cfg, Metadata & m, const std::string & dir) {
    const std::string & cfg_path = cfg.path;
    HfConfig hc;
    std::string model_type;
    if (const json * v = cfg.find("model_type"); v && v->is_string()) model_type = v->get<std::string>();
    std::string hf_class;
    if (const json * v = cfg.find("architectures"); v && v->is_array() && !v->empty() && (*v)[0].is_string())
        hf_class = (*v)[0].get<std::string>();
    hc.arch = arch_from_hf(model_type, hf_class);
    if (!hc.arch) {
        std::string have;
        for (const Arch * a : arch_all()) have += strfmt("%s%s (%s)", have.empty() ? "" : ", ", a->hf_model_types, a->hf_classes);
        throw_error("%s: unsupported model (model_type '%s', architecture '%s'); supported: %s", cfg_path.c_str(), model_type.c_str(),
                    hf_class.c_str(), have.c_str());
    }
    const Arch & A = *hc.arch;
    const std::string arch = A.name;
    auto key = [&](const char * k) { return arch + "." + k; };

    const int64_t kMax = int64_t(1) << 30;
    hc.n_embd = cfg.get_int("hidden_size", 1, kMax);
    hc.n_layer = cfg.get_int("num_hidden_layers", 1, 100000);
    hc.n_ff = cfg.get_int("intermediate_size", 1, kMax);
    hc.n_head = cfg.get_int("num_attention_heads", 1, 1 << 20);
    hc.n_head_kv = cfg.get_int("num_key_value_heads", 1, 1 << 20, hc.n_head);
    hc.n_vocab = cfg.get_int("vocab_size", 1, kMax);
    const int64_t n_ctx = cfg.get_int("max_position_embeddings", 1, kMax, 2048);
    const json * head_dim_v = cfg.find("head_dim");
    if (head_dim_v) {
        hc.head_dim = cfg.int_val(*head_dim_v, "head_dim", 1, 1 << 20);
    } else {
        if (hc.n_embd % hc.n_head != 0)
            throw_error("%s: hidden_size %lld is not a multiple of num_attention_heads %lld", cfg_path.c_str(), (long long) hc.n_embd,
                        (long long) hc.n_head);
        hc.head_dim = hc.n_embd / hc.n_head;
    }
    if (hc.head_dim % 2 != 0) throw_error("%s: head dimension %lld is odd", cfg_path.c_str(), (long long) hc.head_dim);
    if (hc.n_head % hc.n_head_kv != 0)
        throw_error("%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", cfg_path.c_str(), (long long) hc.n_head,
                    (long long) hc.n_head_kv);
    const double eps = cfg.get_float("rms_norm_eps", 1e-6);
    const double rope_theta = cfg.get_float("rope_theta", 10000.0);
    hc.tied = A.hf_tied_default;
    if (const json * v = cfg.find("tie_word_embeddings")) {
        if (!v->is_boolean()) throw_error("%s: tie_word_embeddings must be true or false", cfg_path.c_str());
        hc.tied = v->get<bool>();
    }
    // The activation the entry says, under either key HF uses.
    const char * want_act = A.act == Activation::GELU_TANH ? "gelu_pytorch_tanh" : "silu";
    for (const char * k : {"hidden_act", "hidden_activation"}) {
        if (const json * v = cfg.find(k); v && (!v->is_string() || v->get<std::string>() != want_act))
            throw_error("%s: %s %s is not supported for %s (%s)", cfg_path.c_str(), k, v->dump().c_str(), arch.c_str(), want_act);
    }
    if (const json * v = cfg.find("use_sliding_window"); v && v->is_boolean() && v->get<bool>() && A.swa_pattern == 0)
        throw_error("%s: use_sliding_window is not supported for %s", cfg_path.c_str(), arch.c_str());
    if (const json * v = cfg.find("attention_bias"); v && v->is_boolean() && v->get<bool>() && !arch_has(A, LayerTensor::ATTN_Q_BIAS))
        throw_error("%s: attention_bias is not supported for %s", cfg_path.c_str(), arch.c_str());
    if (cfg.find("attn_logit_softcapping")) throw_error("%s: attn_logit_softcapping is not supported", cfg_path.c_str());

    m.set_str("general.architecture", arch);
    std::string name = base_name(dir);
    if (const json * v = cfg.find("_name_or_path"); v && v->is_string() && !v->get<std::string>().empty()) name = v->get<std::string>();
    m.set_str("general.name", name);
    m.set_u32(key("context_length"), (uint32_t) n_ctx);
    m.set_u32(key("embedding_length"), (uint32_t) hc.n_embd);
    m.set_u32(key("block_count"), (uint32_t) hc.n_layer);
    m.set_u32(key("feed_forward_length"), (uint32_t) hc.n_ff);
    m.set_u32(key("attention.head_count"), (uint32_t) hc.n_head);
    m.set_u32(key("attention.head_count_kv"), (uint32_t) hc.n_head_kv);
    m.set_f32(key("attention.layer_norm_rms_epsilon"), (float) eps);
    m.set_f32(key("rope.freq_base"), (float) rope_theta);
    m.set_u32(key("rope.dimension_count"), (uint32_t) hc.head_dim);
    if (head_dim_v) {
        m.set_u32(key("attention.key_length"), (uint32_t) hc.head_dim);
        m.set_u32(key("attention.value_length"), (uint32_t) hc.head_dim);
    }
    m.set_u32(key("vocab_size"), (uint32_t) hc.n_vocab);
    if (A.swa_pattern > 0) read_sliding_window(cfg, A, hc, m);
    if (const json * v = cfg.find("final_logit_softcapping")) m.set_f32(key("final_logit_softcapping"), (float) cfg.float_val(*v, "final_logit_softcapping"));
    if (const json * rs = cfg.find("rope_scaling")) read_rope_scaling(cfg, *rs, arch, rope_theta, hc, m);
    return hc;
}
// The safetensors files of a checkpoint: the index's shards, model.safetensors, or every *.safetensors file.
// Maps them into mf (which keeps them alive) and returns every tensor by HF name.
std::map<std::string, SourceTensor> read_sources(const std::string & dir, ModelFile & mf,
                                                 std::vector<std::unique_ptr<SafetensorsHeader>> & headers) {
    std::vector<std::string> files;
    std::map<std::string, std::string> weight_map;
    const std::string index_path = dir + "/model.safetensors.index.json";
    if (is_regular_file(index_path)) {
        const json ij = parse_json_file(index_path);
        auto wm = ij.is_object() ? ij.find("weight_map") : ij.end();
        if (!ij.is_object() || wm == ij.end() || !wm->is_object())
            throw_error("%s: missing weight_map object", index_path.c_str());
        std::set<std::string> seen;
        for (auto it = wm->begin(); it != wm->end(); ++it) {
            if (!it.value().is_string()) throw_error("%s: weight_map values must be file names", index_path.c_str());
            const std::string f = it.value().get<std::string>();
            if (f.empty() || f.find('/') != std::string::npos || f[0] == '.')
                throw_error("%s: invalid shard file name '%s'", index_path.c_str(), f.c_str());
            weight_map[it.key()] = f;
            if (seen.insert(f).second) files.push_back(f);
        }
        std::sort(files.begin(), files.end());
    } else if (is_regular_file(dir + "/model.safetensors")) {
        files.push_back("model.safetensors");
    } else {
        files = list_safetensors(dir);
    }
    if (files.empty()) throw_error("%s: no .safetensors files found", dir.c_str());


    std::map<std::string, SourceTensor> src;  // by HF name
    for (const std::string & f : files) {
        const std::string path = dir + "/" + f;
        auto mapping = std::make_shared<MappedFile>(path);
        auto hdr = std::make_unique<SafetensorsHeader>(parse_safetensors(mapping->data, mapping->size, path));
        for (const SafetensorsTensor & t : hdr->tensors) {
            if (src.count(t.name)) throw_error("%s: tensor '%s' appears in more than one file", dir.c_str(), t.name.c_str());
            if (!weight_map.empty()) {
                auto wi = weight_map.find(t.name);
                if (wi == weight_map.end() || wi->second != f)
                    throw_error("%s: tensor '%s' is not listed for this file in model.safetensors.index.json",
                                path.c_str(), t.name.c_str());
            }
            src[t.name] = SourceTensor{&t, mapping.get(), f};
        }
        mf.owners.push_back(mapping);
        headers.push_back(std::move(hdr));
    }
    for (const auto & kv : weight_map)
        if (!src.count(kv.first))
            throw_error("%s: tensor '%s' listed in the index is missing from %s", dir.c_str(), kv.first.c_str(),
                        kv.second.c_str());

    return src;
}

// The tensors a model of this config needs, in file order, by GGUF name, each checked against its shape.
std::vector<std::pair<std::string, const SourceTensor *>> map_tensors(const std::string & dir, const HfConfig & hc,
                                                                      const std::map<std::string, SourceTensor> & src) {
    const Arch & A = *hc.arch;
    std::map<std::string, const SourceTensor *> by_gguf;
    for (const auto & kv : src) {
        const std::string & hf = kv.first;
        std::string g;
        if (!arch_map_hf_name(A, hf, hc.n_layer, &g)) {
            // Old checkpoints store the RoPE inverse frequencies; they are recomputed from config.json.
            if (ends_with(hf, ".self_attn.rotary_emb.inv_freq")) continue;
            throw_error("%s: unexpected tensor '%s' for a %s model", dir.c_str(), hf.c_str(), A.name);
        }
        if (g == k_tensor_output && hc.tied) continue;  // tied: the model uses token_embd
        by_gguf[g] = &kv.second;
    }
    std::vector<std::pair<std::string, const SourceTensor *>> order;
    auto want = [&](const std::string & g, const std::vector<int64_t> & ne) {
        auto it = by_gguf.find(g);
        if (it == by_gguf.end()) throw_error("%s: missing tensor for %s", dir.c_str(), g.c_str());
        const SafetensorsTensor & t = *it->second->info;
        const std::vector<int64_t> got(t.shape.rbegin(), t.shape.rend());
        if (got != ne) {
            std::string want_s, got_s;
            for (size_t i = 0; i < ne.size(); ++i) want_s += (i ? "," : "") + std::to_string(ne[ne.size() - 1 - i]);
            for (size_t i = 0; i < t.shape.size(); ++i) got_s += (i ? "," : "") + std::to_string(t.shape[i]);
            throw_error("%s: tensor '%s' has shape [%s], expected [%s]", dir.c_str(), t.name.c_str(), got_s.c_str(), want_s.c_str());
        }
        order.emplace_back(g, it->second);
    };
    const BlockDims dims{hc.n_embd, hc.n_ff, hc.n_head, hc.n_head_kv, hc.head_dim};
    want(k_tensor_token_embd, {hc.n_embd, hc.n_vocab});
    for (int64_t l = 0; l < hc.n_layer; ++l)
        for (const ArchLayerTensor & t : A.layer) want(layer_tensor_name(l, t.role), layer_tensor_shape(t.role, dims));
    want(k_tensor_output_norm, {hc.n_embd});
    if (by_gguf.count(k_tensor_output)) want(k_tensor_output, {hc.n_embd, hc.n_vocab});
    return order;
}

// Adds one tensor to mf: mapped in place when it can be, else an owned copy (permuted q/k rows for llama, Gemma's
// 1 + w norms in f32, misaligned data).
void add_tensor(ModelFile & mf, const HfConfig & hc, const std::string & g, const SourceTensor & s) {
    const Arch & A = *hc.arch;
    const SafetensorsTensor & t = *s.info;
    const uint8_t * data = s.file->data + t.offset;
    const std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());
    const size_t elsize = safetensors_dtype_size(t.dtype);
    const bool is_q = ends_with(g, (std::string(".") + layer_tensor_gguf(LayerTensor::ATTN_Q)).c_str());
    const bool is_k = ends_with(g, (std::string(".") + layer_tensor_gguf(LayerTensor::ATTN_K)).c_str());
    if (A.hf_permute_qk && (is_q || is_k)) {
        TensorData & td = mf.add_owned_uninit(g, t.type, ne);
        GL_ASSERT(td.nbytes == t.nbytes);
        permute_rows(data, const_cast<uint8_t *>(td.data), is_q ? hc.n_head : hc.n_head_kv, hc.head_dim, (size_t) ne[0] * elsize);
    } else if (A.hf_norm_plus_one && ne.size() == 1 && ends_with(g, "norm.weight")) {
        TensorData & td = mf.add_owned_uninit(g, GL_TYPE_F32, ne);
        float * out = reinterpret_cast<float *>(const_cast<uint8_t *>(td.data));
        std::vector<uint8_t> aligned(data, data + t.nbytes);
        gl_get_type_traits(t.type)->to_float(aligned.data(), out, ne[0]);
        for (int64_t i = 0; i < ne[0]; ++i) out[i] += 1.0f;
    } else if (reinterpret_cast<uintptr_t>(data) % elsize != 0) {
        mf.add_owned(g, t.type, ne, data, t.nbytes);
    } else {
        TensorData td;
        td.name = g;
        td.type = t.type;
        td.ne = ne;
        td.data = data;
        td.nbytes = t.nbytes;
        mf.tensors.push_back(std::move(td));
    }
}

}  // namespace

ModelFile load_hf(const std::string & dir_in, const LoadOptions & opt) {
    std::string dir = dir_in;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();

    ModelFile mf;
    mf.path = dir;
    mf.format = "hf";
    const std::string cfg_path = dir + "/config.json";
    if (!is_regular_file(cfg_path)) throw_error("%s: not a Hugging Face model directory (no config.json)", dir.c_str());
    const json cj = parse_json_file(cfg_path);
    if (!cj.is_object()) throw_error("%s is not a JSON object", cfg_path.c_str());
    const Config cfg{cj, cfg_path};
    Metadata & m = mf.meta;
    const HfConfig hc = read_config(cfg, m, dir);
    const int64_t n_vocab = hc.n_vocab;

    std::vector<std::unique_ptr<SafetensorsHeader>> headers;
    const std::map<std::string, SourceTensor> src = read_sources(dir, mf, headers);
    const auto order = map_tensors(dir, hc, src);
    mf.tensors.reserve(order.size() + 1);
    if (!hc.rope_factors.empty())
        mf.add_owned(k_tensor_rope_freqs, GL_TYPE_F32, {(int64_t) hc.rope_factors.size()}, hc.rope_factors.data(),
                     hc.rope_factors.size() * sizeof(float));
    for (const auto & gs : order) add_tensor(mf, hc, gs.first, *gs.second);

    // ---- tokenizer
    {
        const std::string tok = opt.tokenizer_path.empty() ? dir + "/tokenizer.json" : opt.tokenizer_path;
        if (!is_regular_file(tok))
            throw_error("%s: no tokenizer.json (only Hugging Face fast-tokenizer files are supported)", dir.c_str());
        const std::string tcfg = dir + "/tokenizer_config.json";
        import_hf_tokenizer(tok, is_regular_file(tcfg) ? tcfg : std::string(), m);
        auto set_special = [&](const char * cfg_key, const char * meta_key) {
            if (m.has(meta_key)) return;
            const json * v = cfg.find(cfg_key);
            if (v && (v->is_number_unsigned() || v->is_number_integer()) && v->get<int64_t>() >= 0 &&
                v->get<int64_t>() < n_vocab)
                m.set_u32(meta_key, (uint32_t) v->get<int64_t>());
        };
        set_special("bos_token_id", "tokenizer.ggml.bos_token_id");
        set_special("eos_token_id", "tokenizer.ggml.eos_token_id");
    }
    return mf;
}

}  // namespace quill
