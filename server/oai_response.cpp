#include "server/oai_response.h"

#include "model/tokenizer.h"
#include "server/text_stream.h"

#include <algorithm>
#include <chrono>
#include <random>

namespace quill {

using json = nlohmann::json;

ResponseMeta oai_meta(bool chat, const std::string & model, bool usage_in_chunks) {
    static thread_local std::mt19937_64 rng(std::random_device{}());
    static const char hex[] = "0123456789abcdef";
    ResponseMeta m;
    m.chat = chat;
    m.id = chat ? "chatcmpl-" : "cmpl-";
    for (int i = 0; i < 24; ++i) m.id += hex[rng() & 15];
    m.created = (int64_t) std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    m.model = model;
    m.usage_in_chunks = usage_in_chunks;
    return m;
}

namespace {

// JSON has no -inf: a token the model gives no chance at all gets a very low finite value instead.
double finite_logprob(float lp) { return std::max((double) lp, -9999.0); }

json token_entry(const Tokenizer & tok, int32_t id, float lp) {
    const std::string piece = tok.token_to_piece(id);
    json bytes = json::array();
    for (unsigned char c : piece) bytes.push_back((int) c);
    return json{{"token", utf8_sanitize(piece)}, {"logprob", finite_logprob(lp)}, {"bytes", bytes}};
}

json head(const ResponseMeta & m, bool chunk) {
    json j = {{"id", m.id}, {"object", m.chat ? (chunk ? "chat.completion.chunk" : "chat.completion") : "text_completion"}, {"created", m.created},
              {"model", m.model}, {"system_fingerprint", "quill"}};
    return j;
}

}  // namespace

json oai_logprobs(const Tokenizer & tok, bool chat, const std::vector<TokenLogprobs> & lps) {
    if (chat) {
        json content = json::array();
        for (const TokenLogprobs & t : lps) {
            json e = token_entry(tok, t.token, t.logprob);
            json top = json::array();
            for (const TokenLogprob & a : t.top) top.push_back(token_entry(tok, a.token, a.logprob));
            e["top_logprobs"] = top;
            content.push_back(e);
        }
        return json{{"content", content}, {"refusal", nullptr}};
    }
    json tokens = json::array(), token_logprobs = json::array(), top_logprobs = json::array(), text_offset = json::array();
    for (const TokenLogprobs & t : lps) {
        tokens.push_back(utf8_sanitize(tok.token_to_piece(t.token)));
        token_logprobs.push_back(finite_logprob(t.logprob));
        json top = json::object();
        for (const TokenLogprob & a : t.top) top[utf8_sanitize(tok.token_to_piece(a.token))] = finite_logprob(a.logprob);
        top_logprobs.push_back(top);
        text_offset.push_back(t.offset);
    }
    return json{{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top_logprobs}, {"text_offset", text_offset}};
}

json oai_chunk(const ResponseMeta & m, int32_t index, const char * role, const std::string * text, const json & logprobs, const char * finish) {
    json j = head(m, true);
    json c = {{"index", index}};
    if (m.chat) {
        json delta = json::object();
        if (role) delta["role"] = role;
        if (text) delta["content"] = *text;
        c["delta"] = delta;
    } else {
        c["text"] = text ? *text : std::string();
    }
    c["logprobs"] = logprobs;
    c["finish_reason"] = finish ? json(finish) : json(nullptr);
    j["choices"] = json::array({c});
    if (m.usage_in_chunks) j["usage"] = nullptr;
    return j;
}

json oai_usage(int64_t prompt_tokens, int64_t completion_tokens) {
    return json{{"prompt_tokens", prompt_tokens}, {"completion_tokens", completion_tokens}, {"total_tokens", prompt_tokens + completion_tokens}};
}

json oai_usage_chunk(const ResponseMeta & m, int64_t prompt_tokens, int64_t completion_tokens) {
    json j = head(m, true);
    j["choices"] = json::array();
    j["usage"] = oai_usage(prompt_tokens, completion_tokens);
    return j;
}

json oai_choice(const ResponseMeta & m, int32_t index, const std::string & text, const json & logprobs, const char * finish) {
    json c = {{"index", index}};
    if (m.chat) c["message"] = {{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
    else c["text"] = text;
    c["logprobs"] = logprobs;
    c["finish_reason"] = finish ? json(finish) : json(nullptr);
    return c;
}

json oai_response(const ResponseMeta & m, json choices, int64_t prompt_tokens, int64_t completion_tokens) {
    json j = head(m, false);
    j["choices"] = std::move(choices);
    j["usage"] = oai_usage(prompt_tokens, completion_tokens);
    return j;
}

}  // namespace quill
