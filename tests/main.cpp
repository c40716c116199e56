#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "tests/test_util.h"

#include <array>
#include <cstdio>
#include <sys/wait.h>

std::string make_temp_dir() {
    char tmpl[] = "/tmp/quill-test-XXXXXX";
    char * d = mkdtemp(tmpl);
    REQUIRE(d != nullptr);
    return d;
}

std::string quill_binary() { return QUILL_BINARY; }

int run_command(const std::string & cmd, std::string * output) {
    std::string full = "( " + cmd + " ) 2>&1";
    FILE * p = popen(full.c_str(), "r");
    if (!p) return -1;
    std::array<char, 4096> buf;
    std::string out;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    int st = pclose(p);
    if (output) *output = out;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int main(int argc, char ** argv) {
    doctest::Context ctx;
    ctx.applyCommandLine(argc, argv);
    return ctx.run();
}
