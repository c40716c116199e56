// The saved fuzz crash inputs (tests/fuzz/regressions/<target>/) as plain doctest cases: each one goes through the
// same target function as under libFuzzer (built here without it, QUILL_FUZZ_NO_MAIN), so the ordinary build and
// `make test` replay them too. Without sanitizers only what still crashes, throws an undocumented exception or
// breaks a checked contract shows up; scripts/fuzz.sh replays them under ASan + UBSan.
#include "tests/test_util.h"

#include <dirent.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

int quill_fuzz_quill(const uint8_t * data, size_t size);
int quill_fuzz_gguf(const uint8_t * data, size_t size);
int quill_fuzz_hf(const uint8_t * data, size_t size);
int quill_fuzz_llama2c(const uint8_t * data, size_t size);
int quill_fuzz_chat(const uint8_t * data, size_t size);
int quill_fuzz_server_request(const uint8_t * data, size_t size);

namespace {

std::vector<std::string> inputs(const std::string & target) {
    const std::string dir = std::string(QUILL_SOURCE_DIR) + "/tests/fuzz/regressions/" + target;
    std::vector<std::string> out;
    if (DIR * d = opendir(dir.c_str())) {
        while (struct dirent * e = readdir(d)) {
            const std::string n = e->d_name;
            const bool note = n.size() > 4 && (n.compare(n.size() - 3, 3, ".md") == 0 || n.compare(n.size() - 4, 4, ".txt") == 0);
            if (n[0] == '.' || note) continue;
            out.push_back(dir + "/" + n);
        }
        closedir(d);
    }
    std::sort(out.begin(), out.end());
    return out;
}

void replay(const std::string & target, int (*fn)(const uint8_t *, size_t)) {
    for (const std::string & path : inputs(target)) {
        CAPTURE(path);
        std::ifstream f(path, std::ios::binary);
        REQUIRE(f);
        std::stringstream ss;
        ss << f.rdbuf();
        const std::string bytes = ss.str();
        // Anything but quill::Error (ApiError for requests) escaping, or a broken contract, fails the case.
        CHECK_NOTHROW(fn((const uint8_t *) bytes.data(), bytes.size()));
    }
}

}  // namespace

TEST_CASE("fuzz regressions: quill") { replay("quill", quill_fuzz_quill); }
TEST_CASE("fuzz regressions: gguf") { replay("gguf", quill_fuzz_gguf); }
TEST_CASE("fuzz regressions: hf") { replay("hf", quill_fuzz_hf); }
TEST_CASE("fuzz regressions: llama2c") { replay("llama2c", quill_fuzz_llama2c); }
TEST_CASE("fuzz regressions: chat") { replay("chat", quill_fuzz_chat); }
TEST_CASE("fuzz regressions: server_request") { replay("server_request", quill_fuzz_server_request); }
