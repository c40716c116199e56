// Hugging Face checkpoint reader: load_hf(dir) (declared in formats/model_file.h).
//
// A directory holding config.json, one or more *.safetensors files (optionally with
// model.safetensors.index.json) and tokenizer.json (+ tokenizer_config.json) becomes a ModelFile with GGUF names:
//   - config.json -> llama.* metadata, the same keys llama.cpp's convert_hf_to_gguf.py writes;
//   - tensors are renamed (model.layers.N.self_attn.q_proj.weight -> blk.N.attn_q.weight, ...); their shapes
//     are reversed ([out, in] -> ne = {in, out});
//   - q_proj and k_proj rows are permuted from HF's rotate-half order to the adjacent-pair order
//     (convert_hf_to_gguf LlamaModel.permute); those two go into owned buffers, everything else stays in the
//     read-only mappings (copied only when misaligned for its element type);
//   - lm_head.weight becomes output.weight unless tie_word_embeddings is true (then there is no output.weight);
//   - rope_scaling {"rope_type": "llama3", ...} adds rope_freqs.weight (F32, ne = {head_dim/2}), computed like
//     convert_hf_to_gguf (including its use of the top-level original_max_position_embeddings, default 8192);
//     "linear" sets llama.rope.scaling.type/factor; other scaling types are rejected.
// Only llama-family checkpoints (model_type llama or mistral) are accepted. Mistral's sliding_window is ignored
// (as llama.cpp does for Mistral 7B v0.1; it only matters past 4096 tokens).
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

// HF name -> GGUF name. Returns false for names this reader does not know.
bool map_name(const std::string & hf, int64_t n_layer, std::string * out) {
    static const std::map<std::string, std::string> top = {
        {"model.embed_tokens.weight", "token_embd.weight"},
        {"model.norm.weight", "output_norm.weight"},
        {"lm_head.weight", "output.weight"},
    };
    auto it = top.find(hf);
    if (it != top.end()) {
        *out = it->second;
        return true;
    }
    static const std::map<std::string, std::string> blk = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
    };
    const std::string pre = "model.layers.";
    if (hf.compare(0, pre.size(), pre) != 0) return false;
    size_t p = pre.size();
    int64_t layer = 0;
    size_t digits = 0;
    while (p < hf.size() && hf[p] >= '0' && hf[p] <= '9' && digits < 9) {
        layer = layer * 10 + (hf[p] - '0');
        ++p;
        ++digits;
    }
    if (digits == 0 || p >= hf.size() || hf[p] != '.' || layer >= n_layer) return false;
    if (digits > 1 && hf[pre.size()] == '0') return false;  // "01" is not a layer number
    auto b = blk.find(hf.substr(p + 1));
    if (b == blk.end()) return false;
    *out = "blk." + std::to_string(layer) + "." + b->second;
    return true;
}

// Copies `src` (rows of row_bytes) into `dst`, reordering rows from HF rotate-half order to adjacent-pair order:
// dst row (h, 2i + j) = src row (h, j * hd/2 + i), for head h, i < hd/2, j in {0, 1}. This is
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

}  // namespace

ModelFile load_hf(const std::string & dir_in, const LoadOptions & opt) {
    std::string dir = dir_in;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();

    ModelFile mf;
    mf.path = dir;
    mf.format = "hf";

    // ---- config.json -> metadata
    const std::string cfg_path = dir + "/config.json";
    if (!is_regular_file(cfg_path)) throw_error("%s: not a Hugging Face model directory (no config.json)", dir.c_str());
    const json cj = parse_json_file(cfg_path);
    if (!cj.is_object()) throw_error("%s is not a JSON object", cfg_path.c_str());
    Config cfg{cj, cfg_path};

    std::string model_type;
    if (const json * v = cfg.find("model_type"); v && v->is_string()) model_type = v->get<std::string>();
    std::string arch_name;
    if (const json * v = cfg.find("architectures"); v && v->is_array() && !v->empty() && (*v)[0].is_string())
        arch_name = (*v)[0].get<std::string>();
    const bool type_ok = model_type == "llama" || model_type == "mistral";
    const bool arch_ok = arch_name == "LlamaForCausalLM" || arch_name == "MistralForCausalLM";
    if (!(type_ok || (model_type.empty() && arch_ok)) || (!arch_name.empty() && !arch_ok))
        throw_error("%s: unsupported model (model_type '%s', architecture '%s'); only llama and mistral "
                    "(LlamaForCausalLM, MistralForCausalLM) are supported",
                    cfg_path.c_str(), model_type.c_str(), arch_name.c_str());

    const int64_t kMax = int64_t(1) << 30;
    const int64_t n_embd = cfg.get_int("hidden_size", 1, kMax);
    const int64_t n_layer = cfg.get_int("num_hidden_layers", 1, 100000);
    const int64_t n_ff = cfg.get_int("intermediate_size", 1, kMax);
    const int64_t n_head = cfg.get_int("num_attention_heads", 1, 1 << 20);
    const int64_t n_head_kv = cfg.get_int("num_key_value_heads", 1, 1 << 20, n_head);
    const int64_t n_vocab = cfg.get_int("vocab_size", 1, kMax);
    const int64_t n_ctx = cfg.get_int("max_position_embeddings", 1, kMax, 2048);
    const json *  head_dim_v = cfg.find("head_dim");
    int64_t head_dim;
    if (head_dim_v) {
        head_dim = cfg.int_val(*head_dim_v, "head_dim", 1, 1 << 20);
    } else {
        if (n_embd % n_head != 0)
            throw_error("%s: hidden_size %lld is not a multiple of num_attention_heads %lld", cfg_path.c_str(),
                        (long long) n_embd, (long long) n_head);
        head_dim = n_embd / n_head;
    }
    if (head_dim % 2 != 0) throw_error("%s: head dimension %lld is odd", cfg_path.c_str(), (long long) head_dim);
    if (n_head % n_head_kv != 0)
        throw_error("%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", cfg_path.c_str(),
                    (long long) n_head, (long long) n_head_kv);
    const double eps = cfg.get_float("rms_norm_eps", 1e-6);
    const double rope_theta = cfg.get_float("rope_theta", 10000.0);
    bool tied = false;
    if (const json * v = cfg.find("tie_word_embeddings")) {
        if (!v->is_boolean()) throw_error("%s: tie_word_embeddings must be true or false", cfg_path.c_str());
        tied = v->get<bool>();
    }

    Metadata & m = mf.meta;
    m.set_str("general.architecture", "llama");
    std::string name = base_name(dir);
    if (const json * v = cfg.find("_name_or_path"); v && v->is_string() && !v->get<std::string>().empty())
        name = v->get<std::string>();
    m.set_str("general.name", name);
    m.set_u32("llama.context_length", (uint32_t) n_ctx);
    m.set_u32("llama.embedding_length", (uint32_t) n_embd);
    m.set_u32("llama.block_count", (uint32_t) n_layer);
    m.set_u32("llama.feed_forward_length", (uint32_t) n_ff);
    m.set_u32("llama.attention.head_count", (uint32_t) n_head);
    m.set_u32("llama.attention.head_count_kv", (uint32_t) n_head_kv);
    m.set_f32("llama.attention.layer_norm_rms_epsilon", (float) eps);
    m.set_f32("llama.rope.freq_base", (float) rope_theta);
    m.set_u32("llama.rope.dimension_count", (uint32_t) head_dim);
    if (head_dim_v) {
        m.set_u32("llama.attention.key_length", (uint32_t) head_dim);
        m.set_u32("llama.attention.value_length", (uint32_t) head_dim);
    }
    m.set_u32("llama.vocab_size", (uint32_t) n_vocab);

    std::vector<float> rope_factors;
    if (const json * rs = cfg.find("rope_scaling")) {
        if (!rs->is_object()) throw_error("%s: rope_scaling must be an object or null", cfg_path.c_str());
        Config rsc{*rs, cfg_path + " rope_scaling"};
        std::string type;
        if (const json * t = rsc.find("rope_type"); t && t->is_string()) type = t->get<std::string>();
        else if (const json * t2 = rsc.find("type"); t2 && t2->is_string()) type = t2->get<std::string>();
        std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return (char) std::tolower(c); });
        if (type == "linear") {
            const double f = rsc.get_float("factor", 1.0);
            if (!(f > 0)) throw_error("%s: rope_scaling factor must be positive", cfg_path.c_str());
            m.set_str("llama.rope.scaling.type", "linear");
            m.set_f32("llama.rope.scaling.factor", (float) f);
        } else if (type == "llama3") {
            const double f = rsc.get_float("factor", 8.0);
            const double lo = rsc.get_float("low_freq_factor", 1.0);
            const double hi = rsc.get_float("high_freq_factor", 4.0);
            // convert_hf_to_gguf reads original_max_position_embeddings from the top level of config.json.
            const double old_ctx = cfg.get_float("original_max_position_embeddings", 8192.0);
            if (!(f > 0) || !(lo > 0) || !(hi > lo) || !(old_ctx > 0))
                throw_error("%s: invalid llama3 rope_scaling parameters", cfg_path.c_str());
            rope_factors = llama3_rope_factors(rope_theta, head_dim, f, lo, hi, old_ctx);
        } else if (!type.empty() && type != "default") {
            throw_error("%s: unsupported rope_scaling type '%s' (supported: linear, llama3)", cfg_path.c_str(),
                        type.c_str());
        }
    }

    // ---- safetensors files
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

    std::vector<std::unique_ptr<SafetensorsHeader>> headers;
    std::map<std::string, SourceTensor>             src;  // by HF name
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

    // ---- map names and check shapes
    std::map<std::string, const SourceTensor *> by_gguf;
    for (const auto & kv : src) {
        const std::string & hf = kv.first;
        std::string g;
        if (!map_name(hf, n_layer, &g)) {
            // Old checkpoints store the RoPE inverse frequencies; they are recomputed from config.json.
            if (ends_with(hf, ".self_attn.rotary_emb.inv_freq")) continue;
            throw_error("%s: unexpected tensor '%s' for a %s model", dir.c_str(), hf.c_str(), model_type.c_str());
        }
        if (g == "output.weight" && tied) continue;  // tied: the model uses token_embd
        by_gguf[g] = &kv.second;
    }

    auto expect = [&](const std::string & g, std::vector<int64_t> ne) {
        auto it = by_gguf.find(g);
        if (it == by_gguf.end()) throw_error("%s: missing tensor for %s", dir.c_str(), g.c_str());
        const SafetensorsTensor & t = *it->second->info;
        std::vector<int64_t> got(t.shape.rbegin(), t.shape.rend());
        if (got != ne) {
            std::string want_s, got_s;
            for (size_t i = 0; i < ne.size(); ++i) want_s += (i ? "," : "") + std::to_string(ne[ne.size() - 1 - i]);
            for (size_t i = 0; i < t.shape.size(); ++i) got_s += (i ? "," : "") + std::to_string(t.shape[i]);
            throw_error("%s: tensor '%s' has shape [%s], expected [%s]", dir.c_str(), t.name.c_str(), got_s.c_str(),
                        want_s.c_str());
        }
    };

    std::vector<std::string> order;
    auto want = [&](const std::string & g, std::vector<int64_t> ne) {
        expect(g, std::move(ne));
        order.push_back(g);
    };
    want("token_embd.weight", {n_embd, n_vocab});
    for (int64_t l = 0; l < n_layer; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        want(b + "attn_norm.weight", {n_embd});
        want(b + "attn_q.weight", {n_embd, n_head * head_dim});
        want(b + "attn_k.weight", {n_embd, n_head_kv * head_dim});
        want(b + "attn_v.weight", {n_embd, n_head_kv * head_dim});
        want(b + "attn_output.weight", {n_head * head_dim, n_embd});
        want(b + "ffn_norm.weight", {n_embd});
        want(b + "ffn_gate.weight", {n_embd, n_ff});
        want(b + "ffn_up.weight", {n_embd, n_ff});
        want(b + "ffn_down.weight", {n_ff, n_embd});
    }
    want("output_norm.weight", {n_embd});
    if (by_gguf.count("output.weight")) want("output.weight", {n_embd, n_vocab});

    // ---- build the tensor list
    mf.tensors.reserve(order.size() + 1);
    if (!rope_factors.empty())
        mf.add_owned("rope_freqs.weight", GL_TYPE_F32, {(int64_t) rope_factors.size()}, rope_factors.data(),
                     rope_factors.size() * sizeof(float));
    for (const std::string & g : order) {
        const SourceTensor &       s = *by_gguf.at(g);
        const SafetensorsTensor &  t = *s.info;
        const uint8_t *            data = s.file->data + t.offset;
        std::vector<int64_t>       ne(t.shape.rbegin(), t.shape.rend());
        const size_t               elsize = safetensors_dtype_size(t.dtype);
        const bool is_q = ends_with(g, ".attn_q.weight");
        const bool is_k = ends_with(g, ".attn_k.weight");
        if (is_q || is_k) {
            TensorData & td = mf.add_owned_uninit(g, t.type, ne);
            GL_ASSERT(td.nbytes == t.nbytes);
            permute_rows(data, const_cast<uint8_t *>(td.data), is_q ? n_head : n_head_kv, head_dim,
                         (size_t) ne[0] * elsize);
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
