// quill run: stream a completion of a prompt, or chat in the terminal with -i.
#include "cli/commands/args.h"
#include "cli/commands/kv_opt.h"
#include "ggml-lite/common.h"
#include "model/chat.h"
#include "model/llama.h"
#include "model/sampling.h"
#include "model/tokenizer.h"

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <unistd.h>

namespace quill {

static volatile sig_atomic_t g_stop = 0;      // Ctrl-C during generation: stop generating
static volatile sig_atomic_t g_generating = 0;

static void on_sigint(int) {
    if (g_generating) {
        g_stop = 1;
    } else {
        // At the prompt: leave. write() is async-signal-safe.
        const char msg[] = "\n";
        ssize_t r = write(STDOUT_FILENO, msg, 1);
        (void) r;
        _exit(130);
    }
}

using Clock = std::chrono::steady_clock;
static double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct RunStats {
    int n_prompt = 0, n_gen = 0;
    double t_prompt = 0, t_gen = 0;
};

// Feeds tokens[from..] of sequence 0 into the context (positions from..), in n_batch pieces; logits for the last.
static void feed(Context & ctx, const std::vector<int32_t> & tokens, size_t from) {
    Batch b;
    for (size_t i = from; i < tokens.size(); i += (size_t) ctx.n_batch()) {
        b.clear();
        size_t end = std::min(tokens.size(), i + (size_t) ctx.n_batch());
        for (size_t j = i; j < end; ++j) b.add(tokens[j], (int32_t) j, 0, j + 1 == tokens.size());
        ctx.decode(b);
    }
}

// Samples and streams up to n_predict tokens after `tokens` (already fed). Appends generated tokens to `tokens`.
static void generate(Context & ctx, const Tokenizer & tok, Sampler & sampler, std::vector<int32_t> & tokens, int64_t n_predict,
                     RunStats & st, std::string * reply) {
    auto t0 = Clock::now();
    g_stop = 0;
    g_generating = 1;
    Batch b;
    for (int64_t i = 0; (n_predict < 0 || i < n_predict) && !g_stop; ++i) {
        int32_t id = sampler.sample(ctx.logits(ctx.n_logits() - 1));
        sampler.accept(id);
        if (tok.is_eog(id)) break;
        std::string piece = tok.token_to_piece(id);
        fwrite(piece.data(), 1, piece.size(), stdout);
        fflush(stdout);
        if (reply) *reply += piece;
        tokens.push_back(id);
        st.n_gen++;
        if ((int64_t) tokens.size() >= ctx.n_ctx()) {
            fprintf(stderr, "\n[context full: %d tokens]\n", ctx.n_ctx());
            break;
        }
        b.clear();
        b.add(id, (int32_t) tokens.size() - 1, 0, true);
        ctx.decode(b);
    }
    g_generating = 0;
    st.t_gen += seconds_since(t0);
}

static void print_stats(const RunStats & st) {
    fprintf(stderr, "\nprompt: %d tokens in %.3f s (%.2f tokens/s)\ngeneration: %d tokens in %.3f s (%.2f tokens/s)\n", st.n_prompt,
            st.t_prompt, st.t_prompt > 0 ? st.n_prompt / st.t_prompt : 0.0, st.n_gen, st.t_gen, st.t_gen > 0 ? st.n_gen / st.t_gen : 0.0);
}

static int run_interactive(Context & ctx, const Tokenizer & tok, Sampler & sampler, const std::string & tmpl, const std::string & system,
                           int64_t n_predict) {
    std::vector<ChatMessage> msgs;
    if (!system.empty()) msgs.push_back({"system", system});
    std::vector<int32_t> in_cache;  // tokens currently in the KV cache (sequence 0)
    const std::string bos_text = tok.bos() >= 0 ? tok.token_text(tok.bos()) : "";
    fprintf(stderr, "chat template: %s. Type a message and press Enter; Ctrl-C stops a reply; Ctrl-D or Ctrl-C at the prompt quits.\n",
            tmpl.c_str());
    RunStats st;
    std::string line;
    while (true) {
        printf("\n> ");
        fflush(stdout);
        if (!std::getline(std::cin, line)) break;
        if (line.empty()) continue;
        msgs.push_back({"user", line});
        std::string text = chat_format(tmpl, msgs, true, bos_text);
        // llama2/llama3 templates write the BOS text themselves; the others get the tokenizer's BOS.
        std::vector<int32_t> tokens = tok.encode(text, !chat_template_adds_bos(tmpl), true);
        if ((int64_t) tokens.size() + 1 >= ctx.n_ctx()) {
            fprintf(stderr, "[the conversation no longer fits the context of %d tokens; start a new one]\n", ctx.n_ctx());
            msgs.pop_back();
            continue;
        }
        // Reuse the cached prefix; only the new tokens go through the model.
        size_t common = 0;
        while (common < in_cache.size() && common < tokens.size() && in_cache[common] == tokens[common]) ++common;
        if (common == tokens.size()) --common;  // at least one token must be decoded to get logits
        if (common < in_cache.size()) ctx.clear_seq(0), common = 0;  // diverged: re-feed from the start (simple, correct)
        auto t0 = Clock::now();
        feed(ctx, tokens, common);
        st.n_prompt += (int) (tokens.size() - common);
        st.t_prompt += seconds_since(t0);
        std::string reply;
        generate(ctx, tok, sampler, tokens, n_predict, st, &reply);
        if (g_stop) printf(" [stopped]");
        printf("\n");
        in_cache = tokens;
        msgs.push_back({"assistant", reply});
    }
    print_stats(st);
    return 0;
}

int cmd_run(int argc, char ** argv) {
    SamplingParams sp;
    Args args("run", "-m FILE [-p PROMPT] [-n N] [options]",
              {
                  {{"-m", "--model"}, "FILE", "", "model: .quill, .gguf, llama2.c .bin (with --tokenizer) or a Hugging Face directory"},
                  {{"-p", "--prompt"}, "PROMPT", "", "prompt text"},
                  {{"-f", "--file"}, "FILE", "", "read the prompt from a file"},
                  {{"-n", "--n-predict"}, "N", "128", "tokens to generate (-1: until end of text or context)", int_in(-1, kMaxTokens)},
                  {{"-c", "--ctx-size"}, "N", "0", "context size (0: the model's)", int_in(0, kMaxTokens)},
                  {{"-b", "--batch-size"}, "N", "512", "tokens per forward pass when processing the prompt", int_in(1, kMaxTokens)},
                  {{"-t", "--threads"}, "N", "0", "threads (0: physical cores)", int_in(0, kMaxThreads)},
                  {{"--temp"}, "T", "0.8", "temperature; 0 is greedy", real_in(kTempRange.lo, kTempRange.hi)},
                  {{"--top-k"}, "N", "40", "top-k (0: off)", int_in(0, INT32_MAX)},
                  {{"--top-p"}, "P", "0.95", "top-p (1: off)", real_in(kTopPRange.lo, kTopPRange.hi)},
                  {{"--min-p"}, "P", "0.05", "min-p (0: off)", real_in(kMinPRange.lo, kMinPRange.hi)},
                  {{"--repeat-penalty"}, "R", "1.0", "repetition penalty (1: off)", real_in(kRepeatPenaltyRange.lo, kRepeatPenaltyRange.hi)},
                  {{"--repeat-last-n"}, "N", "64", "tokens the repetition penalty looks back on (-1: the whole context)", int_in(-1, kMaxTokens)},
                  {{"--seed"}, "S", "-1", "random seed (-1: random)", int_in(-1, UINT32_MAX)},
                  kv_type_option(),
                  {{"--tokenizer"}, "TOK", "", "llama2.c tokenizer.bin, for llama2.c checkpoints"},
                  {{"-i", "--interactive"}, "", "", "chat in the terminal using the model's chat template"},
                  {{"--chat-template"}, "NAME", "", "chat template: llama2, chatml, llama3, plain (default: from the model)", one_of(chat_template_list())},
                  {{"-sys", "--system"}, "TEXT", "", "system prompt for -i"},
                  {{"--no-display-prompt"}, "", "", "do not print the prompt before the generated text"},
              });
    if (!args.parse(argc, argv)) return 0;
    if (!args.positional().empty()) throw_error("run: unexpected argument '%s'", args.positional()[0].c_str());
    if (args.str("-m").empty()) throw_error("run: missing -m FILE (see quill run --help)");
    set_threads(args.num("-t"));

    sp.temp = (float) args.real("--temp");
    sp.top_k = (int32_t) args.num("--top-k");
    sp.top_p = (float) args.real("--top-p");
    sp.min_p = (float) args.real("--min-p");
    sp.repeat_penalty = (float) args.real("--repeat-penalty");
    sp.repeat_last_n = (int32_t) args.num("--repeat-last-n");
    long long seed = args.num("--seed");
    sp.seed = seed < 0 ? (uint64_t) std::chrono::system_clock::now().time_since_epoch().count() : (uint64_t) seed;

    ContextParams cp;
    cp.n_ctx = (int32_t) args.num("-c");
    cp.n_batch = (int32_t) args.num("-b");
    cp.kv_type = kv_type_arg(args);

    LoadOptions lo;
    lo.tokenizer_path = args.str("--tokenizer");
    ModelFile mf = load_model(args.str("-m"), lo);
    Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    LlamaModel model(mf);
    check_vocab_matches(tok, model, mf.path);
    Context ctx(model, cp);
    if (sp.repeat_last_n < 0) sp.repeat_last_n = ctx.n_ctx();  // -1: the whole context, as llama.cpp
    Sampler sampler(sp, (int32_t) model.hp.n_vocab);
    const int64_t n_predict = args.num("-n");

    struct sigaction sa = {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);

    if (args.flag("-i")) {
        const std::string tmpl = chat_template_resolve(args.str("--chat-template"), mf.meta);
        return run_interactive(ctx, tok, sampler, tmpl, args.str("--system"), n_predict);
    }

    std::string prompt = args.str("-p");
    if (args.has("-f")) {
        // A prompt longer than the largest context is an error anyway; 64 MiB bounds -f /dev/zero and its kin.
        prompt = read_file_bounded(args.str("-f"), 64u << 20);
    }
    std::vector<int32_t> tokens = tok.encode(prompt, true, false);
    if (tokens.empty()) throw_error("run: the prompt is empty and the model adds no BOS token; give -p");
    if ((int64_t) tokens.size() >= ctx.n_ctx())
        throw_error("run: the prompt is %zu tokens, the context holds %d (raise -c)", tokens.size(), ctx.n_ctx());
    if (!args.flag("--no-display-prompt")) {
        std::vector<int32_t> shown(tokens.begin() + (tok.add_bos() && !tokens.empty() && tokens[0] == tok.bos() ? 1 : 0), tokens.end());
        std::string text = tok.decode(shown);
        fwrite(text.data(), 1, text.size(), stdout);
        fflush(stdout);
    }
    RunStats st;
    st.n_prompt = (int) tokens.size();
    auto t0 = Clock::now();
    feed(ctx, tokens, 0);
    st.t_prompt = seconds_since(t0);
    generate(ctx, tok, sampler, tokens, n_predict, st, nullptr);
    printf("\n");
    print_stats(st);
    return 0;
}

}  // namespace quill
