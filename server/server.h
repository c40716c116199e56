// quill serve: an OpenAI-compatible HTTP server with continuous batching and a built-in chat page.
// See server/README.md for the endpoints and flags.
#pragma once

#include "ggml-lite/types.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace quill {

struct ServerParams {
    std::string model_path;
    std::string tokenizer_path;   // llama2.c tokenizer.bin for llama2.c checkpoints
    std::string alias;            // model id reported by the API ("" = the file name)
    std::string chat_template;    // "" = from the model (plain when it has none)
    std::string host = "127.0.0.1";
    int port = 8080;              // 0 = any free port (printed at start-up)
    std::string api_key;          // "" = no authentication
    std::string cors_origin;      // "" = no CORS headers
    int32_t parallel = 4;         // slots
    int32_t queue = 32;           // requests (choices) waiting beyond the slots
    int32_t n_ctx = 0;            // positions per slot (0 = the model's training context)
    int32_t n_batch = 512;        // most tokens in one decode step
    gl_type kv_type = GL_TYPE_F16;
    size_t max_body = 1 << 20;    // bytes of a request body
    double drain_seconds = 10.0;  // on SIGINT/SIGTERM: how long accepted requests may take to finish
    double header_timeout = 10.0; // seconds for a request's line and headers, from their first byte
    int32_t max_connections = 256;  // connections served at once; more get 503
};

// Loads the model, serves until SIGINT or SIGTERM, then shuts down gracefully. Returns the exit code (0).
// Throws quill::Error when the model cannot be loaded or the address cannot be bound.
int server_run(const ServerParams & params);

// The `quill serve` subcommand (cli/commands/serve.cpp): parses options and calls server_run.
int cmd_serve(int argc, char ** argv);

}  // namespace quill
