// GGUF export, synthetic models and the bench command (a smoke test: timing belongs in benchmarks, not tests).
#include "tests/test_util.h"

#include "formats/gguf_writer.h"
#include "formats/model_file.h"
#include "ggml-lite/common.h"
#include "model/llama.h"
#include "model/synthetic.h"

#include <cstdio>
#include <cstring>
#include <unistd.h>

using namespace quill;

static void check_same_tensors(const ModelFile & a, const ModelFile & b) {
    REQUIRE(a.tensors.size() == b.tensors.size());
    for (const TensorData & t : a.tensors) {
        CAPTURE(t.name);
        const TensorData & u = b.get(t.name);
        CHECK(t.type == u.type);
        CHECK(t.ne == u.ne);
        REQUIRE(t.nbytes == u.nbytes);
        CHECK(memcmp(t.data, u.data, t.nbytes) == 0);
    }
}

TEST_CASE("export: a synthetic model in every type round-trips through GGUF with identical bytes and metadata") {
    std::string dir = make_temp_dir();
    for (uint32_t ti = 0; ti < GL_TYPE_COUNT; ++ti) {
        const gl_type ty = (gl_type) ti;
        if (gl_get_type_traits(ty)->gguf_type < 0) continue;  // every type GGUF files can hold
        CAPTURE(gl_type_name(ty));
        ModelFile m = make_synthetic_model("stories260k", ty, 7);
        const std::string path = dir + "/m.gguf";
        save_gguf(path, m);
        ModelFile g = load_gguf(path);
        check_same_tensors(m, g);
        CHECK(g.meta.get_str("general.architecture", "") == "llama");
        CHECK(g.meta.get_int("llama.block_count", 0) == 5);
        CHECK(g.meta.find("tokenizer.ggml.tokens")->as == m.meta.find("tokenizer.ggml.tokens")->as);
        CHECK(g.meta.find("general.file_type")->type == MetaType::U32);
        CHECK_FALSE(g.meta.has("quill.synthetic"));
        // The exported model runs and gives the same logits as the original.
        LlamaModel ma(m), mb(g);
        ContextParams cp;
        cp.n_ctx = 16;
        Context ca(ma, cp), cb(mb, cp);
        Batch b;
        for (int i = 0; i < 8; ++i) b.add(10 + i, i, 0, true);
        ca.decode(b);
        cb.decode(b);
        CHECK(memcmp(ca.logits(0), cb.logits(0), sizeof(float) * 8 * (size_t) ma.hp.n_vocab) == 0);
        std::remove(path.c_str());
    }
    rmdir(dir.c_str());
}

TEST_CASE("export: quill convert to .gguf keeps llama.cpp's tensors byte for byte") {
    REQUIRE_SHARED();
    std::string dir = make_temp_dir();
    const std::string out = dir + "/s.gguf";
    std::string log;
    int rc = run_command(quill_binary() + " convert " + shared_path("golden/stories260K/stories260K-Q8_0.gguf") + " -o " + out, &log);
    REQUIRE_MESSAGE(rc == 0, log);
    check_same_tensors(load_gguf(shared_path("golden/stories260K/stories260K-Q8_0.gguf")), load_gguf(out));
    std::remove(out.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("synthetic: shapes are real, weights deterministic per seed, unknown names rejected") {
    const SyntheticShape & s = synthetic_shape("tinyllama-1.1b");
    CHECK(s.n_embd == 2048);
    CHECK(s.n_ff == 5632);
    CHECK(s.n_layer == 22);
    CHECK(s.n_head_kv == 4);
    CHECK(synthetic_shape("llama2-7b").n_ff == 11008);
    CHECK_THROWS_AS(synthetic_shape("gpt-5"), Error);
    ModelFile a = make_synthetic_model("stories260k", GL_TYPE_Q4_0, 3), b = make_synthetic_model("stories260k", GL_TYPE_Q4_0, 3);
    check_same_tensors(a, b);
    CHECK(a.get("blk.0.ffn_down.weight").type == GL_TYPE_F16);  // 172-wide rows are not whole Q4_0 blocks
    CHECK(a.meta.get_str("general.name", "").find("synthetic") != std::string::npos);
}

TEST_CASE("bench: quill bench prints a llama-bench table with pp and tg rows and the bandwidth share") {
    std::string log;
    int rc = run_command(quill_binary() + " bench --synthetic stories260k --type q4_0,f16 -p 32 -n 8 -r 2 -t 1", &log);
    REQUIRE_MESSAGE(rc == 0, log);
    CHECK(log.find("| model | size | params | backend | threads | test | t/s |") != std::string::npos);
    CHECK(log.find("| pp32 |") != std::string::npos);
    CHECK(log.find("| tg8 |") != std::string::npos);
    CHECK(log.find("synthetic stories260k q4_0") != std::string::npos);
    CHECK(log.find("% of the read stream") != std::string::npos);
    CHECK(log.find("1 threads: read stream ") != std::string::npos);
    // context depth: the same tests again after 16 tokens already in the cache, labelled as llama-bench does
    rc = run_command(quill_binary() + " bench --synthetic stories260k --type q4_0 -p 32 -n 8 -d 0,16 -r 1 -t 1 --no-bandwidth", &log);
    REQUIRE_MESSAGE(rc == 0, log);
    CHECK(log.find("| pp32 |") != std::string::npos);
    CHECK(log.find("| pp32 @ d16 |") != std::string::npos);
    CHECK(log.find("| tg8 @ d16 |") != std::string::npos);
    rc = run_command(quill_binary() + " bench --synthetic stories260k -d 99999999999999 -n 4", &log);
    CHECK(rc == 1);
    CHECK(log.find("exceeds the largest context") != std::string::npos);
    // bad options are one clear error, not a crash
    rc = run_command(quill_binary() + " bench --synthetic nope", &log);
    CHECK(rc == 1);
    CHECK(log.find("unknown synthetic model 'nope'") != std::string::npos);
}
