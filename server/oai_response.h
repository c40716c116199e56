// OpenAI response bodies: chat.completion / text_completion objects, their streamed chunks, usage and logprobs.
#pragma once

#include "server/scheduler.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace quill {

class Tokenizer;

struct ResponseMeta {
    bool chat = true;
    std::string id;       // "chatcmpl-..." or "cmpl-..."
    int64_t created = 0;  // unix seconds
    std::string model;
    bool usage_in_chunks = false;  // stream_options.include_usage: every chunk carries "usage": null
};

ResponseMeta oai_meta(bool chat, const std::string & model, bool usage_in_chunks);

// chat: {"content": [{token, logprob, bytes, top_logprobs}], "refusal": null}
// completions: {"tokens", "token_logprobs", "top_logprobs", "text_offset"}
nlohmann::json oai_logprobs(const Tokenizer & tok, bool chat, const std::vector<TokenLogprobs> & lps);

// One streamed chunk for choice `index`. Chat: delta {"role"?, "content"?}; completions: "text".
// role/text may be null pointers (omitted); finish may be null.
nlohmann::json oai_chunk(const ResponseMeta & m, int32_t index, const char * role, const std::string * text, const nlohmann::json & logprobs,
                         const char * finish);
nlohmann::json oai_usage(int64_t prompt_tokens, int64_t completion_tokens);
// The last chunk when include_usage is set: no choices, the usage.
nlohmann::json oai_usage_chunk(const ResponseMeta & m, int64_t prompt_tokens, int64_t completion_tokens);

// A whole (non-streamed) choice and response.
nlohmann::json oai_choice(const ResponseMeta & m, int32_t index, const std::string & text, const nlohmann::json & logprobs, const char * finish);
nlohmann::json oai_response(const ResponseMeta & m, nlohmann::json choices, int64_t prompt_tokens, int64_t completion_tokens);

}  // namespace quill
