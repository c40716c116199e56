// quill perplexity: llama.cpp's method, so the numbers are comparable (see ../shared/golden/README.md):
// tokenize the whole file once with one BOS; cut it into floor(n/ctx) chunks of ctx tokens; evaluate each chunk
// from an empty cache with its first token replaced by BOS; score positions ctx/2 .. ctx-2 (predicting the next
// token); PPL = exp(mean NLL).
//
// With --kld-base BASE, the base model (typically the unquantized original) runs on the same chunks, and for every
// scored position the KL-divergence KL(p_base || p_model) = Σ_v p_base(v)·(log p_base(v) − log p_model(v)) is taken,
// as llama.cpp's --kl-divergence does (it reads the base logits from a file it saved earlier; here the base runs
// alongside, one chunk at a time, so memory stays at one chunk of logits per model). The base runs with an f16 KV
// cache (--kld-base-kv-type) whatever --kv-type is, so the same model as base measures a KV type against f16. Reported next to PPL: the mean
// KLD with its standard error, the maximum, the 99.9/99/90/median percentiles, and how often both models rank the same
// token first.
#include "cli/commands/args.h"
#include "cli/commands/kv_opt.h"
#include "ggml-lite/common.h"
#include "model/llama.h"
#include "model/tokenizer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <memory>

namespace quill {

// -log p(target) from logits, in double like llama.cpp.
static double nll_of(const float * logits, int64_t n_vocab, int32_t target) {
    float max = logits[0];
    for (int64_t i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) sum += exp((double) (logits[i] - max));
    return -((double) (logits[target] - max) - log(sum));
}

// KL(p || q) for the distributions of two logit rows, in double; *same_top: whether both rank the same token first.
static double kld_of(const float * base, const float * logits, int64_t n_vocab, bool * same_top) {
    float mb = base[0], mq = logits[0];
    int64_t ab = 0, aq = 0;
    for (int64_t i = 1; i < n_vocab; ++i) {
        if (base[i] > mb) mb = base[i], ab = i;
        if (logits[i] > mq) mq = logits[i], aq = i;
    }
    double sb = 0.0, sq = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) {
        sb += exp((double) (base[i] - mb));
        sq += exp((double) (logits[i] - mq));
    }
    const double lsb = log(sb), lsq = log(sq);
    double kld = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) {
        const double lp = (double) (base[i] - mb) - lsb;  // log p_base
        const double lq = (double) (logits[i] - mq) - lsq;
        kld += exp(lp) * (lp - lq);
    }
    *same_top = ab == aq;
    return std::max(kld, 0.0);  // rounding can leave -1e-17 for identical rows
}

// Value at quantile q of sorted v (linear interpolation between neighbours).
static double quantile(const std::vector<double> & v, double q) {
    if (v.empty()) return 0.0;
    const double pos = q * (double) (v.size() - 1);
    const size_t i = (size_t) pos;
    const double f = pos - (double) i;
    return i + 1 < v.size() ? v[i] * (1.0 - f) + v[i + 1] * f : v[i];
}

int cmd_perplexity(int argc, char ** argv) {
    Args args("perplexity", "-m FILE -f TEXT [-c N] [--chunks K] [--kld-base BASE]",
              {
                  {{"-m", "--model"}, "FILE", "", "model file"},
                  {{"-f", "--file"}, "TEXT", "", "text file to evaluate"},
                  {{"-c", "--ctx-size"}, "N", "512", "tokens per chunk", int_in(4, 1 << 20)},
                  {{"-b", "--batch-size"}, "N", "512", "tokens per forward pass (at most the chunk)", int_in(1, kMaxTokens)},
                  {{"--chunks"}, "K", "-1", "evaluate at most K chunks (-1: all)", int_in(-1, INT32_MAX)},
                  {{"-t", "--threads"}, "N", "0", "threads (0: physical cores)", int_in(0, kMaxThreads)},
                  kv_type_option(),
                  {{"--tokenizer"}, "TOK", "", "llama2.c tokenizer.bin, for llama2.c checkpoints"},
                  {{"--kld-base"}, "FILE", "",
                   "also run this base model (e.g. the unquantized original) on the same chunks and report the KL-divergence "
                   "of -m's distributions against it"},
                  kv_type_option("--kld-base-kv-type",
                                 "KV cache type of the --kld-base model, whatever --kv-type is (so '-m M --kld-base M --kv-type q8_0' "
                                 "measures the q8_0 cache against the f16 one)"),
              });
    if (!args.parse(argc, argv)) return 0;
    if (args.str("-m").empty() || args.str("-f").empty()) throw_error("perplexity: need -m FILE and -f TEXT");
    set_threads(args.num("-t"));
    const int64_t n_ctx = args.num("-c");

    LoadOptions lo;
    lo.tokenizer_path = args.str("--tokenizer");
    ModelFile mf = load_model(args.str("-m"), lo);
    Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    LlamaModel model(mf);
    check_vocab_matches(tok, model, mf.path);
    // The base model for --kld-base: same vocabulary required (the tokens come from -m's tokenizer).
    std::unique_ptr<ModelFile> base_mf;
    std::unique_ptr<LlamaModel> base_model;
    if (!args.str("--kld-base").empty()) {
        base_mf.reset(new ModelFile(load_model(args.str("--kld-base"), lo)));
        base_model.reset(new LlamaModel(*base_mf));
        if (base_model->hp.n_vocab != model.hp.n_vocab)
            throw_error("perplexity: --kld-base model has a vocabulary of %lld, the model %lld", (long long) base_model->hp.n_vocab,
                        (long long) model.hp.n_vocab);
    }

    const std::string text = read_file_bounded(args.str("-f"), 1u << 30);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> tokens = tok.encode(text, true, false);
    const double t_tok = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t n_chunk = (int64_t) tokens.size() / n_ctx;
    if (n_chunk == 0) throw_error("perplexity: the text has %zu tokens, fewer than one chunk of %lld", tokens.size(), (long long) n_ctx);
    if (args.num("--chunks") >= 0) n_chunk = std::min(n_chunk, (int64_t) args.num("--chunks"));
    fprintf(stderr, "perplexity: tokenized %zu tokens in %.2f s; %lld chunks of %lld, scoring the second half of each\n", tokens.size(),
            t_tok, (long long) n_chunk, (long long) n_ctx);

    ContextParams cp;
    cp.n_ctx = (int32_t) n_ctx;
    cp.n_batch = (int32_t) std::min<int64_t>(n_ctx, args.num("-b"));
    cp.kv_type = kv_type_arg(args);
    Context ctx(model, cp);
    std::unique_ptr<Context> base_ctx;
    if (base_model) {
        ContextParams base_cp = cp;
        base_cp.kv_type = kv_type_arg(args, "--kld-base-kv-type");
        base_ctx.reset(new Context(*base_model, base_cp));
    }
    const int32_t bos = tok.bos() >= 0 ? tok.bos() : tokens[0];
    const int64_t first = n_ctx / 2, n_vocab = model.hp.n_vocab;

    double nll = 0, nll2 = 0;
    int64_t count = 0;
    std::vector<float> logits((size_t) (n_ctx * n_vocab)), base_logits(base_ctx ? logits.size() : 0);
    std::vector<double> klds;  // one per scored position
    double kld_sum = 0, kld_sum2 = 0, base_nll = 0;
    int64_t same_top = 0;
    Batch b;
    t0 = std::chrono::steady_clock::now();
    for (int64_t c = 0; c < n_chunk; ++c) {
        const int64_t start = c * n_ctx;
        ctx.clear_seq(0);
        for (int64_t i = 0; i < n_ctx; i += cp.n_batch) {
            b.clear();
            const int64_t end = std::min(n_ctx, i + cp.n_batch);
            for (int64_t j = i; j < end; ++j) b.add(j == 0 ? bos : tokens[(size_t) (start + j)], (int32_t) j, 0, true);
            ctx.decode(b);
            for (int64_t j = i; j < end; ++j) std::copy(ctx.logits((size_t) (j - i)), ctx.logits((size_t) (j - i)) + n_vocab, logits.begin() + j * n_vocab);
            if (base_ctx) {
                if (i == 0) base_ctx->clear_seq(0);
                base_ctx->decode(b);
                for (int64_t j = i; j < end; ++j)
                    std::copy(base_ctx->logits((size_t) (j - i)), base_ctx->logits((size_t) (j - i)) + n_vocab, base_logits.begin() + j * n_vocab);
            }
        }
        for (int64_t i = first; i < n_ctx - 1; ++i) {
            const int32_t target = tokens[(size_t) (start + i + 1)];
            const double v = nll_of(&logits[(size_t) (i * n_vocab)], n_vocab, target);
            nll += v;
            nll2 += v * v;
            ++count;
            if (base_ctx) {
                bool same = false;
                const double k = kld_of(&base_logits[(size_t) (i * n_vocab)], &logits[(size_t) (i * n_vocab)], n_vocab, &same);
                klds.push_back(k);
                kld_sum += k;
                kld_sum2 += k * k;
                same_top += same ? 1 : 0;
                base_nll += nll_of(&base_logits[(size_t) (i * n_vocab)], n_vocab, target);
            }
        }
        printf("[%lld]%.4f,", (long long) (c + 1), exp(nll / (double) count));
        if ((c + 1) % 16 == 0) printf("\n");
        fflush(stdout);
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double mean = nll / (double) count;
    const double ppl = exp(mean);
    double var = nll2 / (double) count - mean * mean;
    const double err = var > 0 && count > 1 ? sqrt(var / (double) (count - 1)) * ppl : 0.0;
    printf("\n");
    fprintf(stderr, "perplexity: %lld chunks in %.2f s (%.1f tokens/s)\n", (long long) n_chunk, secs, (double) (n_chunk * n_ctx) / secs);
    printf("Final estimate: PPL = %.4f +/- %.5f\n", ppl, err);
    if (base_ctx) {
        const double n = (double) klds.size();
        const double mean_kld = kld_sum / n;
        const double var_kld = kld_sum2 / n - mean_kld * mean_kld;
        const double err_kld = var_kld > 0 && n > 1 ? sqrt(var_kld / (n - 1)) : 0.0;
        std::sort(klds.begin(), klds.end());
        printf("KL-divergence against %s over %lld positions (base PPL = %.4f):\n", args.str("--kld-base").c_str(), (long long) klds.size(),
               exp(base_nll / n));
        printf("Mean KLD: %.6f +/- %.6f\n", mean_kld, err_kld);
        printf("Maximum KLD: %.6f\n", klds.back());
        printf("99.9%% KLD: %.6f\n", quantile(klds, 0.999));
        printf("99.0%% KLD: %.6f\n", quantile(klds, 0.99));
        printf("90.0%% KLD: %.6f\n", quantile(klds, 0.90));
        printf("Median KLD: %.6f\n", quantile(klds, 0.5));
        printf("Same top token: %.3f%%\n", 100.0 * (double) same_top / n);
    }
    return 0;
}

}  // namespace quill
