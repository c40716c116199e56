// The architecture table (formats/arch.h) and the one block (model/block.cpp) against outside ground truth: the
// fixtures in ../shared/fixtures (stories260K's weights grafted into Qwen2, Qwen3 and Gemma 3 blocks, each as GGUF
// and as a Hugging Face directory) with llama.cpp's greedy ids and perplexity (README there).
#include "tests/test_model_util.h"
#include "tests/test_util.h"

#include "formats/arch.h"
#include "formats/model_file.h"
#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "model/llama.h"
#include "model/sampling.h"
#include "model/tokenizer.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

using namespace quill;

static const std::string k_fixtures[] = {"qwen2", "qwen3", "gemma3"};

static std::string fixture(const std::string & arch, const std::string & rel) {
    return shared_path(("fixtures/stories260K-" + arch + "/" + rel).c_str());
}

static std::vector<int32_t> read_ids(const std::string & path) {
    std::ifstream f(path);
    REQUIRE_MESSAGE(f.good(), path);
    std::vector<int32_t> ids;
    for (int32_t v; f >> v;) ids.push_back(v);
    return ids;
}


// The final PPL of `quill perplexity` on the fixtures' settings (100 chunks of 128 of the validation text).
// One thread: these models are tiny, and on a busy machine an OpenMP barrier can cost a scheduler time slice.
static double quill_ppl(const std::string & model, int chunks = 100) {
    std::string log;
    const int rc = run_command(quill_binary() + " perplexity -m " + model + " -f " + shared_path("data/text/tinystories-valid-head.txt") +
                                   " -c 128 -b 128 --chunks " + std::to_string(chunks) + " -t 1",
                               &log);
    REQUIRE_MESSAGE(rc == 0, log);
    return parse_after(log, "Final estimate: PPL = ");
}

// llama.cpp's final PPL from a fixture's perplexity-<type>.txt ("... PPL = 4.1978 +/- ..." on the last line).
static double golden_ppl(const std::string & arch, const char * type) {
    std::ifstream f(fixture(arch, std::string("perplexity-") + type + ".txt"));
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string text = ss.str();
    const size_t p = text.rfind("= ");
    REQUIRE(p != std::string::npos);
    return atof(text.c_str() + p + 2);
}

TEST_CASE("arch table: entries, HF names and the GGUF names they map to") {
    CHECK(arch_names() == "llama, qwen2, qwen3, gemma3");
    CHECK(arch_from_hf("mistral", "MistralForCausalLM") == arch_find("llama"));
    CHECK(arch_from_hf("", "Qwen2ForCausalLM") == arch_find("qwen2"));
    CHECK(arch_from_hf("gemma3_text", "Gemma3ForCausalLM") == arch_find("gemma3"));
    CHECK(arch_from_hf("qwen2", "LlamaForCausalLM") == nullptr);  // model_type and class disagree
    CHECK(arch_from_hf("gemma3", "Gemma3ForConditionalGeneration") == nullptr);  // the multimodal checkpoint
    for (const Arch * a : arch_all()) {
        CAPTURE(a->name);
        for (const ArchLayerTensor & t : a->layer) {
            std::string g;
            LayerTensor role;
            REQUIRE(arch_map_hf_name(*a, std::string("model.layers.7.") + t.hf, 8, &g, &role));
            CHECK(g == layer_tensor_name(7, t.role));
            CHECK(role == t.role);
            CHECK_FALSE(arch_map_hf_name(*a, std::string("model.layers.8.") + t.hf, 8, &g));  // past the last layer
        }
        // Every architecture has the two norms and seven linears of a LLaMA block.
        int linears = 0;
        for (const ArchLayerTensor & t : a->layer) linears += layer_tensor_linear(t.role) ? 1 : 0;
        CHECK(linears == 7);
        CHECK(arch_has(*a, LayerTensor::ATTN_NORM));
        CHECK(arch_has(*a, LayerTensor::FFN_NORM));
    }
    std::string g;
    CHECK_FALSE(arch_map_hf_name(*arch_find("llama"), "model.layers.0.self_attn.q_norm.weight", 4, &g));  // not a llama tensor
    CHECK(arch_map_hf_name(*arch_find("qwen3"), "model.layers.0.self_attn.q_norm.weight", 4, &g));
    CHECK(g == "blk.0.attn_q_norm.weight");
}

TEST_CASE("architectures: the fixtures' GGUF (F32, F16) and HF forms give llama.cpp's 64 greedy tokens") {
    REQUIRE_SHARED();
    for (const std::string & arch : k_fixtures) {
        CAPTURE(arch);
        const std::vector<int32_t> want = read_ids(fixture(arch, "greedy-ids.txt"));
        REQUIRE(want.size() == 69);
        for (const std::string & rel : {"stories260K-" + arch + "-F32.gguf", "stories260K-" + arch + "-F16.gguf", std::string("hf")}) {
            CAPTURE(rel);
            const ModelFile mf = load_model(fixture(arch, rel));
            CHECK(mf.meta.get_str("general.architecture", "") == arch);
            CHECK(greedy_ids(mf, 64, GL_TYPE_F16, 128) == want);
        }
    }
}

TEST_CASE("architectures: the HF form holds the GGUF's function (logits of a prompt agree, Gemma's 1 + w norms included)") {
    REQUIRE_SHARED();
    for (const std::string & arch : k_fixtures) {
        CAPTURE(arch);
        const ModelFile g = load_model(fixture(arch, "stories260K-" + arch + "-F32.gguf"));
        const ModelFile h = load_model(fixture(arch, "hf"));
        const LlamaModel mg(g), mh(h);
        CHECK(mg.hp.n_layer == mh.hp.n_layer);
        CHECK(mg.hp.head_dim == mh.hp.head_dim);
        CHECK(mg.hp.n_swa == mh.hp.n_swa);
        ContextParams cp;
        cp.n_ctx = 64;
        cp.kv_type = GL_TYPE_F32;
        Context cg(mg, cp), ch(mh, cp);
        Batch b;
        for (int32_t i = 0; i < 40; ++i) b.add((i * 37 + 3) % 512, i, 0, true);  // past the sliding window of 32
        cg.decode(b);
        ch.decode(b);
        double max_err = 0;
        for (size_t t = 0; t < 40; ++t)
            for (int64_t v = 0; v < mg.hp.n_vocab; ++v) max_err = std::max(max_err, (double) std::fabs(cg.logits(t)[v] - ch.logits(t)[v]));
        CHECK(max_err < 1e-4);
    }
}

TEST_CASE("architectures: perplexity of the fixtures within 0.5% of llama.cpp's (GGUF F32 and F16, HF)") {
    REQUIRE_SHARED();
    for (const std::string & arch : k_fixtures) {
        CAPTURE(arch);
        for (const char * type : {"F32", "F16"}) {
            const double want = golden_ppl(arch, type);
            const double got = quill_ppl(fixture(arch, "stories260K-" + arch + "-" + type + ".gguf"));
            MESSAGE(arch << " " << std::string(type) << ": quill PPL " << got << ", llama.cpp " << want);
            CHECK(std::fabs(got / want - 1.0) < 0.005);
        }
        const double hf = quill_ppl(fixture(arch, "hf"));
        CHECK(std::fabs(hf / golden_ppl(arch, "F32") - 1.0) < 0.005);
    }
}

TEST_CASE("architectures: convert to .quill and quantize --method gptq work on each fixture") {
    REQUIRE_SHARED();
    TempDir dir;
    for (const std::string & arch : k_fixtures) {
        CAPTURE(arch);
        const std::string q = dir / (arch + ".quill");
        std::string log;
        REQUIRE_MESSAGE(run_command(quill_binary() + " convert " + fixture(arch, "hf") + " -o " + q, &log) == 0, log);
        CHECK(greedy_ids(load_quill(q), 64, GL_TYPE_F16, 128) == read_ids(fixture(arch, "greedy-ids.txt")));
        // 3-bit GPTQ, whose Hessians come from the calibration forward through the architecture's block, beats
        // round-to-nearest on the same grid (qwen2 6.6 vs 7.9, qwen3 17.4 vs 19.5, gemma3 19.6 vs 24.3 at 100 chunks).
        double ppl[2];
        for (int m = 0; m < 2; ++m) {
            const std::string method = m ? "gptq" : "rtn", out = dir / (arch + "-" + method + ".quill");
            REQUIRE_MESSAGE(run_command(quill_binary() + " quantize -m " + q + " -o " + out + " --method " + method + " --bits 3 --group 32 --calib " +
                                            shared_path("data/text/tinystories-train-head2MiB.txt") + " --calib-tokens 8192 --seq-len 128 -q -t 1",
                                        &log) == 0,
                            log);
            const ModelFile mq = load_quill(out);
            CHECK(mq.meta.get_str("general.architecture", "") == arch);
            CHECK(mq.get("blk.0.attn_q.weight").type == GL_TYPE_Q3_G32);
            ppl[m] = quill_ppl(out, 40);
        }
        MESSAGE(arch << " q3_g32, 40 chunks: rtn PPL " << ppl[0] << ", gptq " << ppl[1] << " (f32 " << golden_ppl(arch, "F32") << ", 100 chunks)");
        CHECK(ppl[1] < ppl[0]);
    }
}
