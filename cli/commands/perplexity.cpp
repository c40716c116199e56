// quill perplexity: llama.cpp's method, so the numbers are comparable (see ../shared/golden/README.md):
// tokenize the whole file once with one BOS; cut it into floor(n/ctx) chunks of ctx tokens; evaluate each chunk
// from an empty cache with its first token replaced by BOS; score positions ctx/2 .. ctx-2 (predicting the next
// token); PPL = exp(mean NLL).
#include "cli/commands/args.h"
#include "ggml-lite/common.h"
#include "model/llama.h"
#include "model/tokenizer.h"

#include <chrono>
#include <cmath>
#include <cstdio>

namespace quill {

// -log p(target) from logits, in double like llama.cpp.
static double nll_of(const float * logits, int64_t n_vocab, int32_t target) {
    float max = logits[0];
    for (int64_t i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
    double sum = 0.0;
    for (int64_t i = 0; i < n_vocab; ++i) sum += exp((double) (logits[i] - max));
    return -((double) (logits[target] - max) - log(sum));
}

int cmd_perplexity(int argc, char ** argv) {
    Args args("perplexity", "-m FILE -f TEXT [-c N] [--chunks K]",
              {
                  {{"-m", "--model"}, "FILE", "", "model file"},
                  {{"-f", "--file"}, "TEXT", "", "text file to evaluate"},
                  {{"-c", "--ctx-size"}, "N", "512", "tokens per chunk"},
                  {{"-b", "--batch-size"}, "N", "512", "tokens per forward pass (at most the chunk)"},
                  {{"--chunks"}, "K", "-1", "evaluate at most K chunks (-1: all)"},
                  {{"-t", "--threads"}, "N", "0", "threads (0: physical cores)"},
                  {{"--kv-type"}, "TYPE", "f16", "KV cache type: f16 or f32"},
                  {{"--tokenizer"}, "TOK", "", "llama2.c tokenizer.bin, for llama2.c checkpoints"},
              });
    if (!args.parse(argc, argv)) return 0;
    if (args.str("-m").empty() || args.str("-f").empty()) throw_error("perplexity: need -m FILE and -f TEXT");
    set_threads(args.num("-t"));
    const int64_t n_ctx = args.num("-c");
    if (n_ctx < 4 || n_ctx > (1 << 20)) throw_error("perplexity: invalid context size %lld", (long long) n_ctx);

    LoadOptions lo;
    lo.tokenizer_path = args.str("--tokenizer");
    ModelFile mf = load_model(args.str("-m"), lo);
    Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    LlamaModel model(mf);

    std::string text;
    {
        FILE * f = fopen(args.str("-f").c_str(), "rb");
        if (!f) throw_error("perplexity: cannot read '%s'", args.str("-f").c_str());
        char buf[1 << 16];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
        fclose(f);
    }
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
    if (!gl_type_from_name(args.str("--kv-type").c_str(), &cp.kv_type)) throw_error("perplexity: unknown KV cache type");
    Context ctx(model, cp);
    const int32_t bos = tok.bos() >= 0 ? tok.bos() : tokens[0];
    const int64_t first = n_ctx / 2, n_vocab = model.hp.n_vocab;

    double nll = 0, nll2 = 0;
    int64_t count = 0;
    std::vector<float> logits((size_t) (n_ctx * n_vocab));
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
        }
        for (int64_t i = first; i < n_ctx - 1; ++i) {
            const double v = nll_of(&logits[(size_t) (i * n_vocab)], n_vocab, tokens[(size_t) (start + i + 1)]);
            nll += v;
            nll2 += v * v;
            ++count;
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
    return 0;
}

}  // namespace quill
