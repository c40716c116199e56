// End-to-end checks against outside ground truth: what llama.cpp printed for stories260K (../shared/golden).
#include "tests/test_model_util.h"
#include "tests/test_util.h"

#include "formats/model_file.h"
#include "ggml-lite/common.h"
#include "formats/quill_file.h"
#include "model/llama.h"
#include "model/sampling.h"
#include "model/tokenizer.h"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <cstring>
#include <unistd.h>

using namespace quill;

static std::string read_text(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// llama-simple's output: "<s>" + the pieces of the prompt and of 100 greedy tokens, then a newline.
// Returns the text after "<s> " (which is where quill's output, with its first space stripped, starts).
static std::string golden_text(const char * type) {
    std::string g = read_text(shared_path((std::string("golden/stories260K/greedy-") + type + ".txt").c_str()));
    REQUIRE(g.rfind("<s> ", 0) == 0);
    g = g.substr(4);
    if (!g.empty() && g.back() == '\n') g.pop_back();
    return g;
}

struct Generated {
    std::string text;                 // prompt (without its dummy-prefix space) + generated pieces
    std::vector<std::string> pieces;  // one per generated token
};

// Greedy decoding of n tokens after "Once upon a time", as llama-simple does, through the Sampler at temp 0.
static Generated greedy(const ModelFile & mf, int n, gl_type kv_type = GL_TYPE_F16) {
    const Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    const std::vector<int32_t> ids = greedy_ids(mf, n, kv_type);
    REQUIRE(std::vector<int32_t>(ids.begin(), ids.end() - n) == std::vector<int32_t>({1, 403, 407, 261, 378}));
    Generated g;
    g.text = tok.decode(std::vector<int32_t>(ids.begin() + 1, ids.end() - n));
    for (size_t i = ids.size() - (size_t) n; i < ids.size(); ++i) {
        g.pieces.push_back(tok.token_to_piece(ids[i]));
        g.text += g.pieces.back();
    }
    return g;
}

static std::string model_path(const char * rel) { return shared_path(rel); }

TEST_CASE("golden greedy: llama.cpp's GGUF files run directly (F32, F16, Q8_0 exact, Q4_0 at least 50 tokens)") {
    REQUIRE_SHARED();
    for (std::string type : {"F32", "F16", "Q8_0", "Q4_0"}) {
        CAPTURE(type);
        ModelFile mf = load_gguf(model_path(("golden/stories260K/stories260K-" + type + ".gguf").c_str()));
        Generated g = greedy(mf, 100);
        const std::string want = golden_text(type.c_str());
        if (type != "Q4_0") {
            CHECK(g.text == want);
        } else {
            std::string prefix = "Once upon a time";
            for (int i = 0; i < 50; ++i) prefix += g.pieces[(size_t) i];
            CHECK(want.rfind(prefix, 0) == 0);
            MESSAGE("Q4_0: all 100 tokens match llama.cpp: " << std::string(g.text == want ? "yes" : "no"));
        }
    }
}

TEST_CASE("golden greedy: llama2.c checkpoint, direct and converted to .quill") {
    REQUIRE_SHARED();
    LoadOptions lo;
    lo.tokenizer_path = model_path("models/stories260K/tok512.bin");
    ModelFile src = load_llama2c(model_path("models/stories260K/stories260K.bin"), lo);
    CHECK(greedy(src, 100).text == golden_text("F32"));

    std::string dir = make_temp_dir();
    save_quill(dir + "/s.quill", src);
    ModelFile q = load_quill(dir + "/s.quill");
    CHECK(greedy(q, 100).text == golden_text("F32"));
    CHECK(greedy(q, 100, GL_TYPE_F32).text == golden_text("F32"));  // an f32 KV cache gives the same text
    std::remove((dir + "/s.quill").c_str());
    rmdir(dir.c_str());
}

TEST_CASE("golden greedy: Hugging Face directory, direct and converted to .quill") {
    REQUIRE_SHARED();
    ModelFile hf = load_hf(model_path("models/stories260K-hf"));
    CHECK(greedy(hf, 100).text == golden_text("F32"));
    std::string dir = make_temp_dir();
    save_quill(dir + "/hf.quill", hf);
    CHECK(greedy(load_quill(dir + "/hf.quill"), 100).text == golden_text("F32"));
    std::remove((dir + "/hf.quill").c_str());
    rmdir(dir.c_str());
}

// quill's Q8_0 and Q4_0 quantizers are ggml's: converting the llama2.c checkpoint gives llama.cpp's bytes.
TEST_CASE("quill convert --type q8_0/q4_0 writes the same tensor bytes as llama.cpp, and quill run prints its text") {
    REQUIRE_SHARED();
    std::string dir = make_temp_dir();
    for (std::string type : {"q8_0", "q4_0"}) {
        CAPTURE(type);
        std::string up = type;
        for (char & c : up) c = (char) toupper(c);
        const std::string out = dir + "/s-" + type + ".quill";
        std::string log;
        int rc = run_command(quill_binary() + " convert " + model_path("models/stories260K/stories260K.bin") + " --tokenizer " +
                                 model_path("models/stories260K/tok512.bin") + " -o " + out + " --type " + type,
                             &log);
        REQUIRE_MESSAGE(rc == 0, log);
        ModelFile ours = load_quill(out);
        ModelFile theirs = load_gguf(model_path(("golden/stories260K/stories260K-" + up + ".gguf").c_str()));
        for (const TensorData & t : ours.tensors) {
            CAPTURE(t.name);
            const TensorData & g = theirs.get(t.name);
            CHECK(t.type == g.type);
            CHECK(t.ne == g.ne);
            REQUIRE(t.nbytes == g.nbytes);
            CHECK(memcmp(t.data, g.data, t.nbytes) == 0);
        }
        // The golden file stores the tied output separately; it equals the embedding.
        CHECK(ours.find("output.weight") == nullptr);

        rc = run_command(quill_binary() + " run -m " + out + " -p 'Once upon a time' -n 100 --temp 0 -t 1 > " + dir + "/run.txt", &log);
        REQUIRE_MESSAGE(rc == 0, log);
        std::string text = read_text(dir + "/run.txt");
        if (text.size() && text.back() == '\n') text.pop_back();
        CHECK(text == golden_text(up.c_str()));
        std::remove((dir + "/run.txt").c_str());
        std::remove(out.c_str());
    }
    rmdir(dir.c_str());
}

// Batched forward: one batch, token by token, and two sequences interleaved in one batch agree.
TEST_CASE("forward: a prompt in one batch, token by token, and interleaved with another sequence give the same logits") {
    REQUIRE_SHARED();
    ModelFile mf = load_gguf(model_path("golden/stories260K/stories260K-F32.gguf"));
    Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    LlamaModel model(mf);
    std::vector<int32_t> a = tok.encode("Tom and Sue went to the park to play with a red ball.", true);
    std::vector<int32_t> c = tok.encode("The cat sat on the mat and looked at the sky.", true);
    ContextParams cp;
    cp.n_ctx = 64;
    cp.n_seq = 2;
    cp.kv_type = GL_TYPE_F32;
    const int64_t V = model.hp.n_vocab;

    Context one(model, cp);
    Batch b;
    for (size_t i = 0; i < a.size(); ++i) b.add(a[i], (int32_t) i, 0, true);
    one.decode(b);
    std::vector<float> ref(one.logits(0), one.logits(0) + a.size() * V);

    Context step(model, cp);
    for (size_t i = 0; i < a.size(); ++i) {
        b.clear();
        b.add(a[i], (int32_t) i, 0, true);
        step.decode(b);
        for (int64_t v = 0; v < V; ++v) REQUIRE(std::fabs(step.logits(0)[v] - ref[i * V + v]) < 1e-4f);
    }

    // Two sequences, one token of each per batch, as the server decodes.
    Context two(model, cp);
    const size_t n = std::min(a.size(), c.size());
    for (size_t i = 0; i < n; ++i) {
        b.clear();
        b.add(c[i], (int32_t) i, 1, true);
        b.add(a[i], (int32_t) i, 0, true);
        two.decode(b);
        for (int64_t v = 0; v < V; ++v) REQUIRE(std::fabs(two.logits(1)[v] - ref[i * V + v]) < 1e-4f);
    }
    CHECK(two.seq_len(0) == (int32_t) n);
    CHECK(two.seq_len(1) == (int32_t) n);

    // A bad batch is refused and changes nothing.
    b.clear();
    b.add(a[0], (int32_t) n + 5, 0, true);  // leaves a gap
    CHECK_THROWS_AS(two.decode(b), Error);
    b.clear();
    b.add((int32_t) V, (int32_t) n, 0, true);  // token out of range
    CHECK_THROWS_AS(two.decode(b), Error);
    b.clear();
    b.add(a[0], cp.n_ctx, 0, true);  // past the context
    CHECK_THROWS_AS(two.decode(b), Error);
    CHECK(two.seq_len(0) == (int32_t) n);
}
