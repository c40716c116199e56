// quill bench: like llama-bench. Prompt processing (pp) and generation (tg) tokens/s as a markdown table, plus the
// share of the machine's memory bandwidth that generation uses: tg's bytes of weights per second against a read-only
// stream at the same thread count, measured in the same run (a STREAM copy beside it).
#include "cli/commands/args.h"
#include "cli/commands/kv_opt.h"
#include "formats/gguf_writer.h"
#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"
#include "model/llama.h"
#include "model/synthetic.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <omp.h>
#include <sstream>

namespace quill {

using Clock = std::chrono::steady_clock;

static std::vector<std::string> split_list(const std::string & s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string item;
    while (std::getline(ss, item, ',')) {
        if (!item.empty()) out.push_back(item);
    }
    return out;
}

static std::vector<long long> split_ints(const std::string & s, const char * opt) {
    std::vector<long long> out;
    for (const std::string & x : split_list(s)) {
        char * end = nullptr;
        long long v = strtoll(x.c_str(), &end, 10);
        if (*end || v < 0) throw_error("bench: %s expects non-negative integers, got '%s'", opt, x.c_str());
        out.push_back(v);
    }
    return out;
}

// The memory limits generation runs against, over buffers far larger than the caches, at a given thread count,
// best of 5 (after one warm-up pass). Each thread works on its own contiguous slice, first touched by that thread.
//   Both buffers are gl_buffers, the allocation the weights regrouped at load live in (2 MiB-aligned, transparent
//   huge pages advised).
//   read:  every thread reads its slice once, as a decode step streams the weights (which are only read): as 4
//          interleaved streams, each prefetched 2 KiB ahead, XORed into 8 independent accumulators. On the 2-core VM
//          this was written on, a single plain stream read 7.4 GB/s per thread; this reads 15.5, and quill's
//          decode kernels (which prefetch) 12, so a plain stream would understate the limit. Bytes moved = read.
//   copy:  STREAM's a[i] = b[i]; bytes moved = read + write.
struct StreamBandwidth {
    double read_gbs = 0, copy_gbs = 0;
};

static uint64_t read_slice(const uint64_t * p, size_t n) {
    constexpr int kStreams = 4;
    constexpr size_t kAhead = 2048 / sizeof(uint64_t);
    uint64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const size_t per = n / kStreams / 8 * 8;
    for (size_t i = 0; i < per; i += 8) {
        for (int s = 0; s < kStreams; ++s) {
            const uint64_t * q = p + (size_t) s * per + i;
            __builtin_prefetch(q + kAhead);
            for (int k = 0; k < 8; ++k) acc[k] ^= q[k];
        }
    }
    for (size_t i = (size_t) kStreams * per; i < n; ++i) acc[0] ^= p[i];  // the tail
    return acc[0] ^ acc[1] ^ acc[2] ^ acc[3] ^ acc[4] ^ acc[5] ^ acc[6] ^ acc[7];
}

static StreamBandwidth measure_stream(size_t bytes, int threads) {
    const size_t n = bytes / sizeof(uint64_t);
    // gl_buffers, like the weights decode streams (transparent huge pages where the system allows them): the
    // limit is measured on the same kind of memory.
    gl_buffer abuf(n * sizeof(uint64_t)), bbuf(n * sizeof(uint64_t));
    uint64_t * a = (uint64_t *) abuf.data();
    uint64_t * b = (uint64_t *) bbuf.data();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < n; ++i) a[i] = 0, b[i] = i * 0x9e3779b97f4a7c15ull;
    StreamBandwidth out;
    uint64_t check = 0;
    for (int rep = 0; rep < 6; ++rep) {
        uint64_t x = 0;
        auto t0 = Clock::now();
#pragma omp parallel num_threads(threads) reduction(^ : x)
        {
            const size_t nt = (size_t) omp_get_num_threads(), t = (size_t) omp_get_thread_num();
            const size_t lo = n * t / nt, hi = n * (t + 1) / nt;
            x ^= read_slice(b + lo, hi - lo);
        }
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (rep > 0) out.read_gbs = std::max(out.read_gbs, (double) n * sizeof(uint64_t) / s / 1e9);
        check = x;
    }
    for (int rep = 0; rep < 6; ++rep) {
        auto t0 = Clock::now();
#pragma omp parallel for schedule(static) num_threads(threads)
        for (size_t i = 0; i < n; ++i) a[i] = b[i];
        const double s = std::chrono::duration<double>(Clock::now() - t0).count();
        if (rep > 0) out.copy_gbs = std::max(out.copy_gbs, 2.0 * (double) n * sizeof(uint64_t) / s / 1e9);
    }
    // The XOR of i·φ over every i; recomputed, so the reads cannot be optimised away and a wrong read shows.
    uint64_t want = 0;
    for (size_t i = 0; i < n; ++i) want ^= i * 0x9e3779b97f4a7c15ull;
    if (a[n / 2] != b[n / 2] || check != want) fprintf(stderr, "bench: bandwidth check failed\n");
    return out;
}

static size_t rss_kib(const char * field) {
    std::ifstream f("/proc/self/status");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind(field, 0) == 0) return (size_t) strtoull(line.c_str() + strlen(field) + 1, nullptr, 10);
    }
    return 0;
}

struct Stat {
    double mean = 0, sd = 0;
};
static Stat stats(const std::vector<double> & v) {
    Stat s;
    for (double x : v) s.mean += x;
    s.mean /= (double) v.size();
    for (double x : v) s.sd += (x - s.mean) * (x - s.mean);
    s.sd = v.size() > 1 ? sqrt(s.sd / (double) (v.size() - 1)) : 0.0;
    return s;
}

static std::string human_size(size_t bytes) {
    if (bytes >= (1ull << 30)) return strfmt("%.2f GiB", bytes / 1073741824.0);
    return strfmt("%.2f MiB", bytes / 1048576.0);
}

static std::string human_params(int64_t n) {
    if (n >= 1000000000) return strfmt("%.2f B", n / 1e9);
    if (n >= 1000000) return strfmt("%.2f M", n / 1e6);
    return strfmt("%.2f K", n / 1e3);
}

int cmd_bench(int argc, char ** argv) {
    Args args("bench", "[-m FILE[,FILE...]] [--synthetic NAME --type T[,T...]] [-p N] [-n N] [-d N] [-t N] [-r N]",
              {
                  {{"-m", "--model"}, "FILES", "", "model files, comma-separated"},
                  {{"--synthetic"}, "NAME", "", "random weights at a real shape: tinyllama-1.1b, llama2-7b, stories260k (labelled synthetic)"},
                  {{"--type"}, "TYPES", "q4_0", "weight types of the synthetic model, comma-separated"},
                  {{"--save"}, "FILE", "", "write the synthetic model to FILE (.gguf for llama.cpp, or .quill) and exit"},
                  {{"-p", "--n-prompt"}, "N", "512", "prompt tokens for pp tests, comma-separated (0: none)"},
                  {{"-n", "--n-gen"}, "N", "128", "generated tokens for tg tests, comma-separated (0: none)"},
                  {{"-d", "--n-depth"}, "N", "0", "context depth: tokens already in the cache before each pp and tg test, comma-separated"},
                  {{"-t", "--threads"}, "N", "0", "thread counts, comma-separated (0: physical cores)"},
                  {{"-r", "--repetitions"}, "N", "5", "repetitions of each test", int_in(1, 1000)},
                  {{"-b", "--batch-size"}, "N", "512", "tokens per forward pass in pp", int_in(1, kMaxTokens)},
                  kv_type_option(),
                  {{"--no-bandwidth"}, "", "", "skip the memory bandwidth measurement"},
                  {{"--no-x16"}, "", "", "keep Q4_0/Q8_0 weights in their stored row layout (no x16 regrouping at load)"},
              });
    if (!args.parse(argc, argv)) return 0;
    if (!args.positional().empty()) throw_error("bench: unexpected argument '%s'", args.positional()[0].c_str());

    // The models: files, or synthetic ones built in memory. Each is made when its turn comes and released after it
    // (four synthetic 7B models at once would not fit a 24 GB machine).
    struct Entry { std::string label; std::function<std::shared_ptr<ModelFile>()> make; };
    std::vector<Entry> models;
    if (args.has("--synthetic")) {
        const std::string name = args.str("--synthetic");
        for (const std::string & tn : split_list(args.str("--type"))) {
            gl_type ty;
            if (!gl_type_from_name(tn.c_str(), &ty)) throw_error("bench: unknown type '%s'", tn.c_str());
            auto build = [name, ty]() {
                auto t0 = Clock::now();
                auto mf = std::make_shared<ModelFile>(make_synthetic_model(name, ty));
                fprintf(stderr, "bench: built synthetic %s %s in %.1f s\n", name.c_str(), gl_type_name(ty),
                        std::chrono::duration<double>(Clock::now() - t0).count());
                return mf;
            };
            if (args.has("--save")) {
                const auto mf = build();
                const std::string out = args.str("--save");
                if (out.size() > 5 && out.compare(out.size() - 5, 5, ".gguf") == 0) save_gguf(out, *mf);
                else save_quill(out, *mf);
                fprintf(stderr, "bench: wrote %s\n", out.c_str());
                return 0;
            }
            models.push_back({"synthetic " + name + " " + gl_type_name(ty), build});
        }
    }
    for (const std::string & path : split_list(args.str("-m"))) {
        std::string label = path.substr(path.find_last_of('/') + 1);
        models.push_back({label, [path]() {
                              LoadOptions lo;
                              return std::make_shared<ModelFile>(load_model(path, lo));
                          }});
    }
    if (models.empty()) throw_error("bench: give -m FILE or --synthetic NAME (see quill bench --help)");

    const std::vector<long long> pps = split_ints(args.str("-p"), "-p"), tgs = split_ints(args.str("-n"), "-n"),
                                 depths = split_ints(args.str("-d"), "-d"), threads = split_ints(args.str("-t"), "-t");
    const long long reps = args.num("-r");
    const gl_type kv_type = kv_type_arg(args);

    printf("| model | size | params | backend | threads | test | t/s |\n");
    printf("| --- | ---: | ---: | --- | ---: | ---: | ---: |\n");
    fflush(stdout);
    struct TgResult { std::string label; long long threads; double tps; size_t bytes_per_token; };
    std::vector<TgResult> tg_results;
    size_t rss_peak = 0;
    for (Entry & e : models) {
        const std::shared_ptr<ModelFile> mf = e.make();
        if (mf->meta.has("quill.synthetic") && e.label.find("synthetic") == std::string::npos) e.label += " (synthetic)";
        LlamaModel model(*mf, !args.flag("--no-x16"));
        size_t file_bytes = 0;
        int64_t n_params = 0;
        for (const TensorData & t : mf->tensors) file_bytes += t.nbytes, n_params += t.n_elements();
        long long max_p = 0, max_n = 0, max_d = 0;
        for (long long p : pps) max_p = std::max(max_p, p);
        for (long long n : tgs) max_n = std::max(max_n, n);
        for (long long d : depths) max_d = std::max(max_d, d);
        if (max_p > kMaxTokens || max_n > kMaxTokens || max_d > kMaxTokens || max_d + std::max(max_p, max_n) > kMaxTokens)
            throw_error("bench: depth %lld plus %lld tokens exceeds the largest context (%lld positions)", max_d, std::max(max_p, max_n),
                        kMaxTokens);
        ContextParams cp;
        cp.n_ctx = (int32_t) std::max<long long>(16, max_d + std::max(max_p, max_n));
        // (the depth is filled in batches too)
        cp.n_batch = (int32_t) std::max<long long>(1, std::min<long long>(args.num("-b"), std::max<long long>(1, std::max(max_p, max_d))));
        cp.kv_type = kv_type;
        Context ctx(model, cp);
        uint64_t rng = 12345;
        auto rand_tok = [&]() {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            return (int32_t) (rng % (uint64_t) model.hp.n_vocab);
        };
        Batch b;
        // Positions [from, to) of sequence 0 in batches of n_batch, the cache holding exactly the first `from`.
        auto prompt = [&](long long from, long long to) {
            for (long long i = from; i < to; i += cp.n_batch) {
                b.clear();
                for (long long j = i; j < std::min(to, i + cp.n_batch); ++j) b.add(rand_tok(), (int32_t) j, 0, j + 1 == to);
                ctx.decode(b);
            }
        };
        // The timed tests start at depth d: the first d positions stay in the cache (filled once per depth, untimed).
        auto run_pp = [&](long long p, long long d) {
            ctx.truncate_seq(0, (int32_t) d);
            prompt(d, d + p);
        };
        auto run_tg = [&](long long n, long long d) {
            ctx.truncate_seq(0, (int32_t) d);
            for (long long i = d; i < d + n; ++i) {
                b.clear();
                b.add(rand_tok(), (int32_t) i, 0, true);
                ctx.decode(b);
            }
        };
        for (long long th : threads) {
            set_threads(th);
            const int nth = omp_get_max_threads();
            ctx.clear_seq(0);
            run_pp(std::min<long long>(cp.n_batch, 32), 0);  // warm-up, as llama-bench
            run_tg(1, 0);
            auto row = [&](const std::string & test, const std::vector<double> & v) {
                Stat s = stats(v);
                printf("| %s | %s | %s | CPU (%s) | %d | %s | %.2f ± %.2f |\n", e.label.c_str(), human_size(file_bytes).c_str(),
                       human_params(n_params).c_str(), gl_cpu_level_name(gl_cpu_level_get()), nth, test.c_str(), s.mean, s.sd);
                fflush(stdout);
                return s;
            };
            for (long long d : depths) {
                ctx.clear_seq(0);
                prompt(0, d);
                const std::string at = d > 0 ? strfmt(" @ d%lld", d) : std::string();
                // tokens / seconds of each repetition of run()
                auto timed = [&](long long tokens, const auto & run) {
                    std::vector<double> v;
                    for (long long r = 0; r < reps; ++r) {
                        auto t0 = Clock::now();
                        run();
                        v.push_back((double) tokens / std::chrono::duration<double>(Clock::now() - t0).count());
                    }
                    return v;
                };
                for (long long p : pps) {
                    if (p > 0) row(strfmt("pp%lld", p) + at, timed(p, [&] { run_pp(p, d); }));
                }
                for (long long n : tgs) {
                    if (n == 0) continue;
                    const std::vector<double> v = timed(n, [&] { run_tg(n, d); });
                    Stat s = row(strfmt("tg%lld", n) + at, v);
                    // bytes per token: the weights, and the cache rows attention reads (on average d + n / 2 of them)
                    const size_t kv_read = (size_t) ((double) ctx.kv().bytes_per_token() * ((double) d + (double) n / 2.0));
                    tg_results.push_back({e.label + at, (long long) nth, s.mean, model.weight_bytes + kv_read});
                }
            }
        }
        rss_peak = std::max(rss_peak, rss_kib("VmHWM:"));
        fprintf(stderr, "bench: %s: weights %s, KV cache %s (%s, %zu bytes per token), peak RSS so far %s\n", e.label.c_str(),
                human_size(file_bytes).c_str(), human_size(ctx.kv().bytes()).c_str(), gl_type_name(ctx.kv().type), ctx.kv().bytes_per_token(),
                human_size(rss_peak * 1024).c_str());
    }

    if (!tg_results.empty() && !args.flag("--no-bandwidth")) {
        // The limits at each thread count tg ran with: generation reads the weights once per token, so the read
        // stream is its ceiling; the copy figure is the classic STREAM number, for comparison.
        std::map<long long, StreamBandwidth> at;
        for (const TgResult & r : tg_results)
            if (!at.count(r.threads)) at[r.threads] = measure_stream((size_t) 512 << 20, (int) r.threads);
        printf("\nmemory bandwidth (512 MiB buffers, best of 5):\n");
        for (const auto & kv : at)
            printf("  %lld threads: read stream %.1f GB/s, STREAM copy %.1f GB/s (read + write bytes)\n", kv.first, kv.second.read_gbs,
                   kv.second.copy_gbs);
        for (const TgResult & r : tg_results) {
            const double gbs = (double) r.bytes_per_token * r.tps / 1e9;
            const StreamBandwidth & bw = at[r.threads];
            printf("%s, %lld threads: tg reads %.1f MB of weights and KV cache per token -> %.1f GB/s = %.0f%% of the read stream (%.0f%% of copy)\n",
                   r.label.c_str(), r.threads, r.bytes_per_token / 1e6, gbs, 100.0 * gbs / bw.read_gbs, 100.0 * gbs / bw.copy_gbs);
        }
    }
    return 0;
}

}  // namespace quill
