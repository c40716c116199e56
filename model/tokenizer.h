// Text <-> token ids, built from metadata alone (GGUF key names), matching llama.cpp's tokenizers id for id.
//
// Keys read (all under tokenizer.ggml.):
//   model       "llama" = SentencePiece BPE with byte fallback (SPM), "gpt2" = byte-level BPE.     required
//   pre         BPE pre-tokenizer: "gpt-2" (alias "gpt2") or "llama-bpe" (aliases "llama3", "llama-v3").
//   tokens      string array, the vocabulary.                                                     required
//   scores      f32 array (SPM merge priorities; default 0).
//   token_type  i32 array: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte (default normal).
//   merges      string array "left right" in rank order (BPE; required for "gpt2").
//   bos_token_id, eos_token_id, unknown_token_id, padding_token_id, eot_token_id, eom_token_id
//               ids; absent or out of range => none (-1). SPM defaults: bos 1, eos 2, unk 0.
//   add_bos_token, add_eos_token, add_space_prefix   bools. Defaults: SPM add_bos and add_space_prefix true;
//               BPE false, except pre "llama-bpe" which adds BOS (as llama.cpp does).
//   tokenizer.chat_template (string), kept for the chat front ends.
//
// Algorithms (llama.cpp's, reimplemented):
//   SPM: the text gets a leading space when add_space_prefix (and after every special token), spaces become
//        U+2581, the text is cut into UTF-8 characters, and the adjacent pair whose concatenation is a token with
//        the highest score is merged (ties: leftmost) until no pair is a token; a symbol that is not a token becomes
//        its bytes' <0xNN> tokens (or unk).
//   BPE: the pre-tokenizer regex cuts the text, each piece is mapped to GPT-2's byte-level alphabet and merged by
//        lowest merge rank (ties: leftmost). With pre "llama-bpe" (ignore_merges) a piece that is itself a token is
//        emitted whole.
//   Special tokens: control and unknown tokens are recognised in the text only when parse_special; user-defined
//        tokens always are (llama.cpp's rule). Longer token strings win.
//
// Errors: from_metadata throws quill::Error naming the missing or malformed key; token_to_piece/decode/token_text
// throw quill::Error on an id outside [0, n_vocab). encode never throws (malformed UTF-8 falls back to bytes).
#pragma once

#include "formats/metadata.h"

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace quill {

enum TokenType : int32_t {
    TOKEN_TYPE_UNDEFINED = 0,
    TOKEN_TYPE_NORMAL = 1,
    TOKEN_TYPE_UNKNOWN = 2,
    TOKEN_TYPE_CONTROL = 3,
    TOKEN_TYPE_USER_DEFINED = 4,
    TOKEN_TYPE_UNUSED = 5,
    TOKEN_TYPE_BYTE = 6,
};

// SentencePiece text conventions, shared with the importers: ' ' <-> U+2581, and "<0xNN>" byte tokens.
std::string spm_escape_spaces(const std::string & text);
std::string spm_unescape_spaces(const std::string & text);
bool spm_is_byte_token(const std::string & text);

class Tokenizer {
public:
    enum class Kind { SPM, BPE };

    static Tokenizer from_metadata(const Metadata & meta);

    // add_special: prepend BOS when add_bos() (and append EOS when the vocab says add_eos_token).
    // parse_special: recognise control/unknown token strings such as "<s>" or "<|eot_id|>" in the text.
    std::vector<int32_t> encode(const std::string & text, bool add_special, bool parse_special = false) const;

    // The bytes to print for one token: SPM U+2581 -> ' ', <0xNN> -> that byte; byte-level BPE alphabet -> bytes.
    // Control and unknown tokens give "" unless `special`, then their text. Unused tokens give "". The bytes of
    // one token may be an incomplete UTF-8 sequence (byte tokens); callers streaming text must buffer.
    std::string token_to_piece(int32_t id, bool special = false) const;

    // Concatenated pieces, like llama.cpp's common_detokenize: the first token's piece loses one leading space when
    // add_space_prefix (SPM), so decode(encode(x, false)) == x. No clean-up of spaces before punctuation.
    std::string decode(const std::vector<int32_t> & ids, bool special = false) const;

    int32_t n_vocab() const { return (int32_t) tokens_.size(); }
    int32_t bos() const { return bos_; }
    int32_t eos() const { return eos_; }
    int32_t eot() const { return eot_; }
    int32_t unk() const { return unk_; }
    int32_t pad() const { return pad_; }
    bool is_eog(int32_t id) const;  // eos, eot, eom and control tokens such as <|eot_id|>, <|im_end|>, <|end_of_text|>
    bool add_bos() const { return add_bos_; }
    bool add_eos() const { return add_eos_; }
    bool add_space_prefix() const { return add_space_prefix_; }
    Kind kind() const { return kind_; }
    const std::string & pre() const { return pre_; }
    const std::string & chat_template() const { return chat_template_; }

    const std::string & token_text(int32_t id) const;
    float token_score(int32_t id) const;
    int32_t token_type(int32_t id) const;
    int32_t find_token(const std::string & text) const;  // -1 when the text is not a token

private:
    struct TokenData {
        std::string text;
        float score = 0;
        int32_t type = TOKEN_TYPE_NORMAL;
    };

    void check_id(int32_t id) const;
    int32_t byte_token(uint8_t b) const;
    int bpe_rank(const std::string & left, const std::string & right) const;
    void encode_spm(const std::string & text, std::vector<int32_t> & out) const;
    void encode_bpe(const std::string & text, std::vector<int32_t> & out) const;

    Kind kind_ = Kind::SPM;
    std::string pre_;
    int pre_kind_ = 0;  // PreTokenizer, for BPE
    bool ignore_merges_ = false;
    std::vector<TokenData> tokens_;
    size_t max_token_len_ = 0;  // bytes; longer pairs are not looked up
    std::unordered_map<std::string, int32_t> token_to_id_;
    std::unordered_map<std::string, int> merge_rank_;  // key: left + '\xff' + right (0xFF never occurs in UTF-8)
    std::vector<int32_t> special_;                     // control/user-defined/unknown ids, longest text first
    std::vector<int32_t> byte_tokens_;                 // SPM: id of <0xNN> per byte, -1 if missing
    std::vector<int32_t> eog_;
    int32_t bos_ = -1, eos_ = -1, eot_ = -1, eom_ = -1, unk_ = -1, pad_ = -1;
    bool add_bos_ = false, add_eos_ = false, add_space_prefix_ = false;
    std::string chat_template_;
};

}  // namespace quill
