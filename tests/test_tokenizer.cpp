// Tokenizer tests: llama.cpp's own expected ids (tokenizer test vectors), the stories260K tokenizer from three
// sources, round trips, special tokens and importer errors.
//
// Note on the fixtures: ../shared/tokenizers/llamacpp-vocab/ggml-vocab-{llama-spm,gpt-2}.gguf were damaged upstream
// (every byte that was not valid UTF-8 became U+FFFD, EF BF BD; their sha256 matches PROVENANCE.md), so they are not
// loadable GGUF files. Their strings survive, so read_damaged_vocab() below recovers the string and small-integer
// arrays (tokens, token types, merges) by scanning. The float scores of llama-spm are lost; its vocabulary is the
// Llama 2 tokenizer, so the llama-spm vectors run on llama2.c's export of it (../shared/tokenizers/llama2/tokenizer.bin),
// after checking that its tokens and types equal the damaged GGUF's.
#include "formats/model_file.h"
#include "ggml-lite/common.h"
#include "model/tokenizer.h"
#include "model/unicode.h"
#include "tests/test_util.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unistd.h>

using namespace quill;

namespace {

std::string read_all(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot open " << path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct VocabCase {
    std::string text;
    std::vector<int32_t> ids;
};

// llama.cpp's .inp/.out pair: strings separated by "\n__ggml_vocab_test__\n" (also after the last one), one line of
// space-separated ids per string.
std::vector<VocabCase> read_vocab_cases(const std::string & base) {
    const std::string inp = read_all(base + ".inp");
    const std::string out = read_all(base + ".out");
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> texts;
    size_t pos = 0;
    while (pos < inp.size()) {
        size_t hit = inp.find(sep, pos);
        if (hit == std::string::npos) {
            texts.push_back(inp.substr(pos));
            break;
        }
        texts.push_back(inp.substr(pos, hit - pos));
        pos = hit + sep.size();
    }
    std::vector<std::string> lines;
    std::stringstream ls(out);
    for (std::string line; std::getline(ls, line);) lines.push_back(line);
    REQUIRE_MESSAGE(lines.size() == texts.size(), base << ": " << texts.size() << " strings but " << lines.size() << " id lines");
    std::vector<VocabCase> cases;
    for (size_t i = 0; i < texts.size(); ++i) {
        VocabCase c{texts[i], {}};
        std::stringstream is(lines[i]);
        for (long id; is >> id;) c.ids.push_back((int32_t) id);
        cases.push_back(std::move(c));
    }
    return cases;
}

std::string ids_str(const std::vector<int32_t> & ids) {
    std::string s;
    for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
    return s;
}

// Runs every case; returns how many matched, reporting each mismatch.
size_t check_cases(const Tokenizer & tok, const std::vector<VocabCase> & cases, const char * name) {
    size_t ok = 0;
    for (const auto & c : cases) {
        std::vector<int32_t> got = tok.encode(c.text, false);
        if (got == c.ids) ++ok;
        else MESSAGE(std::string(name) << ": mismatch on '" << c.text << "'\n  want " << ids_str(c.ids) << "\n  got  " << ids_str(got));
    }
    MESSAGE(std::string(name) << ": " << ok << "/" << cases.size() << " strings match llama.cpp");
    return ok;
}

// Recovers tokenizer.ggml.{model,pre,tokens,token_type,merges} from a GGUF whose non-UTF-8 bytes became EF BF BD.
// Strings and small integers are intact; a damaged u64 element count is 10 bytes long and is replaced by reading
// elements until the next key header.
Metadata read_damaged_vocab(const std::string & path) {
    const std::string d = read_all(path);
    auto u64_at = [&](size_t p) { uint64_t v; memcpy(&v, d.data() + p, 8); return v; };
    auto u32_at = [&](size_t p) { uint32_t v; memcpy(&v, d.data() + p, 4); return v; };
    auto key_header_at = [&](size_t p) {  // u64 length + "tokenizer.<name>" + a valid value type
        if (p + 12 > d.size()) return true;
        uint64_t len = u64_at(p);
        if (len < 12 || len > 64 || p + 8 + len + 4 > d.size()) return false;
        return d.compare(p + 8, 10, "tokenizer.") == 0 && u32_at(p + 8 + len) <= 12;
    };
    Metadata meta;
    for (const char * key : {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                             "tokenizer.ggml.merges"}) {
        std::string hdr(8, '\0');
        uint64_t klen = strlen(key);
        memcpy(&hdr[0], &klen, 8);
        hdr += key;
        size_t p = d.find(hdr);
        if (p == std::string::npos) continue;
        p += hdr.size();
        uint32_t type = u32_at(p);
        p += 4;
        if (type == 8) {
            uint64_t len = u64_at(p);
            meta.set_str(key, d.substr(p + 8, len));
            continue;
        }
        REQUIRE(type == 9);
        uint32_t elem = u32_at(p);
        p += 4;
        // A damaged count: one of its 8 bytes became the three bytes EF BF BD.
        const bool damaged = std::string(d, p, 10).find("\xef\xbf\xbd") < 8;
        uint64_t count = damaged ? UINT64_MAX : u64_at(p);
        p += damaged ? 10 : 8;
        if (elem == 8) {
            std::vector<std::string> v;
            while (v.size() < count && !(damaged && key_header_at(p))) {
                if (d.compare(p, 3, "\xef\xbf\xbd") == 0 && d.compare(p + 4, 6, std::string(6, '\0')) == 0) {
                    // A damaged length: its low byte (0x80..0xFF) became EF BF BD. Byte-level token text has no NUL
                    // byte, so the string runs up to the next length field, whose low byte (or EF BF BD) precedes
                    // its zero bytes.
                    const size_t lo = (size_t) (uint8_t) d[p + 3] * 256 + 128;
                    size_t z = d.find('\0', p + 10 + lo);
                    if (z == std::string::npos) FAIL(path << ": cannot recover a damaged string length");
                    size_t end = (d.compare(z - 3, 3, "\xef\xbf\xbd") == 0) ? z - 3 : z - 1;
                    if (end - (p + 10) < lo || end - (p + 10) >= lo + 128) FAIL(path << ": cannot recover a damaged string length");
                    v.push_back(d.substr(p + 10, end - (p + 10)));
                    p = end;
                    continue;
                }
                uint64_t len = u64_at(p);
                if (len >= 65536 || p + 8 + len > d.size()) FAIL(path << ": unreadable string at offset " << p);
                v.push_back(d.substr(p + 8, len));
                p += 8 + len;
            }
            meta.set(key, MetaValue::of_strs(std::move(v)));
        } else {
            REQUIRE(elem == 5);
            std::vector<int64_t> v;
            while (v.size() < count && !(damaged && key_header_at(p))) {
                v.push_back((int32_t) u32_at(p));
                p += 4;
            }
            meta.set(key, MetaValue::of_i32s(std::move(v)));
        }
    }
    return meta;
}

Tokenizer tokenizer_from_llama2c(const std::string & path) {
    Metadata meta;
    import_llama2c_tokenizer(path, meta);
    return Tokenizer::from_metadata(meta);
}

Tokenizer tokenizer_from_hf(const std::string & json_path, const std::string & cfg_path) {
    Metadata meta;
    import_hf_tokenizer(json_path, cfg_path, meta);
    return Tokenizer::from_metadata(meta);
}

void check_round_trip(const Tokenizer & tok, const std::vector<VocabCase> & cases, const char * name) {
    size_t ok = 0;
    for (const auto & c : cases) {
        std::string back = tok.decode(tok.encode(c.text, false));
        if (back == c.text) ++ok;
        else MESSAGE(std::string(name) << ": round trip of '" << c.text << "' gave '" << back << "'");
    }
    CHECK_MESSAGE(ok == cases.size(), std::string(name) << ": " << ok << "/" << cases.size() << " strings round-trip");
}

}  // namespace

TEST_CASE("tokenizer: unicode classes and pre-tokenizers") {
    CHECK(unicode_category('a') == UCAT_LETTER);
    CHECK(unicode_category(0x4E2D) == UCAT_LETTER);  // 中
    CHECK(unicode_category('7') == UCAT_NUMBER);
    CHECK(unicode_category(0xBD) == UCAT_NUMBER);  // ½
    CHECK(unicode_category('!') == UCAT_PUNCT);
    CHECK(unicode_is_whitespace(' '));
    CHECK(unicode_is_whitespace(0x3000));
    CHECK_FALSE(unicode_is_whitespace(0x1F));
    CHECK(byte_to_unicode(' ') == "\xc4\xa0");  // Ġ
    CHECK(unicode_to_byte(0x120) == ' ');
    for (int b = 0; b < 256; ++b) {
        size_t pos = 0;
        CHECK(unicode_to_byte(utf8_next(byte_to_unicode((uint8_t) b), pos)) == b);
    }
    size_t pos = 0;
    CHECK(utf8_next(std::string("\xe2x"), pos) == 0xFFFD);
    CHECK(pos == 1);

    auto split = [](PreTokenizer k, const std::string & s) {
        std::vector<uint32_t> cp = utf8_to_cpts(s);
        std::vector<size_t> lens;
        pretokenize(k, cp, lens);
        std::vector<std::string> out;
        size_t c = 0;
        for (size_t n : lens) {
            std::string piece;
            for (size_t i = 0; i < n; ++i) utf8_append(piece, cp[c + i]);
            out.push_back(piece);
            c += n;
        }
        return out;
    };
    using V = std::vector<std::string>;
    CHECK(split(PreTokenizer::GPT2, "Hello world's   12345 !!\n\n") == V{"Hello", " world", "'s", "  ", " 12345", " !!", "\n\n"});
    CHECK(split(PreTokenizer::LLAMA3, "Hello WORLD'S 12345 !!\n\n  x") == V{"Hello", " WORLD", "'S", " ", "123", "45", " !!\n\n", " ", " x"});
    CHECK(split(PreTokenizer::LLAMA3, "a \n\n b\t\tc") == V{"a", " \n\n", " b", "\t", "\tc"});
}

TEST_CASE("tokenizer: llama-spm (Llama 2 SentencePiece) gives llama.cpp's ids") {
    REQUIRE_SHARED();
    const std::string base = shared_path("tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf");
    Tokenizer tok = tokenizer_from_llama2c(shared_path("tokenizers/llama2/tokenizer.bin"));
    CHECK(tok.n_vocab() == 32000);

    // The damaged GGUF still shows its tokens and types: they must equal the llama2.c import.
    Metadata gm = read_damaged_vocab(base);
    const auto & gtok = gm.get_strs_req("tokenizer.ggml.tokens");
    const auto * gty = gm.find("tokenizer.ggml.token_type");
    REQUIRE(gtok.size() == 32000);
    REQUIRE(gty != nullptr);
    REQUIRE(gty->ai.size() == 32000);
    size_t same = 0;
    for (int32_t i = 0; i < 32000; ++i) same += gtok[i] == tok.token_text(i) && gty->ai[i] == tok.token_type(i);
    CHECK(same == 32000);

    auto cases = read_vocab_cases(base);
    CHECK(cases.size() == 46);
    CHECK(check_cases(tok, cases, "llama-spm") == cases.size());
    check_round_trip(tok, cases, "llama-spm");
}

TEST_CASE("tokenizer: gpt-2 byte-level BPE gives llama.cpp's ids") {
    REQUIRE_SHARED();
    const std::string base = shared_path("tokenizers/llamacpp-vocab/ggml-vocab-gpt-2.gguf");
    Metadata meta = read_damaged_vocab(base);
    REQUIRE(meta.get_str("tokenizer.ggml.model", "") == "gpt2");
    REQUIRE(meta.get_str("tokenizer.ggml.pre", "") == "gpt-2");
    REQUIRE(meta.get_strs_req("tokenizer.ggml.tokens").size() == 50257);
    REQUIRE(meta.get_strs_req("tokenizer.ggml.merges").size() == 50000);
    meta.set_u32("tokenizer.ggml.bos_token_id", 50256);  // the damaged ids: 0xC450
    meta.set_u32("tokenizer.ggml.eos_token_id", 50256);
    Tokenizer tok = Tokenizer::from_metadata(meta);
    CHECK_FALSE(tok.add_bos());
    CHECK(tok.is_eog(50256));

    auto cases = read_vocab_cases(base);
    CHECK(cases.size() == 46);
    CHECK(check_cases(tok, cases, "gpt-2") == cases.size());
    check_round_trip(tok, cases, "gpt-2");
}

TEST_CASE("tokenizer: llama-bpe (Llama 3 tokenizer.json) gives llama.cpp's ids") {
    REQUIRE_SHARED();
    Metadata meta;
    import_hf_tokenizer(shared_path("tokenizers/llama3/tokenizer.json"), shared_path("tokenizers/llama3/tokenizer_config.json"), meta);
    CHECK(meta.get_str("tokenizer.ggml.pre", "") == "llama-bpe");
    CHECK(meta.get_str("tokenizer.chat_template", "").find("<|start_header_id|>") != std::string::npos);
    Tokenizer tok = Tokenizer::from_metadata(meta);
    CHECK(tok.n_vocab() == 128256);
    CHECK(tok.bos() == 128000);
    CHECK(tok.eos() == 128001);
    CHECK(tok.add_bos());
    CHECK(tok.is_eog(128001));
    CHECK(tok.is_eog(tok.find_token("<|eot_id|>")));
    CHECK_FALSE(tok.is_eog(tok.find_token("Hello")));

    auto cases = read_vocab_cases(shared_path("tokenizers/llamacpp-vocab/ggml-vocab-llama-bpe.gguf"));
    CHECK(cases.size() == 46);
    CHECK(check_cases(tok, cases, "llama-bpe") == cases.size());
    check_round_trip(tok, cases, "llama-bpe");

    // Special tokens: parsed only when asked; BOS added by add_special.
    const int32_t eot = tok.find_token("<|eot_id|>");
    std::vector<int32_t> ids = tok.encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", true, true);
    REQUIRE(ids.size() >= 4);
    CHECK(ids[0] == 128000);
    CHECK(ids[1] == tok.find_token("<|start_header_id|>"));
    CHECK(ids.back() == eot);
    CHECK(tok.decode(ids, true) == "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
    CHECK(tok.decode(ids, false) == "user\n\nHi");
    std::vector<int32_t> plain = tok.encode("<|eot_id|>", false, false);
    CHECK(plain.size() > 1);
    CHECK(tok.decode(plain) == "<|eot_id|>");
    CHECK(tok.token_to_piece(eot) == "");
    CHECK(tok.token_to_piece(eot, true) == "<|eot_id|>");

    const std::string story = read_all(shared_path("data/text/tinystories-valid-head.txt"));
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> sids = tok.encode(story, false);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("llama-bpe: " << story.size() << " bytes -> " << sids.size() << " tokens in " << secs << " s");
    CHECK(tok.decode(sids) == story);
    CHECK(secs < 2.0);
}

TEST_CASE("tokenizer: special tokens in SPM text") {
    REQUIRE_SHARED();
    Tokenizer tok = tokenizer_from_llama2c(shared_path("models/stories260K/tok512.bin"));
    // After a special token the next text fragment gets the dummy-prefix space again, as in llama.cpp.
    std::vector<int32_t> a = tok.encode("Once</s>Once", false, true);
    std::vector<int32_t> once = tok.encode("Once", false);
    std::vector<int32_t> want = once;
    want.push_back(2);
    want.insert(want.end(), once.begin(), once.end());
    CHECK(a == want);
    CHECK(tok.decode(a) == "Once Once");
    CHECK(tok.decode(a, true) == "Once</s> Once");
    // Without parse_special the control text is ordinary text.
    std::vector<int32_t> b = tok.encode("Once</s>", false, false);
    CHECK(std::find(b.begin(), b.end(), 2) == b.end());
    CHECK(tok.decode(b) == "Once</s>");

    // User-defined tokens are always recognised; byte tokens print their byte.
    Metadata meta;
    import_llama2c_tokenizer(shared_path("models/stories260K/tok512.bin"), meta);
    MetaValue types = *meta.find("tokenizer.ggml.token_type");
    MetaValue toks = *meta.find("tokenizer.ggml.tokens");
    toks.as[511] = "<tool>";
    types.ai[511] = TOKEN_TYPE_USER_DEFINED;
    meta.set("tokenizer.ggml.tokens", toks);
    meta.set("tokenizer.ggml.token_type", types);
    Tokenizer ud = Tokenizer::from_metadata(meta);
    std::vector<int32_t> c = ud.encode("a<tool>b", false, false);
    CHECK(std::find(c.begin(), c.end(), 511) != c.end());
    CHECK(ud.decode(c) == "a<tool> b");
    CHECK(tok.token_to_piece(3 + 0x41) == "A");
    const std::string llama = "\xf0\x9f\xa6\x99";  // U+1F999, not in the vocab: falls back to its 4 bytes
    std::vector<int32_t> d = tok.encode(llama, false);
    REQUIRE(d.size() == 5);  // "\u2581" then 4 byte tokens
    for (size_t i = 1; i < 5; ++i) CHECK(d[i] == 3 + (int) (uint8_t) llama[i - 1]);
    CHECK(tok.decode(d) == llama);
}

TEST_CASE("tokenizer: stories260K from tok512.bin, tokenizer.json and the golden GGUF agree") {
    REQUIRE_SHARED();
    Tokenizer bin = tokenizer_from_llama2c(shared_path("models/stories260K/tok512.bin"));
    Tokenizer hf = tokenizer_from_hf(shared_path("models/stories260K-hf/tokenizer.json"), shared_path("models/stories260K-hf/tokenizer_config.json"));
    ModelFile golden = load_gguf(shared_path("golden/stories260K/stories260K-F32.gguf"));
    Tokenizer gg = Tokenizer::from_metadata(golden.meta);

    // The llama2.c import reproduces llama.cpp's conversion of the same file exactly; the HF import has the same
    // tokens, types and (derived) scores.
    REQUIRE(bin.n_vocab() == 512);
    REQUIRE(hf.n_vocab() == 512);
    REQUIRE(gg.n_vocab() == 512);
    int same_bin = 0, same_hf = 0;
    for (int32_t i = 0; i < 512; ++i) {
        float a = bin.token_score(i), b = gg.token_score(i), c = hf.token_score(i);
        same_bin += bin.token_text(i) == gg.token_text(i) && bin.token_type(i) == gg.token_type(i) && memcmp(&a, &b, 4) == 0;
        same_hf += hf.token_text(i) == gg.token_text(i) && hf.token_type(i) == gg.token_type(i) && memcmp(&c, &b, 4) == 0;
    }
    CHECK(same_bin == 512);
    CHECK(same_hf == 512);
    for (const Tokenizer * t : {&bin, &hf, &gg}) {
        CHECK(t->bos() == 1);
        CHECK(t->eos() == 2);
        CHECK(t->add_bos());
        CHECK(t->is_eog(2));
        CHECK(t->encode("Once upon a time", true) == std::vector<int32_t>{1, 403, 407, 261, 378});
        CHECK(t->decode({1, 403, 407, 261, 378}) == " Once upon a time");  // BOS takes the prefix strip, as in llama.cpp
        CHECK(t->token_to_piece(1, true) == "<s>");
        CHECK(t->token_to_piece(1) == "");
        CHECK(t->encode("", true) == std::vector<int32_t>{1});
        CHECK(t->encode("", false).empty());
    }

    auto cases = read_vocab_cases(shared_path("tokenizers/llamacpp-vocab/ggml-vocab-llama-spm.gguf"));
    size_t agree = 0;
    for (const auto & c : cases) {
        auto a = gg.encode(c.text, false);
        agree += a == bin.encode(c.text, false) && a == hf.encode(c.text, false) && gg.decode(a) == c.text;
    }
    CHECK_MESSAGE(agree == cases.size(), "stories260K: " << agree << "/" << cases.size() << " llama-spm strings agree and round-trip");

    const std::string story = read_all(shared_path("data/text/tinystories-valid-head.txt"));
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> ids = gg.encode(story, true);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    MESSAGE("stories260K: " << story.size() << " bytes -> " << ids.size() << " tokens in " << secs << " s");
    CHECK(ids.size() == 393019);  // llama-tokenize on the golden GGUF: 393,018 tokens, plus BOS
    CHECK(ids == bin.encode(story, true));
    CHECK(ids == hf.encode(story, true));
    CHECK(gg.decode(std::vector<int32_t>(ids.begin() + 1, ids.end())) == story);
    CHECK(secs < 2.0);
}

TEST_CASE("tokenizer: importer and metadata errors are quill::Error") {
    REQUIRE_SHARED();
    const std::string bin = read_all(shared_path("models/stories260K/tok512.bin"));
    const std::string dir = make_temp_dir();
    const std::string path = dir + "/truncated.bin";
    for (size_t cut : {bin.size() - 1, bin.size() / 2, (size_t) 6, (size_t) 2}) {
        {
            std::ofstream out(path, std::ios::binary);
            out.write(bin.data(), (std::streamsize) cut);
        }
        Metadata meta;
        CHECK_THROWS_AS(import_llama2c_tokenizer(path, meta), quill::Error);
    }
    std::remove(path.c_str());
    rmdir(dir.c_str());

    Metadata meta;
    CHECK_THROWS_AS(import_llama2c_tokenizer(dir + "/missing.bin", meta), quill::Error);
    CHECK_THROWS_AS(import_hf_tokenizer(dir + "/missing.json", "", meta), quill::Error);
    CHECK_THROWS_AS(Tokenizer::from_metadata(meta), quill::Error);  // no tokenizer.ggml.model
    meta.set_str("tokenizer.ggml.model", "gpt2");
    meta.set("tokenizer.ggml.tokens", MetaValue::of_strs({"a", "b", "ab"}));
    meta.set_str("tokenizer.ggml.pre", "no-such-pre");
    CHECK_THROWS_AS(Tokenizer::from_metadata(meta), quill::Error);
    meta.set_str("tokenizer.ggml.pre", "gpt-2");
    CHECK_THROWS_AS(Tokenizer::from_metadata(meta), quill::Error);  // no merges
    meta.set("tokenizer.ggml.merges", MetaValue::of_strs({"a b"}));
    Tokenizer tok = Tokenizer::from_metadata(meta);
    CHECK(tok.encode("ab", false) == std::vector<int32_t>{2});
    CHECK_THROWS_AS(tok.token_to_piece(3), quill::Error);
    CHECK_THROWS_AS(tok.decode({-1}), quill::Error);
}
