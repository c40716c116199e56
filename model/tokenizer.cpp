#include "model/tokenizer.h"

#include "ggml-lite/common.h"
#include "model/unicode.h"

#include <algorithm>
#include <queue>

namespace quill {

namespace {
const char * const k_space_marker = "\xe2\x96\x81";  // U+2581, SentencePiece's visible space
bool is_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
}  // namespace

std::string spm_escape_spaces(const std::string & text) {
    std::string out;
    out.reserve(text.size() + text.size() / 4);
    for (char c : text) {
        if (c == ' ') out += k_space_marker;
        else out += c;
    }
    return out;
}

std::string spm_unescape_spaces(const std::string & text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size();) {
        if (text.compare(i, 3, k_space_marker) == 0) {
            out += ' ';
            i += 3;
        } else {
            out += text[i++];
        }
    }
    return out;
}

bool spm_is_byte_token(const std::string & text) {
    return text.size() == 6 && text.compare(0, 3, "<0x") == 0 && is_hex(text[3]) && is_hex(text[4]) && text[5] == '>';
}

namespace {

// Reads an integer key as a token id: absent => def; negative or >= n_vocab (GGUF writes -1 as u32 0xFFFFFFFF) => -1.
int32_t read_id(const Metadata & meta, const char * key, int32_t def, int32_t n_vocab) {
    const MetaValue * v = meta.find(key);
    if (!v) return def < n_vocab ? def : -1;  // SPM's default ids (bos 1, eos 2) do not exist in a 1- or 2-token vocabulary
    if (!(meta_type_is_int(v->type) || meta_type_is_float(v->type)))
        throw_error("tokenizer: metadata key '%s' has type %s, expected an integer", key, meta_type_name(v->type));
    if (meta_type_is_unsigned(v->type) && v->u > (uint64_t) INT64_MAX) return -1;  // -1 written as a u64
    int64_t id = 0;
    try {
        id = v->as_int();
    } catch (const Error & e) {
        throw_error("tokenizer: metadata key '%s': %s", key, e.what());
    }
    return (id >= 0 && id < n_vocab) ? (int32_t) id : -1;
}

// One piece of the input after special-token partitioning: raw text [off, off+len) or a token.
struct Fragment {
    int32_t token;  // -1 for raw text
    size_t off, len;
};

// A symbol of the merge loops: a byte range of the text, linked to its neighbours; n == 0 once merged away.
struct Symbol {
    int prev, next;
    size_t off, n;
};

}  // namespace

Tokenizer Tokenizer::from_metadata(const Metadata & meta) {
    Tokenizer t;
    const std::string model = meta.get_str("tokenizer.ggml.model", "");
    if (model.empty()) throw_error("tokenizer: missing metadata key 'tokenizer.ggml.model'");
    if (model == "llama") t.kind_ = Kind::SPM;
    else if (model == "gpt2") t.kind_ = Kind::BPE;
    else throw_error("tokenizer: unsupported tokenizer.ggml.model '%s' (quill supports \"llama\" and \"gpt2\")", model.c_str());

    const auto & texts = meta.get_strs_req("tokenizer.ggml.tokens");
    if (texts.empty()) throw_error("tokenizer: tokenizer.ggml.tokens is empty");
    if (texts.size() > (size_t) INT32_MAX) throw_error("tokenizer: tokenizer.ggml.tokens is too large");
    const int32_t n = (int32_t) texts.size();
    t.tokens_.resize(n);
    t.token_to_id_.reserve(n);
    for (int32_t i = 0; i < n; ++i) {
        t.tokens_[i].text = texts[i];
        t.max_token_len_ = std::max(t.max_token_len_, texts[i].size());
        t.token_to_id_.emplace(texts[i], i);  // first occurrence wins on duplicates
    }
    if (const MetaValue * v = meta.find("tokenizer.ggml.scores")) {
        if (v->type != MetaType::ARRAY || v->array_size() != (size_t) n || v->af.size() != (size_t) n)
            throw_error("tokenizer: tokenizer.ggml.scores must be a float array of %d entries", n);
        for (int32_t i = 0; i < n; ++i) t.tokens_[i].score = (float) v->af[i];
    }
    if (const MetaValue * v = meta.find("tokenizer.ggml.token_type")) {
        if (v->type != MetaType::ARRAY || v->array_size() != (size_t) n)
            throw_error("tokenizer: tokenizer.ggml.token_type must be an integer array of %d entries", n);
        for (int32_t i = 0; i < n; ++i) {
            int64_t ty = v->ai.size() == (size_t) n ? v->ai[i] : v->au.size() == (size_t) n ? (int64_t) v->au[i] : -1;
            if (ty < 0 || ty > TOKEN_TYPE_BYTE) throw_error("tokenizer: token %d has invalid token_type %lld", i, (long long) ty);
            t.tokens_[i].type = (int32_t) ty;
        }
    }

    const bool spm = t.kind_ == Kind::SPM;
    t.pre_ = meta.get_str("tokenizer.ggml.pre", spm ? "default" : "");
    t.add_bos_ = spm;
    t.add_space_prefix_ = spm;
    if (!spm) {
        if (t.pre_ == "gpt-2" || t.pre_ == "gpt2") {
            t.pre_kind_ = (int) PreTokenizer::GPT2;
        } else if (t.pre_ == "llama-bpe" || t.pre_ == "llama3" || t.pre_ == "llama-v3") {
            t.pre_kind_ = (int) PreTokenizer::LLAMA3;
            t.ignore_merges_ = true;
            t.add_bos_ = true;
        } else {
            throw_error("tokenizer: unsupported BPE pre-tokenizer tokenizer.ggml.pre='%s' (quill supports \"gpt-2\" and \"llama-bpe\")",
                        t.pre_.c_str());
        }
        const auto & merges = meta.get_strs_req("tokenizer.ggml.merges");
        t.merge_rank_.reserve(merges.size());
        for (size_t r = 0; r < merges.size(); ++r) {
            const std::string & m = merges[r];
            size_t sp = m.find(' ', 1);  // the left part may itself start with a space
            if (sp == std::string::npos || sp + 1 >= m.size())
                throw_error("tokenizer: merge %zu ('%s') is not of the form \"left right\"", r, m.c_str());
            std::string key = m.substr(0, sp) + '\xff' + m.substr(sp + 1);
            t.merge_rank_.emplace(std::move(key), (int) r);
        }
    }

    t.bos_ = read_id(meta, "tokenizer.ggml.bos_token_id", spm ? 1 : -1, n);
    t.eos_ = read_id(meta, "tokenizer.ggml.eos_token_id", spm ? 2 : -1, n);
    t.unk_ = read_id(meta, "tokenizer.ggml.unknown_token_id", spm ? 0 : -1, n);
    t.pad_ = read_id(meta, "tokenizer.ggml.padding_token_id", -1, n);
    t.eot_ = read_id(meta, "tokenizer.ggml.eot_token_id", -1, n);
    t.eom_ = read_id(meta, "tokenizer.ggml.eom_token_id", -1, n);
    t.add_bos_ = meta.get_bool("tokenizer.ggml.add_bos_token", t.add_bos_);
    t.add_eos_ = meta.get_bool("tokenizer.ggml.add_eos_token", false);
    t.add_space_prefix_ = meta.get_bool("tokenizer.ggml.add_space_prefix", t.add_space_prefix_);
    t.chat_template_ = meta.get_str("tokenizer.chat_template", "");
    if (t.add_bos_ && t.bos_ < 0) t.add_bos_ = false;
    if (t.add_eos_ && t.eos_ < 0) t.add_eos_ = false;

    // End-of-generation tokens: eos, eot, eom, and control tokens with the usual end-of-turn names.
    static const char * const k_eog_texts[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>",
                                               "<|eom_id|>", "<EOT>", "<|end_of_text|>", "<｜end▁of▁sentence｜>"};
    for (const char * s : k_eog_texts) {
        int32_t id = t.find_token(s);
        if (id < 0 || t.tokens_[id].type != TOKEN_TYPE_CONTROL) continue;
        if (t.eot_ < 0 && std::string(s) != "<|end_of_text|>" && std::string(s) != "<|eom_id|>") t.eot_ = id;
        t.eog_.push_back(id);
    }
    for (int32_t id : {t.eos_, t.eot_, t.eom_})
        if (id >= 0) t.eog_.push_back(id);
    std::sort(t.eog_.begin(), t.eog_.end());
    t.eog_.erase(std::unique(t.eog_.begin(), t.eog_.end()), t.eog_.end());

    for (int32_t i = 0; i < n; ++i) {
        int32_t ty = t.tokens_[i].type;
        if ((ty == TOKEN_TYPE_CONTROL || ty == TOKEN_TYPE_USER_DEFINED || ty == TOKEN_TYPE_UNKNOWN) && !t.tokens_[i].text.empty())
            t.special_.push_back(i);
    }
    std::stable_sort(t.special_.begin(), t.special_.end(),
                     [&](int32_t a, int32_t b) { return t.tokens_[a].text.size() > t.tokens_[b].text.size(); });

    if (spm) {
        t.byte_tokens_.assign(256, -1);
        for (int b = 0; b < 256; ++b) {
            char name[8];
            snprintf(name, sizeof(name), "<0x%02X>", b);
            int32_t id = t.find_token(name);
            if (id < 0) id = t.find_token(std::string(1, (char) b));  // some vocabs store raw bytes
            t.byte_tokens_[b] = id;
        }
    }
    return t;
}

void Tokenizer::check_id(int32_t id) const {
    if (id < 0 || id >= n_vocab()) throw_error("token id %d is out of range (vocabulary has %d tokens)", id, n_vocab());
}

const std::string & Tokenizer::token_text(int32_t id) const {
    check_id(id);
    return tokens_[id].text;
}

float Tokenizer::token_score(int32_t id) const {
    check_id(id);
    return tokens_[id].score;
}

int32_t Tokenizer::token_type(int32_t id) const {
    check_id(id);
    return tokens_[id].type;
}

int32_t Tokenizer::find_token(const std::string & text) const {
    auto it = token_to_id_.find(text);
    return it == token_to_id_.end() ? -1 : it->second;
}

bool Tokenizer::is_eog(int32_t id) const { return std::binary_search(eog_.begin(), eog_.end(), id); }

int32_t Tokenizer::byte_token(uint8_t b) const { return byte_tokens_.empty() ? -1 : byte_tokens_[b]; }

int Tokenizer::bpe_rank(const std::string & left, const std::string & right) const {
    std::string key;
    key.reserve(left.size() + right.size() + 1);
    key += left;
    key += '\xff';
    key += right;
    auto it = merge_rank_.find(key);
    return it == merge_rank_.end() ? -1 : it->second;
}

// ---------------------------------------------------------------------------------------------------------------
// encode

std::vector<int32_t> Tokenizer::encode(const std::string & text, bool add_special, bool parse_special) const {
    // 1. Cut the text on special-token strings, longest first (each pass splits the remaining raw fragments).
    std::vector<Fragment> frags;
    if (!text.empty()) frags.push_back({-1, 0, text.size()});
    std::vector<Fragment> next;
    for (int32_t id : special_) {
        const TokenData & td = tokens_[id];
        if (!parse_special && (td.type == TOKEN_TYPE_CONTROL || td.type == TOKEN_TYPE_UNKNOWN)) continue;
        const std::string & s = td.text;
        next.clear();
        bool changed = false;
        for (const Fragment & f : frags) {
            if (f.token >= 0 || f.len < s.size()) {
                next.push_back(f);
                continue;
            }
            size_t pos = f.off, end = f.off + f.len;
            while (pos < end) {
                size_t hit = text.find(s, pos);
                if (hit == std::string::npos || hit + s.size() > end) break;
                if (hit > pos) next.push_back({-1, pos, hit - pos});
                next.push_back({id, hit, s.size()});
                pos = hit + s.size();
                changed = true;
            }
            if (pos < end) next.push_back({-1, pos, end - pos});
        }
        if (changed) frags.swap(next);
    }

    // 2. Tokenize the raw fragments.
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 4);
    if (add_special && add_bos_) out.push_back(bos_);
    bool prev_special = true;  // SPM: a raw fragment at the start or after a special token gets the space prefix
    for (const Fragment & f : frags) {
        if (f.token >= 0) {
            out.push_back(f.token);
            prev_special = true;
            continue;
        }
        std::string piece = text.substr(f.off, f.len);
        if (kind_ == Kind::SPM) {
            if (add_space_prefix_ && prev_special) piece.insert(piece.begin(), ' ');
            encode_spm(spm_escape_spaces(piece), out);
        } else {
            encode_bpe(piece, out);
        }
        prev_special = false;
    }
    if (add_special && add_eos_) out.push_back(eos_);
    return out;
}

// SentencePiece BPE: merge the best-scoring adjacent pair whose concatenation is a token, until none is.
void Tokenizer::encode_spm(const std::string & text, std::vector<int32_t> & out) const {
    if (text.empty()) return;
    std::vector<Symbol> sym;
    sym.reserve(text.size());
    for (size_t off = 0; off < text.size();) {
        size_t n = std::min(utf8_seq_len((uint8_t) text[off]), text.size() - off);
        int idx = (int) sym.size();
        sym.push_back({idx - 1, off + n < text.size() ? idx + 1 : -1, off, n});
        off += n;
    }

    struct Bigram {
        int left, right;
        float score;
        size_t size;
    };
    // Highest score first; on equal scores the leftmost pair.
    auto worse = [](const Bigram & a, const Bigram & b) { return a.score < b.score || (a.score == b.score && a.left > b.left); };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
    std::string buf;
    auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0 || sym[left].n + sym[right].n > max_token_len_) return;
        buf.assign(text, sym[left].off, sym[left].n + sym[right].n);
        auto it = token_to_id_.find(buf);
        if (it == token_to_id_.end()) return;
        queue.push({left, right, tokens_[it->second].score, buf.size()});
    };
    for (int i = 1; i < (int) sym.size(); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
        Bigram bg = queue.top();
        queue.pop();
        Symbol & l = sym[bg.left];
        Symbol & r = sym[bg.right];
        if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;  // stale: one side changed since it was queued
        l.n += r.n;
        r.n = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = bg.left;
        try_add(l.prev, bg.left);
        try_add(bg.left, l.next);
    }

    for (int i = 0; i != -1; i = sym[i].next) {
        const Symbol & s = sym[i];
        buf.assign(text, s.off, s.n);
        auto it = token_to_id_.find(buf);
        if (it != token_to_id_.end()) {
            out.push_back(it->second);
            continue;
        }
        for (unsigned char c : buf) {  // byte fallback
            int32_t id = byte_token(c);
            if (id < 0) id = unk_;
            if (id >= 0) out.push_back(id);
        }
    }
}

// Byte-level BPE: pre-tokenize, map each piece to the byte-level alphabet, then merge the lowest-ranked adjacent
// pair (ties: leftmost) until no pair has a merge. Buffers are reused across pieces.
void Tokenizer::encode_bpe(const std::string & text, std::vector<int32_t> & out) const {
    struct Bigram {
        int left, right;
        int rank;
        size_t size;
    };
    // Heap order: the lowest rank on top; on equal ranks the leftmost pair.
    auto worse = [](const Bigram & a, const Bigram & b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };

    std::vector<uint32_t> cpts = utf8_to_cpts(text);
    std::vector<size_t> lens;
    pretokenize((PreTokenizer) pre_kind_, cpts, lens);
    std::string bytes, word, key;
    std::vector<Symbol> sym;
    std::vector<Bigram> heap;
    auto try_add = [&](int left, int right) {
        if (left < 0 || right < 0) return;
        key.assign(word, sym[left].off, sym[left].n);
        key += '\xff';
        key.append(word, sym[right].off, sym[right].n);
        auto it = merge_rank_.find(key);
        if (it == merge_rank_.end()) return;
        heap.push_back({left, right, it->second, sym[left].n + sym[right].n});
        std::push_heap(heap.begin(), heap.end(), worse);
    };

    size_t c = 0;
    for (size_t len : lens) {
        bytes.clear();
        for (size_t k = 0; k < len; ++k) utf8_append(bytes, cpts[c + k]);
        c += len;
        word = byte_level_encode(bytes);
        if (ignore_merges_) {  // llama-bpe: a piece that is a token is emitted whole
            int32_t id = find_token(word);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
        }
        sym.clear();
        for (size_t off = 0; off < word.size();) {
            size_t n = std::min(utf8_seq_len((uint8_t) word[off]), word.size() - off);
            int idx = (int) sym.size();
            sym.push_back({idx - 1, off + n < word.size() ? idx + 1 : -1, off, n});
            off += n;
        }
        heap.clear();
        for (int i = 1; i < (int) sym.size(); ++i) try_add(i - 1, i);
        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), worse);
            Bigram bg = heap.back();
            heap.pop_back();
            Symbol & l = sym[bg.left];
            Symbol & r = sym[bg.right];
            if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;  // stale
            l.n += r.n;
            r.n = 0;
            l.next = r.next;
            if (r.next >= 0) sym[r.next].prev = bg.left;
            try_add(l.prev, bg.left);
            try_add(bg.left, l.next);
        }
        for (int i = 0; i != -1 && !sym.empty(); i = sym[i].next) {
            key.assign(word, sym[i].off, sym[i].n);
            int32_t id = find_token(key);
            if (id >= 0) {
                out.push_back(id);
                continue;
            }
            for (char ch : std::string(key)) {  // llama.cpp's fallback: single-byte tokens where they exist, else dropped
                int32_t b = find_token(std::string(1, ch));
                if (b >= 0) out.push_back(b);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// decode

std::string Tokenizer::token_to_piece(int32_t id, bool special) const {
    check_id(id);
    const TokenData & td = tokens_[id];
    switch (td.type) {
        case TOKEN_TYPE_CONTROL:
        case TOKEN_TYPE_UNKNOWN: return special ? td.text : std::string();
        case TOKEN_TYPE_USER_DEFINED: return td.text;
        case TOKEN_TYPE_UNUSED:
        case TOKEN_TYPE_UNDEFINED: return std::string();
        case TOKEN_TYPE_BYTE:
            if (kind_ == Kind::SPM) {
                if (spm_is_byte_token(td.text))
                    return std::string(1, (char) strtol(td.text.substr(3, 2).c_str(), nullptr, 16));
                return td.text;
            }
            break;
        default: break;
    }
    if (kind_ == Kind::SPM) return spm_unescape_spaces(td.text);
    std::string out;
    size_t pos = 0;
    while (pos < td.text.size()) {
        size_t start = pos;
        uint32_t cp = utf8_next(td.text, pos);
        int b = unicode_to_byte(cp);
        if (b >= 0) out += (char) b;
        else out.append(td.text, start, pos - start);  // not byte-level: keep the text
    }
    return out;
}

std::string Tokenizer::decode(const std::vector<int32_t> & ids, bool special) const {
    std::string out;
    for (size_t i = 0; i < ids.size(); ++i) {
        std::string piece = token_to_piece(ids[i], special);
        if (i == 0 && add_space_prefix_ && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
        out += piece;
    }
    return out;
}

}  // namespace quill
