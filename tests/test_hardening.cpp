// Regression tests for what a hostile file or a careless user did to quill (issue 9): token ids that overflow,
// output files that a planted link redirects or a kill leaves behind, inputs that block or never end, option
// values that wrap around, files that load but cannot run, and sizes that overflow. Each case failed before its fix.
#include "cli/commands/args.h"
#include "formats/atomic_file.h"
#include "formats/gguf_writer.h"
#include "formats/model_file.h"
#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "ggml-lite/types.h"
#include "model/llama.h"
#include "model/tokenizer.h"
#include "tests/test_util.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <omp.h>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace quill;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string slurp(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void spit(const std::string & path, const std::string & bytes) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f.write(bytes.data(), (std::streamsize) bytes.size());
    REQUIRE(f.good());
}

std::string shq(const std::string & s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

std::string error_of(const std::function<void()> & fn) {
    try {
        fn();
    } catch (const Error & e) {
        return e.what();
    }
    return "";
}

int count_lines(const std::string & s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n + (!s.empty() && s.back() != '\n');
}

std::string stories_bin() { return shared_path("models/stories260K/stories260K.bin"); }
std::string stories_tok() { return shared_path("models/stories260K/tok512.bin"); }

// ---- processes: start, kill after a delay, wait ------------------------------------------------------------------

struct Child {
    pid_t pid = -1;
    int status = 0;
};

Child spawn(const std::vector<std::string> & args, const std::vector<std::string> & env = {}) {
    Child c;
    c.pid = fork();
    REQUIRE(c.pid >= 0);
    if (c.pid == 0) {
        const int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        dup2(null, 2);
        for (const std::string & e : env) putenv(strdup(e.c_str()));
        std::vector<char *> argv;
        for (const std::string & a : args) argv.push_back(const_cast<char *>(a.c_str()));
        argv.push_back(nullptr);
        execv(argv[0], argv.data());
        _exit(127);
    }
    return c;
}

// Waits at most `seconds`; returns false (and kills it) when the child is still running then.
bool wait_for(Child & c, double seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
    for (;;) {
        const pid_t r = waitpid(c.pid, &c.status, WNOHANG);
        if (r == c.pid) return true;
        if (std::chrono::steady_clock::now() >= end) {
            kill(c.pid, SIGKILL);
            waitpid(c.pid, &c.status, 0);
            return false;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
}

double run_seconds(const std::vector<std::string> & args) {
    const auto t0 = std::chrono::steady_clock::now();
    Child c = spawn(args);
    REQUIRE(wait_for(c, 120));
    REQUIRE_MESSAGE((WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0), "command failed: " << args[1]);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Starts `args` writing `out` in `dir` again and again, each time sending `sig` after a random delay within the
// command's run, until `want` runs were cut off before their output existed, and checks after every run that the
// folder holds only what it held before, plus possibly the output, which must then be a complete model that loads
// with every checksum right (a kill between the file getting its name and the exit leaves the finished model).
// The delays adapt to how fast the command runs now, so a busy machine only changes how many rounds it takes.
void kill_at_every_point(const TempDir & dir, const std::vector<std::string> & args, const std::string & out, int sig, int want,
                         const std::vector<std::string> & env = {}) {
    const std::vector<std::string> before = dir.list();
    double t = run_seconds(args);  // one full run, to learn the duration
    fs::remove(out);
    std::mt19937 rng(1234 + sig);
    int rounds = 0, finished = 0, absent = 0;
    while (absent < want && rounds < 6 * want) {
        const double delay = t * 1.1 * std::uniform_real_distribution<double>(0, 1)(rng);
        Child c = spawn(args, env);
        std::this_thread::sleep_for(std::chrono::duration<double>(delay));
        kill(c.pid, sig);
        REQUIRE(wait_for(c, 60));
        rounds++;
        const bool ok = WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0;
        std::vector<std::string> now = dir.list();
        const bool has_out = fs::exists(out);
        CAPTURE(delay);
        CAPTURE(rounds);
        if (ok) CHECK(has_out);
        if (has_out) CHECK_NOTHROW(load_model(out));  // checksums of the header and every tensor
        if (ok || has_out) {
            finished++;
            t *= 0.7;  // the kill came too late: aim earlier
        } else {
            absent++;
        }
        if (has_out) now.erase(std::remove(now.begin(), now.end(), fs::path(out).filename().string()), now.end());
        std::string left;
        for (const std::string & n : now)
            if (std::find(before.begin(), before.end(), n) == before.end()) left += " " + n;
        CHECK_MESSAGE(now == before, "a run left a file behind in " << dir.path << ":" << left);
        fs::remove(out);
        for (const std::string & n : dir.list())
            if (std::find(before.begin(), before.end(), n) == before.end()) fs::remove(dir / n);
    }
    MESSAGE(args[1] << " " << fs::path(out).extension().string() << ", signal " << sig << ": " << absent
                    << " runs cut off before their output existed, " << finished << " finished or killed after it, in " << rounds
                    << " rounds");
    CHECK(absent >= want);
}

}  // namespace

// ---- 1. token ids in tokenizer.json ------------------------------------------------------------------------------

TEST_CASE("hardening: tokenizer.json ids that overflow, are not integers or are negative are one-line errors naming the token") {
    REQUIRE_SHARED();
    TempDir dir;
    const json base = json::parse(slurp(shared_path("models/stories260K-hf/tokenizer.json")));
    const std::string victim = base["model"]["vocab"].begin().key();
    struct Case {
        const char * name;
        json id;
        bool added;  // in added_tokens rather than model.vocab
        const char * expect;
    };
    const Case cases[] = {
        {"INT64_MAX (id + 1 overflowed)", json(INT64_MAX), false, "outside"},
        {"UINT64_MAX", json(UINT64_MAX), false, "outside"},
        {"1e30 (float -> int64 was undefined)", json(1e30), false, "not an integer"},
        {"3.5", json(3.5), false, "not an integer"},
        {"a string", json("7"), false, "not an integer"},
        {"negative", json(-1), false, "outside"},
        {"beyond the bound", json(1 << 22), false, "outside"},
        {"far beyond the entries", json(3000000), false, "only"},
        {"added token INT64_MAX", json(INT64_MAX), true, "outside"},
        {"added token 1e30", json(1e30), true, "not an integer"},
        {"added token without an id", json(), true, "not an integer"},
    };
    for (const Case & c : cases) {
        CAPTURE(c.name);
        json t = base;
        if (c.added) {
            json a = {{"content", "<hostile>"}, {"special", true}};
            if (!c.id.is_null()) a["id"] = c.id;
            t["added_tokens"] = json::array({a});
        } else {
            t["model"]["vocab"][victim] = c.id;
        }
        const std::string path = dir / "tokenizer.json";
        spit(path, t.dump());
        Metadata meta;
        const std::string err = error_of([&] { import_hf_tokenizer(path, "", meta); });
        CHECK(err.find(c.expect) != std::string::npos);
        CHECK(err.find(c.added ? "<hostile>" : victim) != std::string::npos);
        CHECK(err.find('\n') == std::string::npos);
    }
}

TEST_CASE("hardening: quill info / convert on a Hugging Face directory with a hostile tokenizer.json exit 1 with one line") {
    REQUIRE_SHARED();
    TempDir dir;
    const std::string hf = dir / "hf";
    fs::create_directory(hf);
    for (const char * f : {"config.json", "model.safetensors", "tokenizer_config.json"})
        fs::copy_file(shared_path("models/stories260K-hf/") + f, hf + "/" + f);
    json t = json::parse(slurp(shared_path("models/stories260K-hf/tokenizer.json")));
    t["model"]["vocab"][t["model"]["vocab"].begin().key()] = INT64_MAX;
    spit(hf + "/tokenizer.json", t.dump());
    for (const std::string & cmd : {"info " + shq(hf), "convert " + shq(hf) + " -o " + shq(dir / "out.quill")}) {
        CAPTURE(cmd);
        std::string out;
        CHECK(run_command(quill_binary() + " " + cmd, &out) == 1);  // not a SIGSEGV
        CHECK(count_lines(out) == 1);
        CHECK(out.find("9223372036854775807") != std::string::npos);
    }
    CHECK(!fs::exists(dir / "out.quill"));
}

// ---- 4. output files: no link followed, nothing left by any kill ------------------------------------------------

TEST_CASE("hardening: a symlink planted at the old temporary name or at the output path is never written through") {
    REQUIRE_SHARED();
    TempDir dir;
    const std::string victim = dir / "victim.txt";
    spit(victim, "precious");
    const std::string in = stories_bin(), tok = stories_tok();
    for (const char * ext : {".quill", ".gguf"}) {
        CAPTURE(ext);
        const std::string out = dir / (std::string("x") + ext);
        // The reproducer from the issue: the process's own pid names the link it used to write through.
        const std::string cmd = "bash -c " + shq("ln -s " + shq(victim) + " " + shq(out) + ".tmp.$$; exec " + shq(quill_binary()) +
                                                " convert " + shq(in) + " --tokenizer " + shq(tok) + " -o " + shq(out));
        std::string log;
        CHECK(run_command(cmd, &log) == 0);
        CHECK(slurp(victim) == "precious");
        CHECK_NOTHROW(load_model(out));
        // A link at the output path is replaced by the new file, not followed.
        fs::remove(out);
        fs::create_symlink(victim, out);
        CHECK(run_command(quill_binary() + " convert " + shq(in) + " --tokenizer " + shq(tok) + " -o " + shq(out), &log) == 0);
        CHECK(slurp(victim) == "precious");
        CHECK(fs::is_regular_file(fs::symlink_status(out)));
        CHECK_NOTHROW(load_model(out));
        for (const std::string & n : dir.list())
            if (n != "victim.txt") fs::remove(dir / n);
    }
}

TEST_CASE("hardening: AtomicFile writes whole or nothing, on the O_TMPFILE path and on the named fallback") {
    TempDir dir;
    for (const char * fallback : {"0", "1"}) {
        CAPTURE(fallback);
        setenv("QUILL_NO_O_TMPFILE", fallback, 1);
        const std::string out = dir / "out.bin";
        {
            AtomicFile f(out);
            f.append("hello ", 6);
            f.append("world", 5);
            // While writing: nothing at the output path; the fallback's hidden name is the only entry.
            CHECK(!fs::exists(out));
            CHECK(dir.list().size() == (f.unnamed() ? 0u : 1u));
            f.commit();
        }
        CHECK(slurp(out) == "hello world");
        {
            AtomicFile f(out);  // over an existing file, abandoned: the old contents stay
            f.append("garbage", 7);
        }
        CHECK(slurp(out) == "hello world");
        CHECK(dir.list() == std::vector<std::string>{"out.bin"});
        {
            AtomicFile f(out);  // over an existing file, committed: replaced (a new inode)
            f.pwrite("new", 3, 0);
            f.commit();
        }
        CHECK(slurp(out) == "new");
        CHECK(dir.list() == std::vector<std::string>{"out.bin"});
        fs::remove(out);
    }
    unsetenv("QUILL_NO_O_TMPFILE");
    CHECK_THROWS_AS(AtomicFile(dir / "no/such/folder/out.bin"), Error);
    CHECK_THROWS_AS(AtomicFile(dir.path), Error);  // a directory
}

TEST_CASE("hardening: SIGKILL at any point of convert and quantize leaves no output and no temporary file") {
    REQUIRE_SHARED();
    TempDir dir;
    const std::string q = quill_binary(), in4 = shared_path("models/stories4M/stories4M.bin"), tok4 = shared_path("models/stories4M/tok512.bin");
    for (const char * ext : {".quill", ".gguf"}) {
        const std::string out = dir / (std::string("c") + ext);
        kill_at_every_point(dir, {q, "convert", in4, "--tokenizer", tok4, "--type", "q8_0", "-o", out}, out, SIGKILL, 12);
    }
    const std::string outq = dir / "q.quill";
    kill_at_every_point(dir,
                        {q, "quantize", "-m", in4, "--tokenizer", tok4, "-o", outq, "--method", "gptq", "--calib",
                         shared_path("data/text/tinystories-train-head2MiB.txt"), "--calib-tokens", "1024", "--seq-len", "256", "-t", "1", "-q"},
                        outq, SIGKILL, 8);
}

TEST_CASE("hardening: where O_TMPFILE is unavailable, SIGINT and SIGTERM at any point leave nothing behind") {
    REQUIRE_SHARED();
    TempDir dir;
    const std::string q = quill_binary(), in4 = shared_path("models/stories4M/stories4M.bin"), tok4 = shared_path("models/stories4M/tok512.bin");
    const std::vector<std::string> env = {"QUILL_NO_O_TMPFILE=1"};
    const std::string out = dir / "c.quill";
    kill_at_every_point(dir, {q, "convert", in4, "--tokenizer", tok4, "--type", "q8_0", "-o", out}, out, SIGTERM, 12, env);
    kill_at_every_point(dir, {q, "convert", in4, "--tokenizer", tok4, "--type", "q8_0", "-o", out}, out, SIGINT, 12, env);
    const std::string outq = dir / "q.quill";
    kill_at_every_point(dir,
                        {q, "quantize", "-m", in4, "--tokenizer", tok4, "-o", outq, "--method", "rtn", "--bits", "3", "-t", "1", "-q"},
                        outq, SIGTERM, 8, env);
}

// ---- 5. inputs that block or never end ---------------------------------------------------------------------------

TEST_CASE("hardening: -m on a FIFO, -f on /dev/zero, a FIFO or a directory are refused at once") {
    REQUIRE_SHARED();
    TempDir dir;
    const std::string fifo = dir / "fifo";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    const std::string q = quill_binary(), m = " -m " + shq(stories_bin()) + " --tokenizer " + shq(stories_tok());
    struct Case {
        std::string args, expect;
    };
    const Case cases[] = {
        {"run -m " + shq(fifo) + " -p hi", "not a regular file"},
        {"info " + shq(fifo), "not a regular file"},
        {"run" + m + " -n 2 -f /dev/zero", "not a regular file"},
        {"run" + m + " -n 2 -f " + shq(fifo), "not a regular file"},
        {"run" + m + " -n 2 -f " + shq(dir.path), "directory"},
        {"perplexity" + m + " -f /dev/zero", "not a regular file"},
        {"quantize" + m + " -o " + shq(dir / "o.quill") + " --calib /dev/zero", "not a regular file"},
    };
    for (const Case & c : cases) {
        CAPTURE(c.args);
        std::string out;
        // `timeout` turns a hang into exit 124 and a memory blow-up is bounded by the 2 s.
        CHECK(run_command("timeout 10 " + q + " " + c.args, &out) == 1);
        CHECK(out.find(c.expect) != std::string::npos);
        CHECK(count_lines(out) == 1);
    }
    // A regular prompt file over the bound is refused by its size, before it is read.
    const std::string big = dir / "big.txt";
    { std::ofstream f(big); }
    REQUIRE(truncate(big.c_str(), (off_t) 65 << 20) == 0);
    std::string out;
    CHECK(run_command("timeout 10 " + q + " run" + m + " -n 2 -f " + shq(big), &out) == 1);
    CHECK(out.find("too large") != std::string::npos);
    CHECK_THROWS_AS(read_file_bounded(big, 1 << 20), Error);
    spit(big, "Once upon a time");
    CHECK(read_file_bounded(big, 16) == "Once upon a time");
    CHECK_THROWS_AS(read_file_bounded(big, 15), Error);
}

// ---- 6. option values ------------------------------------------------------------------------------------------

TEST_CASE("hardening: out-of-range and wrapped-around option values are rejected by the option parser, in every subcommand") {
    struct Case {
        std::string args, option;
    };
    const Case cases[] = {
        {"run -m x -c 4294967360", "-c"},  // used to become 64
        {"run -m x --temp -1", "--temp"},
        {"run -m x --temp nan", "--temp"},
        {"run -m x --top-k -5", "--top-k"},
        {"run -m x --top-p 7", "--top-p"},
        {"run -m x --min-p 1.5", "--min-p"},
        {"run -m x -b 0", "-b"},
        {"run -m x -c -1", "-c"},
        {"run -m x -n 1x", "-n"},
        {"run -m x --repeat-last-n -7", "--repeat-last-n"},
        {"run -m x --repeat-penalty 0", "--repeat-penalty"},
        {"run -m x --seed 99999999999999999999", "--seed"},
        {"run -m x --chat-template bogus", "--chat-template"},
        {"run -m x -t -2", "-t"},
        {"perplexity -m x -f y -c 4294967360", "-c"},
        {"perplexity -m x -f y --chunks -3", "--chunks"},
        {"serve -m x -np 0", "-np"},
        {"serve -m x --port 70000", "--port"},
        {"serve -m x --drain-timeout -1", "--drain-timeout"},
        {"serve -m x --chat-template bogus", "--chat-template"},
        {"quantize -m x -o y.quill --bits 9", "--bits"},
        {"quantize -m x -o y.quill --damp inf", "--damp"},
        {"bench --synthetic stories260k -r 0", "-r"},
    };
    for (const Case & c : cases) {
        CAPTURE(c.args);
        std::string out;
        CHECK(run_command(quill_binary() + " " + c.args, &out) == 1);
        CHECK(out.find("option " + c.option + " must be") != std::string::npos);
        CHECK(count_lines(out) == 1);
    }
    // The parser itself: values are checked when given, defaults when read; "" keeps a choice's "detect" default.
    Args a("t", "", {{{"-n"}, "N", "5", "", int_in(1, 10)}, {{"-x"}, "X", "0.5", "", real_in(0, 1)}, {{"-k"}, "K", "", "", one_of({"a", "b"})}});
    const char * ok[] = {"-n", "10", "-x", "1", "-k", "b"};
    CHECK(a.parse(6, const_cast<char **>(ok)));
    CHECK(a.num("-n") == 10);
    CHECK(a.real("-x") == 1.0);
    Args b("t", "", {{{"-n"}, "N", "5", "", int_in(1, 10)}, {{"-k"}, "K", "", "", one_of({"a", "b"})}});
    const char * empty[] = {"-k", ""};
    CHECK(b.parse(2, const_cast<char **>(empty)));
    CHECK(b.num("-n") == 5);
    for (const char * bad : {"11", "0", "", " 5", "5 ", "0x5", "5.0"}) {
        CAPTURE(bad);
        Args c("t", "", {{{"-n"}, "N", "5", "", int_in(1, 10)}});
        const char * argv[] = {"-n", bad};
        CHECK_THROWS_AS(c.parse(2, const_cast<char **>(argv)), Error);
    }
}

// ---- 7. files that load but cannot run -------------------------------------------------------------------------

TEST_CASE("hardening: convert refuses a cut-off tokenizer.bin instead of writing a file that run refuses") {
    REQUIRE_SHARED();
    TempDir dir;
    spit(dir / "tok100.bin", slurp(stories_tok()).substr(0, 100));
    std::string out;
    CHECK(run_command(quill_binary() + " convert " + shq(stories_bin()) + " --tokenizer " + shq(dir / "tok100.bin") + " -o " +
                          shq(dir / "x.quill"),
                      &out) == 1);
    CHECK(out.find("the tokenizer has") != std::string::npos);
    CHECK(out.find("512 rows") != std::string::npos);
    CHECK(dir.list() == std::vector<std::string>{"tok100.bin"});
}

TEST_CASE("hardening: a NaN RMSNorm epsilon, a zero or NaN RoPE base, or a bad rope_freqs are load errors") {
    REQUIRE_SHARED();
    TempDir dir;
    const ModelFile good = load_gguf(shared_path("golden/stories260K/stories260K-F32.gguf"));
    CHECK_NOTHROW(validate_runnable(good));
    struct Case {
        const char * key;
        float value;
        const char * expect;
    };
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    const Case cases[] = {
        {"llama.attention.layer_norm_rms_epsilon", nan, "epsilon"}, {"llama.attention.layer_norm_rms_epsilon", 0.0f, "epsilon"},
        {"llama.attention.layer_norm_rms_epsilon", -1.0f, "epsilon"}, {"llama.rope.freq_base", 0.0f, "RoPE base"},
        {"llama.rope.freq_base", nan, "RoPE base"},                  {"llama.rope.freq_base", inf, "RoPE base"},
    };
    for (const Case & c : cases) {
        CAPTURE(c.key);
        CAPTURE(c.value);
        ModelFile mf = load_gguf(shared_path("golden/stories260K/stories260K-F32.gguf"));
        mf.meta.set_f32(c.key, c.value);
        const std::string path = dir / "bad.gguf";
        save_gguf(path, mf);
        CHECK(error_of([&] { validate_runnable(load_gguf(path)); }).find(c.expect) != std::string::npos);
        std::string out;
        CHECK(run_command(quill_binary() + " run -m " + shq(path) + " -p hi -n 4 --temp 0", &out) == 1);  // was: empty tokens, exit 0
        CHECK(out.find(c.expect) != std::string::npos);
        CHECK(run_command(quill_binary() + " convert " + shq(path) + " -o " + shq(dir / "o.quill"), &out) == 1);
        CHECK(!fs::exists(dir / "o.quill"));
    }
    // rope_freqs.weight (llama3 scaling) with a zero factor.
    ModelFile mf = load_gguf(shared_path("golden/stories260K/stories260K-F32.gguf"));
    const int64_t n_rot = mf.meta.get_int("llama.rope.dimension_count", 8);
    std::vector<float> freqs((size_t) n_rot / 2, 1.0f);
    freqs[1] = 0.0f;
    mf.add_owned("rope_freqs.weight", GL_TYPE_F32, {(int64_t) freqs.size()}, freqs.data(), freqs.size() * sizeof(float));
    CHECK(error_of([&] { validate_runnable(mf); }).find("rope_freqs") != std::string::npos);
}

// ---- 8. sizes that overflow --------------------------------------------------------------------------------------

TEST_CASE("hardening: codebook geometry of huge shapes is refused without overflowing") {
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (!gl_vq_info((gl_type) t)) continue;
        const std::string type = gl_type_name((gl_type) t);
        CAPTURE(type);
        gl_vq_geom g;
        const int64_t big = (int64_t) 1 << 40;
        CHECK_FALSE(gl_vq_geometry((gl_type) t, big, big, &g));          // n_groups overflowed 64 bits here
        CHECK_FALSE(gl_vq_geometry((gl_type) t, big, (int64_t) 1 << 20, &g));
        REQUIRE(gl_vq_geometry((gl_type) t, 256, 512, &g));            // an ordinary shape still works
        CHECK(g.total_bytes == g.row_bytes * 512 + g.side_bytes);
        CHECK(g.side_bytes == g.codebooks_offset + (size_t) g.n_groups * (size_t) g.k * (size_t) g.dim);
    }
}

// ---- fuzz findings ---------------------------------------------------------------------------------------------

TEST_CASE("hardening: GGUF general.alignment below 8 is refused (it put tensor data at misaligned addresses)") {
    // Found by fuzz_gguf under UBSan (q4_0_to_float). Every saved input is replayed by tests/fuzz/regressions_test.cpp.
    for (const char * name : {"alignment-bool-1-misaligned-q4_0", "alignment-misaligned-q8_0"}) {
        const std::string path = std::string(QUILL_SOURCE_DIR) + "/tests/fuzz/regressions/gguf/" + name;
        CAPTURE(path);
        REQUIRE(fs::exists(path));
        CHECK(error_of([&] { load_model(path); }).find("general.alignment") != std::string::npos);
    }
}

TEST_CASE("hardening: a float where an integer is expected converts only when whole and in range") {
    Metadata m;
    m.set_f32("whole", 2048.0f);
    m.set_f32("huge", 1e30f);
    m.set_f32("nan", std::numeric_limits<float>::quiet_NaN());
    m.set_f32("half", 2.5f);
    CHECK(m.get_int("whole", 0) == 2048);
    for (const char * k : {"huge", "nan", "half"}) {
        CAPTURE(k);
        const std::string err = error_of([&] { (void) m.get_int(k, 0); });  // 1e30 -> int64 was undefined
        CHECK(err.find(std::string("'") + k + "'") != std::string::npos);
        CHECK(err.find("not an integer") != std::string::npos);
    }
    m.set("big", MetaValue::of_u64(UINT64_MAX));
    CHECK(error_of([&] { (void) m.get_int("big", 0); }).find("too large") != std::string::npos);
}

// ---- scratch sized from the threads that run --------------------------------------------------------------------

TEST_CASE("hardening: a Context built at one thread and decoding at four gives the same logits as one built at four") {
    // quill bench built the Context before setting the thread count: attention scratch sized for 1 thread, indexed
    // by 4 (valgrind: "Invalid write ... 0 bytes after a block", issue 10). Scratch is now sized where it is used.
    REQUIRE_SHARED();
    const ModelFile mf = load_gguf(shared_path("golden/stories260K/stories260K-F32.gguf"));
    const LlamaModel model(mf);
    ContextParams cp;
    cp.n_ctx = 64;
    Batch b;
    for (int32_t i = 0; i < 24; ++i) b.add((i * 37 + 5) % (int32_t) model.hp.n_vocab, i, 0, true);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    Context one(model, cp);
    omp_set_num_threads(4);
    Context four(model, cp);
    one.decode(b);
    four.decode(b);
    omp_set_num_threads(saved);
    REQUIRE(one.n_logits() == 24);
    for (size_t i = 0; i < 24; ++i)
        CHECK(std::memcmp(one.logits(i), four.logits(i), sizeof(float) * (size_t) model.hp.n_vocab) == 0);
}

TEST_CASE("hardening: SPM's default special ids are absent in a vocabulary too small to hold them") {
    // fuzz_gguf: a 1-token vocabulary without bos/eos keys encoded BOS as token 1, past the end.
    Metadata m;
    m.set_str("tokenizer.ggml.model", "llama");
    m.set("tokenizer.ggml.tokens", MetaValue::of_strs({"a"}));
    const Tokenizer tok = Tokenizer::from_metadata(m);
    CHECK(tok.bos() == -1);
    CHECK(tok.eos() == -1);
    for (int32_t id : tok.encode("a b a", true, false)) CHECK((id >= 0 && id < tok.n_vocab()));
}
