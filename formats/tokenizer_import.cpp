// Tokenizer importers: llama2.c tokenizer.bin and Hugging Face tokenizer.json -> tokenizer.ggml.* metadata keys,
// converted the way llama.cpp's converters do, so model/tokenizer.cpp gives the same ids as llama.cpp would on the
// converted GGUF.
#include "formats/byte_reader.h"
#include "formats/model_file.h"
#include "ggml-lite/common.h"
#include "model/tokenizer.h"

#include <nlohmann/json.hpp>


namespace quill {

namespace {

const char * const k_space_marker = "\xe2\x96\x81";  // U+2581

void set_vocab(Metadata & meta, const std::string & model, std::vector<std::string> tokens, std::vector<double> scores,
               std::vector<int64_t> types) {
    meta.set_str("tokenizer.ggml.model", model);
    meta.set("tokenizer.ggml.tokens", MetaValue::of_strs(std::move(tokens)));
    if (!scores.empty()) meta.set("tokenizer.ggml.scores", MetaValue::of_f32s(std::move(scores)));
    meta.set("tokenizer.ggml.token_type", MetaValue::of_i32s(std::move(types)));
}

}  // namespace

// llama2.c tokenizer.bin: int32 max_token_len, then until EOF per token {f32 score, int32 len, len bytes}.
void import_llama2c_tokenizer(const std::string & path, Metadata & meta) {
    MappedFile f(path);
    ByteReader r(f.data, f.size, path);
    int32_t max_len = r.read<int32_t>("max_token_length");
    if (max_len <= 0 || max_len > (1 << 16)) throw_error("%s: not a llama2.c tokenizer (max_token_length %d)", path.c_str(), max_len);

    std::vector<std::string> tokens;
    std::vector<double> scores;
    std::vector<int64_t> types;
    while (r.remaining() > 0) {
        const int32_t id = (int32_t) tokens.size();
        float score = r.read<float>("token score");
        int32_t len = r.read<int32_t>("token length");
        if (len < 0 || len > max_len + 2)  // llama2.c writes "\n<s>\n", two bytes over for its 3-byte max
            throw_error("%s: token %d has invalid length %d (max_token_length %d)", path.c_str(), id, len, max_len);
        r.need((size_t) len, "token text");
        std::string text((const char *) r.ptr(), (size_t) len);
        r.skip((size_t) len, "token text");

        // Types and the special tokens' texts as llama.cpp's llama2c converter assigns them.
        int64_t type = TOKEN_TYPE_NORMAL;
        if (id == 0) {
            text = "<unk>";
            type = TOKEN_TYPE_UNKNOWN;
        } else if (id == 1) {
            text = "<s>";
            type = TOKEN_TYPE_CONTROL;
        } else if (id == 2) {
            text = "</s>";
            type = TOKEN_TYPE_CONTROL;
        } else if (text.empty()) {
            type = TOKEN_TYPE_CONTROL;
        } else if (spm_is_byte_token(text)) {
            type = TOKEN_TYPE_BYTE;
        }
        tokens.push_back(spm_escape_spaces(text));
        scores.push_back(score);
        types.push_back(type);
    }
    if (tokens.size() < 3) throw_error("%s: llama2.c tokenizer has only %zu tokens", path.c_str(), tokens.size());

    set_vocab(meta, "llama", std::move(tokens), std::move(scores), std::move(types));
    meta.set_u32("tokenizer.ggml.unknown_token_id", 0);
    meta.set_u32("tokenizer.ggml.bos_token_id", 1);
    meta.set_u32("tokenizer.ggml.eos_token_id", 2);
    meta.set_bool("tokenizer.ggml.add_bos_token", true);
    meta.set_bool("tokenizer.ggml.add_eos_token", false);
    meta.set_bool("tokenizer.ggml.add_space_prefix", true);
}

namespace {

using json = nlohmann::json;

json read_json(const std::string & path) {
    const std::string text = read_file_bounded(path, 256u << 20);
    try {
        return json::parse(text);
    } catch (const json::exception & e) {
        throw_error("%s: invalid JSON: %s", path.c_str(), e.what());
    }
}

// Calls fn on `node` and, when it is a Sequence, on each of its members (key "pretokenizers"/"normalizers"/...).
template <typename F> void for_each_step(const json & node, F fn) {
    if (!node.is_object()) return;
    fn(node);
    for (const char * k : {"pretokenizers", "normalizers", "decoders", "processors"}) {
        if (node.contains(k) && node[k].is_array())
            for (const auto & sub : node[k]) for_each_step(sub, fn);
    }
}

// A special-token field of tokenizer_config.json: "text" or {"content": "text", ...}.
std::string token_field(const json & cfg, const char * key) {
    if (!cfg.contains(key)) return "";
    const json & v = cfg[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return "";
}

// Token ids come from an untrusted file: each must be an integer (not 1e30, not 3.5, not "7") in [0, kMaxVocab),
// checked before any arithmetic on it, so no id can overflow `id + 1` or index before the vocabulary. The largest
// real vocabularies have about 262K entries.
constexpr int64_t kMaxVocab = 1 << 22;

// A token's text as an error message shows it: at most 64 bytes, control characters as '?', so it stays one line.
std::string shown_token(const std::string & token) {
    std::string s = token.size() > 64 ? token.substr(0, 64) + "..." : token;
    for (char & c : s) {
        if ((unsigned char) c < 0x20 || c == 0x7f) c = '?';
    }
    return s;
}

int64_t token_id(const json & v, const std::string & path, const std::string & token) {
    const std::string shown = shown_token(token);
    if (!v.is_number_integer())
        throw_error("%s: token '%s' has id %s, which is not an integer", path.c_str(), shown.c_str(), v.dump().substr(0, 64).c_str());
    if (v.is_number_unsigned() ? v.get<uint64_t>() >= (uint64_t) kMaxVocab : (v.get<int64_t>() < 0 || v.get<int64_t>() >= kMaxVocab))
        throw_error("%s: token '%s' has id %s, outside [0, %lld)", path.c_str(), shown.c_str(), v.dump().c_str(), (long long) kMaxVocab);
    return v.get<int64_t>();
}

const char * const k_regex_llama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char * const k_regex_gpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

}  // namespace

namespace {

// Content of an added token (tokenizer.json "added_tokens" entry).
std::string added_content(const json & a, const std::string & P) {
    if (!a.is_object() || !a.contains("content") || !a["content"].is_string()) throw_error("%s: an added token has no string 'content'", P.c_str());
    return a["content"].get<std::string>();
}

// The vocabulary, with the added tokens (which may lie beyond the model's vocab); holes in the ids padded.
struct HfVocab {
    std::vector<std::string> tokens;
    std::vector<int64_t>     types;
    std::string              unk_text;
};

HfVocab read_vocab(const json & model, const json & vocab, const json & added, const std::string & P) {
    if (!vocab.is_object()) throw_error("%s: model.vocab is not an object of token -> id", P.c_str());
    int64_t n = 0;
    std::string last_token;  // the token with the largest id
    auto grow = [&](int64_t id, const std::string & text) {
        if (id + 1 > n) n = id + 1, last_token = text;
    };
    for (auto it = vocab.begin(); it != vocab.end(); ++it) grow(token_id(it.value(), P, it.key()), it.key());
    for (const auto & a : added) grow(token_id(a.value("id", json()), P, added_content(a, P)), added_content(a, P));
    if (n <= 0) throw_error("%s: the vocabulary is empty", P.c_str());
    // Holes in the ids are padded (below); a few ids far beyond the entries would only allocate padding.
    const int64_t n_entries = (int64_t) vocab.size() + (int64_t) added.size();
    if (n > 2 * n_entries + 65536)
        throw_error("%s: token '%s' has id %lld but there are only %lld tokens", P.c_str(), shown_token(last_token).c_str(), (long long) (n - 1),
                    (long long) n_entries);

    HfVocab v;
    v.tokens.resize((size_t) n);
    v.types.assign((size_t) n, TOKEN_TYPE_UNDEFINED);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const int64_t id = token_id(it.value(), P, it.key());
        v.tokens[(size_t) id] = it.key();
        v.types[(size_t) id] = TOKEN_TYPE_NORMAL;
    }
    v.unk_text = model.contains("unk_token") && model["unk_token"].is_string() ? model["unk_token"].get<std::string>() : "";
    for (const auto & a : added) {
        const int64_t id = token_id(a.value("id", json()), P, added_content(a, P));
        v.tokens[(size_t) id] = added_content(a, P);
        bool special = a.value("special", false);
        v.types[(size_t) id] = v.tokens[(size_t) id] == v.unk_text ? TOKEN_TYPE_UNKNOWN : special ? TOKEN_TYPE_CONTROL : TOKEN_TYPE_USER_DEFINED;
    }
    for (int64_t i = 0; i < n; ++i) {
        if (v.types[(size_t) i] == TOKEN_TYPE_UNDEFINED) {  // a hole in the ids: llama.cpp's converter pads
            v.tokens[(size_t) i] = "[PAD" + std::to_string(i) + "]";
            v.types[(size_t) i] = TOKEN_TYPE_UNUSED;
        }
    }
    return v;
}

// Which flavour: SentencePiece-style (byte fallback, spaces replaced by U+2581) or byte-level BPE.
struct HfFlavour {
    bool        prepend_space = false, replace_space = false, byte_level = false, byte_level_prefix = false;
    std::string split_regex;
    bool        has_split = false;
};

HfFlavour detect_flavour(const json & tj) {
    HfFlavour f;
    for_each_step(tj.value("normalizer", json()), [&](const json & s) {
        const std::string t = s.value("type", "");
        if (t == "Prepend" && s.value("prepend", "") == k_space_marker) f.prepend_space = true;
        if (t == "Replace" && s.contains("pattern") && s["pattern"].value("String", "") == " " && s.value("content", "") == k_space_marker)
            f.replace_space = true;
    });
    for_each_step(tj.value("pre_tokenizer", json()), [&](const json & s) {
        const std::string t = s.value("type", "");
        if (t == "Metaspace") {
            f.replace_space = true;
            f.prepend_space = s.value("prepend_scheme", std::string("always")) != "never" && s.value("add_prefix_space", true);
        }
        if (t == "ByteLevel") {
            f.byte_level = true;
            f.byte_level_prefix = s.value("add_prefix_space", false);
            if (s.value("use_regex", true) && !f.has_split) {
                f.has_split = true;
                f.split_regex = k_regex_gpt2;
            }
        }
        if (t == "Split") {
            f.has_split = true;
            if (s.contains("pattern") && s["pattern"].contains("Regex")) f.split_regex = s["pattern"]["Regex"].get<std::string>();
            else f.split_regex = "<non-regex split>";
        }
    });
    return f;
}

// SPM: llama.cpp takes scores from tokenizer.model; SentencePiece BPE orders its normal pieces by score
// (score = -index), which tokenizer.json keeps as the id order, so the same scores follow from the ids.
void write_spm_vocab(HfVocab && v, const HfFlavour & f, Metadata & meta) {
    const int64_t n = (int64_t) v.tokens.size();
    std::vector<double> scores((size_t) n, 0.0);
    int64_t k = 0;
    for (int64_t i = 0; i < n; ++i) {
        if (v.types[(size_t) i] != TOKEN_TYPE_NORMAL) continue;
        if (spm_is_byte_token(v.tokens[(size_t) i])) {
            v.types[(size_t) i] = TOKEN_TYPE_BYTE;
            continue;
        }
        scores[(size_t) i] = -(float) k++;
    }
    set_vocab(meta, "llama", std::move(v.tokens), std::move(scores), std::move(v.types));
    meta.set_str("tokenizer.ggml.pre", "default");
    meta.set_bool("tokenizer.ggml.add_space_prefix", f.prepend_space);
}

void write_byte_level_vocab(HfVocab && v, const HfFlavour & f, const json & model, Metadata & meta, const std::string & P) {
    std::string pre;
    if (f.split_regex == k_regex_llama3) pre = "llama-bpe";
    else if (f.split_regex == k_regex_gpt2) pre = "gpt-2";
    else
        throw_error("%s: unsupported pre-tokenizer regex '%s' (quill knows the GPT-2 and Llama-3 regexes)", P.c_str(), f.split_regex.c_str());
    if (f.byte_level_prefix) throw_error("%s: ByteLevel add_prefix_space=true is not supported", P.c_str());
    std::vector<std::string> merges;
    for (const auto & m : model.at("merges")) {
        if (m.is_string()) merges.push_back(m.get<std::string>());
        else if (m.is_array() && m.size() == 2) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
        else throw_error("%s: a merge is neither \"a b\" nor [\"a\", \"b\"]", P.c_str());
    }
    set_vocab(meta, "gpt2", std::move(v.tokens), {}, std::move(v.types));
    meta.set_str("tokenizer.ggml.pre", pre);
    meta.set("tokenizer.ggml.merges", MetaValue::of_strs(std::move(merges)));
}

// Special ids and flags: tokenizer_config.json first, then the post-processor template, then the model.
void write_special_tokens(const json & tj, const json & cfg, const json & vocab, const json & added, const std::string & unk_text, Metadata & meta,
                          const std::string & P) {
    auto find_id = [&](const std::string & text) -> int64_t {
        if (text.empty()) return -1;
        for (const auto & a : added)
            if (added_content(a, P) == text) return token_id(a.value("id", json()), P, text);
        if (vocab.contains(text)) return token_id(vocab[text], P, text);
        return -1;
    };
    int64_t bos = find_id(token_field(cfg, "bos_token"));
    int64_t eos = find_id(token_field(cfg, "eos_token"));
    int64_t pad = find_id(token_field(cfg, "pad_token"));
    int64_t unk = find_id(unk_text);
    if (unk < 0) unk = find_id(token_field(cfg, "unk_token"));
    int add_bos = -1;  // -1: not stated
    const json pp = tj.value("post_processor", json());
    if (pp.is_object() && pp.value("type", "") == "TemplateProcessing" && pp.contains("single") && pp["single"].is_array() && !pp["single"].empty()) {
        const json & first = pp["single"][0];
        if (first.contains("SpecialToken")) {
            int64_t id = find_id(first["SpecialToken"].value("id", ""));
            if (id >= 0) {
                add_bos = 1;
                if (bos < 0) bos = id;
            } else {
                add_bos = 0;
            }
        } else {
            add_bos = 0;
        }
    }
    if (cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()) add_bos = cfg["add_bos_token"].get<bool>();
    if (bos >= 0) meta.set_u32("tokenizer.ggml.bos_token_id", (uint32_t) bos);
    if (eos >= 0) meta.set_u32("tokenizer.ggml.eos_token_id", (uint32_t) eos);
    if (unk >= 0) meta.set_u32("tokenizer.ggml.unknown_token_id", (uint32_t) unk);
    if (pad >= 0) meta.set_u32("tokenizer.ggml.padding_token_id", (uint32_t) pad);
    if (add_bos >= 0) meta.set_bool("tokenizer.ggml.add_bos_token", add_bos == 1);
    if (cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()) meta.set_bool("tokenizer.ggml.add_eos_token", cfg["add_eos_token"].get<bool>());
    if (cfg.contains("chat_template")) {
        const json & ct = cfg["chat_template"];
        if (ct.is_string()) {
            meta.set_str("tokenizer.chat_template", ct.get<std::string>());
        } else if (ct.is_array()) {  // [{"name": "default", "template": "..."}, ...]
            for (const auto & e : ct)
                if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
                    meta.set_str("tokenizer.chat_template", e["template"].get<std::string>());
        }
    }
}

}  // namespace

void import_hf_tokenizer(const std::string & tokenizer_json_path, const std::string & tokenizer_config_path, Metadata & meta) {
    const std::string & P = tokenizer_json_path;
    json tj = read_json(P);
    json cfg = tokenizer_config_path.empty() ? json::object() : read_json(tokenizer_config_path);
    try {
        const json & model = tj.at("model");
        const std::string type = model.value("type", "");
        if (type != "BPE") throw_error("%s: tokenizer model type '%s' is not supported (quill imports BPE tokenizers)", P.c_str(), type.c_str());
        const json & vocab = model.at("vocab");
        const json added = tj.contains("added_tokens") && tj["added_tokens"].is_array() ? tj["added_tokens"] : json::array();
        HfVocab v = read_vocab(model, vocab, added, P);
        const std::string unk_text = v.unk_text;
        const HfFlavour f = detect_flavour(tj);
        if (model.value("byte_fallback", false) && f.replace_space && !f.byte_level) write_spm_vocab(std::move(v), f, meta);
        else if (f.byte_level) write_byte_level_vocab(std::move(v), f, model, meta, P);
        else throw_error("%s: BPE tokenizer is neither SentencePiece-style (byte_fallback + '▁' normalizer) nor byte-level", P.c_str());
        write_special_tokens(tj, cfg, vocab, added, unk_text, meta, P);
    } catch (const json::exception & e) {
        throw_error("%s: malformed tokenizer.json: %s", P.c_str(), e.what());
    }
}

}  // namespace quill
