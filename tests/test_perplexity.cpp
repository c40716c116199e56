// quill perplexity against llama.cpp's values for the same files and settings (../shared/golden/README.md):
// llama-perplexity -c 128 -b 128 --chunks 500 on tinystories-valid-head.txt.
#include "tests/test_util.h"

#include <cmath>
#include <cstdlib>
#include <string>

static double run_ppl(const std::string & model, std::string * log) {
    std::string cmd = quill_binary() + " perplexity -m " + model + " -f " + shared_path("data/text/tinystories-valid-head.txt") +
                      " -c 128 -b 128 --chunks 500 -t 1";
    int rc = run_command(cmd, log);
    REQUIRE_MESSAGE(rc == 0, *log);
    size_t p = log->find("Final estimate: PPL = ");
    REQUIRE(p != std::string::npos);
    return atof(log->c_str() + p + 22);
}

static void check_ppl(const char * type, double want) {
    std::string log;
    double ppl = run_ppl(shared_path((std::string("golden/stories260K/stories260K-") + type + ".gguf").c_str()), &log);
    MESSAGE(std::string(type) << ": quill PPL " << ppl << ", llama.cpp " << want << ", difference " << 100.0 * (ppl / want - 1.0) << "%");
    CHECK(std::fabs(ppl / want - 1.0) < 0.005);
}

TEST_CASE("perplexity F32 within 0.5% of llama.cpp (500 chunks of 128)") {
    REQUIRE_SHARED();
    check_ppl("F32", 3.9697);
}

TEST_CASE("perplexity Q8_0 within 0.5% of llama.cpp (500 chunks of 128)") {
    REQUIRE_SHARED();
    check_ppl("Q8_0", 3.9744);
}

TEST_CASE("perplexity Q4_0 within 0.5% of llama.cpp (500 chunks of 128)") {
    REQUIRE_SHARED();
    check_ppl("Q4_0", 4.2963);
}
