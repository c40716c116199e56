// `quill quantize --method gptvq` end to end on stories260K: every linear (the 172-wide ffn_down included) stored in
// a codebook type, the file loads with its checksums and generates a story, and at fewer bits per weight than GPTQ
// int3 it has lower perplexity and KL-divergence on the same validation tokens. Also the method's option errors.
#include "tests/test_util.h"
#include "tests/test_quant_util.h"

#include "formats/model_file.h"
#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "ggml-lite/types.h"
#include "model/llama.h"
#include "model/sampling.h"
#include "model/tokenizer.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>
#include <unistd.h>
#include <vector>

using namespace quill;
using namespace quill_test;

namespace {

struct Eval {
    double ppl = 0, kld = 0, k99 = 0, bpw_linear = 0;
};

// Quantizes stories260K with the given method options, then measures perplexity and KLD against the f32 model on
// 12 chunks of 128 validation tokens.
Eval quantize_and_eval(const std::string & dir, const std::string & name, const std::string & opts) {
    const std::string bin = shared_path("models/stories260K/stories260K.bin"), tok = shared_path("models/stories260K/tok512.bin");
    const std::string calib = shared_path("data/text/tinystories-train-head2MiB.txt"), valid = shared_path("data/text/tinystories-valid-head.txt");
    const std::string out = dir + "/" + name + ".quill";
    std::string log;
    int rc = run_command(quill_binary() + " quantize -m " + bin + " --tokenizer " + tok + " " + opts + " --calib " + calib +
                             " --calib-tokens 8192 -t 2 -o " + out,
                         &log);
    REQUIRE_MESSAGE(rc == 0, log);
    Eval e;
    e.bpw_linear = parse_after(log, "MiB; ");
    rc = run_command(quill_binary() + " perplexity -m " + out + " --kld-base " + bin + " --tokenizer " + tok + " -f " + valid + " -c 128 --chunks 12 -t 2",
                     &log);
    REQUIRE_MESSAGE(rc == 0, log);
    e.ppl = parse_after(log, "Final estimate: PPL = ");
    e.kld = parse_after(log, "Mean KLD: ");
    e.k99 = parse_after(log, "99.0% KLD: ");
    MESSAGE(name << ": " << e.bpw_linear << " bits per weight over the linears, PPL " << e.ppl << ", mean KLD " << e.kld << ", 99% KLD " << e.k99);
    return e;
}

}  // namespace

TEST_CASE("quantize: stories260K GPTVQ 2D 3-bit end to end, and it beats GPTQ int3 at fewer bits") {
    REQUIRE_SHARED();
    const std::string dir = make_temp_dir();
    const Eval vq = quantize_and_eval(dir, "s-gptvq2d3", "--method gptvq --vq-dim 2 --bits 3");
    const Eval gq = quantize_and_eval(dir, "s-gptq3", "--method gptq --bits 3 --group 128");

    ModelFile mf = load_quill(dir + "/s-gptvq2d3.quill");  // verifies every checksum
    for (int l = 0; l < 5; ++l) {
        for (const char * s : {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"}) {
            const TensorData & t = mf.get(strfmt("blk.%d.%s.weight", l, s));
            CHECK_MESSAGE(t.type == GL_TYPE_VQ2_B3_G8192, t.name << " is " << gl_type_name(t.type));
        }
    }
    CHECK(mf.meta.get_str("quill.quantize.method", "") == "gptvq");
    CHECK(mf.meta.get_int("quill.quantize.vq_dim", 0) == 2);
    const std::string story = greedy_story(mf);
    MESSAGE("gptvq 2D 3-bit: Once upon a time" << story);
    size_t letters = 0, spaces = 0;
    for (char c : story) letters += isalpha((unsigned char) c) ? 1 : 0, spaces += c == ' ';
    CHECK(letters > 60);
    CHECK(spaces > 10);

    // The comparison the method exists for: fewer bits, lower perplexity and KLD.
    CHECK(vq.bpw_linear < gq.bpw_linear);
    CHECK(vq.ppl < gq.ppl);
    CHECK(vq.kld < gq.kld);
    CHECK(vq.k99 >= vq.kld);
    CHECK(std::isfinite(vq.ppl));
    std::remove((dir + "/s-gptvq2d3.quill").c_str());
    std::remove((dir + "/s-gptq3.quill").c_str());
    rmdir(dir.c_str());
}

TEST_CASE("quantize: gptvq options are checked, one clear error each, and --help lists the method") {
    REQUIRE_SHARED();
    const std::string bin = shared_path("models/stories260K/stories260K.bin"), tok = shared_path("models/stories260K/tok512.bin");
    const std::string calib = shared_path("data/text/tinystories-train-head2MiB.txt");
    const std::string base = quill_binary() + " quantize -m " + bin + " --tokenizer " + tok + " -o /tmp/quill-vq-never.quill --calib " + calib + " ";
    const struct {
        const char * opts;
        const char * message;
    } cases[] = {
        {"--method gptvq --vq-dim 3", "--vq-dim must be 1, 2 or 4"},
        {"--method gptvq --vq-dim 4 --bits 3", "no 4D type with --bits 3"},
        {"--method gptvq --vq-dim 2 --bits 3 --group 4096", "no 2D type with --bits 3 --group 4096"},
        {"--method gptvq --em-iters -1", "--em-iters must be"},
    };
    for (const auto & c : cases) {
        std::string log;
        const int rc = run_command(base + c.opts, &log);
        CHECK_MESSAGE(rc != 0, c.opts);
        CHECK_MESSAGE(log.find(c.message) != std::string::npos, c.opts << ": " << log);
        CHECK(access("/tmp/quill-vq-never.quill", F_OK) != 0);
    }
    std::string log;
    CHECK(run_command(quill_binary() + " quantize --help", &log) == 0);
    CHECK(log.find("gptvq") != std::string::npos);
    CHECK(log.find("vq2_b3_g8192") != std::string::npos);
    CHECK(run_command(quill_binary() + " convert " + bin + " --tokenizer " + tok + " --type vq2_b3_g8192 -o /tmp/quill-vq-never.quill", &log) != 0);
    CHECK(log.find("codebook type") != std::string::npos);
}
