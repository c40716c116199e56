// quill serve: options -> ServerParams -> server_run (server/).
#include "cli/commands/args.h"
#include "cli/commands/kv_opt.h"
#include "ggml-lite/common.h"
#include "model/chat.h"
#include "server/server.h"

#include <cstdlib>

namespace quill {

int cmd_serve(int argc, char ** argv) {
    Args args("serve", "-m FILE [--host 127.0.0.1] [--port 8080] [--api-key KEY] [--parallel N] [-c CTX] [-t THREADS] [options]",
              {
                  {{"-m", "--model"}, "FILE", "", "model: .quill, .gguf, llama2.c .bin (with --tokenizer) or a Hugging Face directory"},
                  {{"--tokenizer"}, "TOK", "", "llama2.c tokenizer.bin, for llama2.c checkpoints"},
                  {{"--host"}, "ADDR", "127.0.0.1", "address to listen on (0.0.0.0: every interface)"},
                  {{"--port"}, "N", "8080", "port (0: any free port, printed at start-up)", int_in(0, 65535)},
                  {{"--api-key"}, "KEY", "", "require 'Authorization: Bearer KEY' on the API routes (default: $QUILL_API_KEY)"},
                  {{"-np", "--parallel"}, "N", "4", "slots: requests generated at the same time (continuous batching)", int_in(1, 256)},
                  {{"--queue"}, "N", "32", "requests that may wait for a slot; beyond that the server answers 503", int_in(0, 4096)},
                  {{"-c", "--ctx-size"}, "N", "0", "context size of each slot (0: the model's)", int_in(0, kMaxTokens)},
                  {{"-b", "--batch-size"}, "N", "512", "most tokens in one decode step", int_in(1, kMaxTokens)},
                  {{"-t", "--threads"}, "N", "0", "threads (0: physical cores)", int_in(0, kMaxThreads)},
                  kv_type_option(),
                  {{"--chat-template"}, "NAME", "", "chat template: llama2, chatml, llama3, plain (default: from the model; plain without one)", one_of(chat_template_list())},
                  {{"--alias"}, "NAME", "", "model id shown by the API (default: the model's file name)"},
                  {{"--cors-origin"}, "ORIGIN", "", "allow browser requests from ORIGIN (or *): adds CORS headers and answers preflights"},
                  {{"--max-body"}, "BYTES", "1048576", "largest request body; bigger ones get 413", int_in(1024, 1LL << 32)},
                  {{"--drain-timeout"}, "SEC", "10", "on SIGINT/SIGTERM, how long accepted requests may take to finish", real_in(0, 86400)},
                  {{"--header-timeout"}, "SEC", "10", "a request's line and headers must arrive within SEC seconds of its first byte (else 408)", real_in(0.001, 3600)},
                  {{"--max-connections"}, "N", "256", "connections served at once; beyond that a connection gets 503 and is closed", int_in(1, 100000)},
              });
    if (!args.parse(argc, argv)) return 0;
    if (!args.positional().empty()) throw_error("serve: unexpected argument '%s'", args.positional()[0].c_str());
    if (args.str("-m").empty()) throw_error("serve: missing -m FILE (see quill serve --help)");

    ServerParams p;
    p.model_path = args.str("-m");
    p.tokenizer_path = args.str("--tokenizer");
    p.host = args.str("--host");
    p.port = (int) args.num("--port");
    p.api_key = args.str("--api-key");
    if (!args.has("--api-key")) {
        const char * env = std::getenv("QUILL_API_KEY");
        if (env) p.api_key = env;
    }
    p.parallel = (int32_t) args.num("--parallel");
    p.queue = (int32_t) args.num("--queue");
    p.n_ctx = (int32_t) args.num("-c");
    p.n_batch = (int32_t) args.num("-b");
    p.kv_type = kv_type_arg(args);
    p.chat_template = args.str("--chat-template");
    p.alias = args.str("--alias");
    p.cors_origin = args.str("--cors-origin");
    const long long max_body = args.num("--max-body");
    p.max_body = (size_t) max_body;
    p.drain_seconds = args.real("--drain-timeout");
    p.header_timeout = args.real("--header-timeout");
    p.max_connections = (int32_t) args.num("--max-connections");
    set_threads(args.num("-t"));
    return server_run(p);
}

}  // namespace quill
