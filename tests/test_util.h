// Helpers shared by the tests.
#pragma once

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <system_error>
#include <vector>
#include <string>
#include <sys/stat.h>

#include <doctest/doctest.h>

// Absolute path of ../shared/<rel>, or "" when ../shared is not there (a user's clone). Tests that get ""
// skip with a clear message; under CI=true a missing ../shared fails instead, so nothing is skipped silently.
inline std::string shared_root() {
    const char * env = std::getenv("QUILL_SHARED");
    std::string root = env && *env ? std::string(env) : std::string(QUILL_SOURCE_DIR) + "/../shared";
    struct stat st;
    if (stat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return "";
    return root;
}

inline bool ci_mode() {
    const char * ci = std::getenv("CI");
    return ci && (std::string(ci) == "true" || std::string(ci) == "1");
}

inline std::string shared_path(const char * rel) {
    std::string root = shared_root();
    if (root.empty()) return "";
    return root + "/" + rel;
}

// Use at the top of a test: returns from it (skipping) when ../shared is missing, fails under CI.
#define REQUIRE_SHARED()                                                                                   \
    do {                                                                                                   \
        if (shared_root().empty()) {                                                                       \
            if (ci_mode()) FAIL("../shared is missing and CI=true: the test data must be beside the repo"); \
            MESSAGE("SKIP: ../shared not found (set QUILL_SHARED to the data folder to run this test)");    \
            return;                                                                                        \
        }                                                                                                  \
    } while (0)

// A fresh temporary directory for one test (removed by the OS's tmp cleaner; tests remove what they make).
std::string make_temp_dir();

// A fresh temporary directory that is removed, with everything in it, when the test ends.
struct TempDir {
    std::string path = make_temp_dir();
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string operator/(const std::string & name) const { return path + "/" + name; }
    std::vector<std::string> list() const {  // the names in it, sorted
        std::vector<std::string> names;
        for (const auto & e : std::filesystem::directory_iterator(path)) names.push_back(e.path().filename().string());
        std::sort(names.begin(), names.end());
        return names;
    }
};
std::string quill_binary();
// Runs a shell command, returning its exit status and capturing stdout+stderr.
int run_command(const std::string & cmd, std::string * output);

// The number printed right after `key` in a command's output (e.g. "Final estimate: PPL = "); fails when absent.
inline double parse_after(const std::string & log, const std::string & key) {
    const size_t p = log.find(key);
    REQUIRE_MESSAGE(p != std::string::npos, key << " not in:\n" << log);
    return atof(log.c_str() + p + key.size());
}
