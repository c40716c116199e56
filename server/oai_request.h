// Parsing and validating OpenAI requests (/v1/chat/completions, /v1/completions) into a GenRequest.
//
// Accepted fields (null means "not given" for every optional field):
//   chat: messages (required; roles system, developer (as system), user, assistant; content a string or an array
//         of {"type": "text", "text": ...} parts; assistant content may be null), logprobs (bool),
//         top_logprobs (0..20, needs logprobs)
//   completions: prompt (required; a string, an array of strings, an array of token ids or an array of such
//         arrays), logprobs (0..5), echo (false only), suffix (empty only), best_of (1 or n)
//   both: model (any string: there is one model), stream, stream_options.include_usage, max_tokens and
//         max_completion_tokens (>= 1; the latter wins), temperature (0..2), top_p (0..1), n (>= 1), stop (a string
//         or up to 16 strings), seed (integer), presence_penalty and frequency_penalty (-2..2), and the llama.cpp
//         extensions top_k (>= 0), min_p (0..1), repeat_penalty (> 0).
// Fields that are known but unsupported (tools, tool_choice other than "none", functions, function_call,
// response_format other than text, logit_bias with entries, audio, modalities other than text, prediction) get 400
// with code "unsupported_parameter". Unknown fields are ignored. Everything else that is wrong gets 400 naming the
// field: wrong types, values out of range, a missing prompt/messages, or a prompt plus max_tokens beyond the
// context (code "context_length_exceeded").
#pragma once

#include "model/sampling.h"
#include "server/api_error.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace quill {

class Tokenizer;

// What the parser needs to know about the model and the server.
struct PromptContext {
    const Tokenizer * tok = nullptr;
    std::string chat_template;  // resolved name (model/chat.h)
    std::string bos_text;       // the BOS token's text for the templates that write it
    int32_t n_ctx = 0;          // positions per slot
    int32_t max_choices = 1;    // most prompts x n one request may ask for
};

struct GenRequest {
    bool chat = true;
    bool stream = false;
    bool include_usage = false;                 // stream_options.include_usage
    int32_t n = 1;                              // choices per prompt
    std::vector<std::vector<int32_t>> prompts;  // chat: exactly one
    int64_t max_tokens = 0;                     // 0: until the context is full
    SamplingParams sampling;                    // seed: the first choice's (the i-th choice gets seed + i)
    bool random_seed = true;
    std::vector<std::string> stop;
    int32_t logprobs = -1;                      // -1: none; else alternatives per token (chat: top_logprobs)

    int32_t n_choices() const { return (int32_t) prompts.size() * n; }
};

// Parses a request body (at most max_depth levels of nesting). Throws ApiError 400 on malformed JSON.
nlohmann::json parse_json_body(const std::string & body, int max_depth = 64);

// Throw ApiError (400) on anything invalid.
GenRequest parse_chat_request(const nlohmann::json & body, const PromptContext & pc);
GenRequest parse_completion_request(const nlohmann::json & body, const PromptContext & pc);

}  // namespace quill
