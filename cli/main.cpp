// quill: one binary, subcommands. Everything but dispatch lives in the quill_core library.
#include "cli/commands/args.h"
#include "ggml-lite/common.h"
#include "server/server.h"
#include "quantize/quantize.h"

#include <cstdio>
#include <cstring>

static void usage() {
    printf("quill: a local LLM engine\n\n"
           "usage: quill <command> [options]    (quill <command> --help for its options)\n\n"
           "commands:\n"
           "  run          generate text from a prompt, or chat in the terminal (-i)\n"
           "  convert      convert a llama2.c, GGUF or Hugging Face model to a .quill file\n"
           "  perplexity   perplexity of a model on a text file (llama.cpp's method)\n"
           "  quantize     quantize a model: RTN or GPTQ to 2/3/4-bit integer types, GPTVQ to int8 codebooks\n"
           "  info         print a model's metadata and tensors; --verify checks every checksum\n"
           "  bench        prompt and generation speed (like llama-bench), with the memory-bandwidth share\n"
           "  serve        OpenAI-compatible HTTP server with continuous batching and a chat page (server/README.md)\n");
}

int main(int argc, char ** argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    const char * cmd = argv[1];
    try {
        if (!strcmp(cmd, "run")) return quill::cmd_run(argc - 2, argv + 2);
        if (!strcmp(cmd, "convert")) return quill::cmd_convert(argc - 2, argv + 2);
        if (!strcmp(cmd, "perplexity")) return quill::cmd_perplexity(argc - 2, argv + 2);
        if (!strcmp(cmd, "quantize")) return quill::cmd_quantize(argc - 2, argv + 2);
        if (!strcmp(cmd, "info")) return quill::cmd_info(argc - 2, argv + 2);
        if (!strcmp(cmd, "bench")) return quill::cmd_bench(argc - 2, argv + 2);
        if (!strcmp(cmd, "serve")) return quill::cmd_serve(argc - 2, argv + 2);
        fprintf(stderr, "quill: unknown command '%s' (run 'quill --help' for the list)\n", cmd);
        return 2;
    } catch (const quill::Error & e) {
        fprintf(stderr, "quill %s: error: %s\n", cmd, e.what());
        return 1;
    } catch (const std::bad_alloc &) {
        fprintf(stderr, "quill %s: error: out of memory\n", cmd);
        return 1;
    } catch (const std::exception & e) {
        fprintf(stderr, "quill %s: error: %s\n", cmd, e.what());
        return 1;
    }
}
