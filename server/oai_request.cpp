#include "server/oai_request.h"

#include "ggml-lite/common.h"
#include "model/chat.h"
#include "model/tokenizer.h"

#include <cmath>
#include <limits>

namespace quill {

using json = nlohmann::json;

namespace {

const char * type_name(const json & v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "a boolean";
        case json::value_t::string: return "a string";
        case json::value_t::array: return "an array";
        case json::value_t::object: return "an object";
        default: return "a number";
    }
}

[[noreturn]] void fail_type(const std::string & name, const char * expected, const json & got) {
    throw ApiError(400, "'" + name + "' must be " + expected + ", got " + type_name(got), name, "invalid_type");
}

[[noreturn]] void fail_value(const std::string & name, const std::string & message) {
    throw ApiError(400, message, name, "invalid_value");
}

[[noreturn]] void fail_unsupported(const std::string & name, const std::string & message) {
    throw ApiError(400, message, name, "unsupported_parameter");
}

// The field, or nullptr when it is absent or null.
const json * field(const json & obj, const char * key) {
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

bool get_bool(const json & obj, const char * key, bool def) {
    const json * v = field(obj, key);
    if (!v) return def;
    if (!v->is_boolean()) fail_type(key, "a boolean", *v);
    return v->get<bool>();
}

double get_number(const json & obj, const char * key, double def, double lo, double hi) {
    const json * v = field(obj, key);
    if (!v) return def;
    if (!v->is_number()) fail_type(key, "a number", *v);
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < lo || x > hi) fail_value(key, strfmt("'%s' must be between %g and %g", key, lo, hi));
    return x;
}

// An integer (a float with an integral value counts), saturated to int64 so that huge values are reported as out of
// range rather than overflowing.
int64_t to_int(const std::string & name, const json & v) {
    if (v.is_number_unsigned()) {
        uint64_t u = v.get<uint64_t>();
        return u > (uint64_t) std::numeric_limits<int64_t>::max() ? std::numeric_limits<int64_t>::max() : (int64_t) u;
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_number_float()) {
        const double d = v.get<double>();
        if (std::isfinite(d) && d == std::floor(d)) {
            if (d >= 9.2e18) return std::numeric_limits<int64_t>::max();
            if (d <= -9.2e18) return std::numeric_limits<int64_t>::min();
            return (int64_t) d;
        }
    }
    fail_type(name, "an integer", v);
}

int64_t get_int(const json & obj, const char * key, int64_t def, int64_t lo, int64_t hi) {
    const json * v = field(obj, key);
    if (!v) return def;
    const int64_t x = to_int(key, *v);
    if (x < lo || x > hi) {
        if (hi == std::numeric_limits<int64_t>::max()) fail_value(key, strfmt("'%s' must be at least %lld", key, (long long) lo));
        fail_value(key, strfmt("'%s' must be between %lld and %lld", key, (long long) lo, (long long) hi));
    }
    return x;
}

void require_object(const json & body) {
    if (!body.is_object()) throw ApiError(400, std::string("the request body must be a JSON object, got ") + type_name(body));
}

// Fields that OpenAI defines and quill does not implement: a clear 400 instead of silently ignoring them.
void check_unsupported(const json & body, bool chat) {
    auto non_empty = [](const json * v) { return v && !((v->is_array() || v->is_object()) && v->empty()); };
    if (non_empty(field(body, "tools"))) fail_unsupported("tools", "tool calling is not supported");
    if (non_empty(field(body, "functions"))) fail_unsupported("functions", "function calling is not supported");
    for (const char * k : {"tool_choice", "function_call"}) {
        const json * v = field(body, k);
        if (v && !(v->is_string() && v->get<std::string>() == "none"))
            fail_unsupported(k, std::string("'") + k + "' is not supported (only \"none\")");
    }
    if (const json * v = field(body, "response_format")) {
        const json * t = v->is_object() ? field(*v, "type") : nullptr;
        if (!(t && t->is_string() && t->get<std::string>() == "text"))
            fail_unsupported("response_format", "only response_format {\"type\": \"text\"} is supported");
    }
    if (non_empty(field(body, "logit_bias"))) fail_unsupported("logit_bias", "logit_bias is not supported");
    if (field(body, "audio")) fail_unsupported("audio", "audio output is not supported");
    if (const json * v = field(body, "modalities")) {
        if (!(v->is_array() && v->size() == 1 && (*v)[0] == "text")) fail_unsupported("modalities", "only the text modality is supported");
    }
    if (field(body, "prediction")) fail_unsupported("prediction", "predicted outputs are not supported");
    if (!chat) {
        if (get_bool(body, "echo", false)) fail_unsupported("echo", "echo is not supported");
        if (const json * v = field(body, "suffix")) {
            if (!v->is_string()) fail_type("suffix", "a string", *v);
            if (!v->get<std::string>().empty()) fail_unsupported("suffix", "suffix (insertion) is not supported");
        }
    }
}

// Fields shared by both endpoints (after checking the body is an object without unsupported fields).
GenRequest parse_common(const json & body, const PromptContext & pc, bool chat) {
    require_object(body);
    check_unsupported(body, chat);
    GenRequest r;
    r.chat = chat;
    if (const json * v = field(body, "model")) {
        if (!v->is_string()) fail_type("model", "a string", *v);
    }
    r.stream = get_bool(body, "stream", false);
    if (const json * so = field(body, "stream_options")) {
        if (!so->is_object()) fail_type("stream_options", "an object", *so);
        if (const json * iu = field(*so, "include_usage")) {
            if (!iu->is_boolean()) fail_type("stream_options.include_usage", "a boolean", *iu);
            r.include_usage = iu->get<bool>();
        }
    }
    r.n = (int32_t) get_int(body, "n", 1, 1, pc.max_choices);
    const int64_t big = std::numeric_limits<int64_t>::max();
    r.max_tokens = get_int(body, "max_tokens", 0, 1, big);
    r.max_tokens = get_int(body, "max_completion_tokens", r.max_tokens, 1, big);

    SamplingParams & sp = r.sampling;
    sp.temp = (float) get_number(body, "temperature", sp.temp, kTempRange.lo, kTempRange.hi);
    sp.top_p = (float) get_number(body, "top_p", sp.top_p, kTopPRange.lo, kTopPRange.hi);
    sp.top_k = (int32_t) get_int(body, "top_k", sp.top_k, 0, std::numeric_limits<int32_t>::max());
    sp.min_p = (float) get_number(body, "min_p", sp.min_p, kMinPRange.lo, kMinPRange.hi);
    sp.presence_penalty = (float) get_number(body, "presence_penalty", 0.0, kPresencePenaltyRange.lo, kPresencePenaltyRange.hi);
    sp.frequency_penalty = (float) get_number(body, "frequency_penalty", 0.0, kPresencePenaltyRange.lo, kPresencePenaltyRange.hi);
    sp.repeat_penalty = (float) get_number(body, "repeat_penalty", 1.0, kRepeatPenaltyRange.lo, kRepeatPenaltyRange.hi);
    if (field(body, "seed")) {
        sp.seed = (uint64_t) get_int(body, "seed", 0, std::numeric_limits<int64_t>::min(), big);
        r.random_seed = false;
    } else {
        sp.seed = kSamplerRandomSeed;
    }

    if (const json * v = field(body, "stop")) {
        if (v->is_string()) {
            r.stop.push_back(v->get<std::string>());
        } else if (v->is_array()) {
            if (v->size() > 16) fail_value("stop", "'stop' may hold at most 16 strings");
            for (const json & s : *v) {
                if (!s.is_string()) fail_type("stop", "a string or an array of strings", s);
                r.stop.push_back(s.get<std::string>());
            }
        } else {
            fail_type("stop", "a string or an array of strings", *v);
        }
    }
    return r;
}

// Every prompt must fit the context with room for max_tokens (or at least one token when max_tokens is not given).
void check_fit(const GenRequest & r, const PromptContext & pc) {
    if (r.n_choices() > pc.max_choices)
        fail_value("n", strfmt("the request asks for %d choices; this server allows at most %d per request", r.n_choices(), pc.max_choices));
    for (const std::vector<int32_t> & p : r.prompts) {
        const int64_t len = (int64_t) p.size();
        if (len == 0) throw ApiError(400, "the prompt is empty", r.chat ? "messages" : "prompt", "invalid_value");
        if (len >= pc.n_ctx)
            throw ApiError(400, strfmt("the prompt is %lld tokens but the context holds %d (one position must be left for the reply)",
                                       (long long) len, pc.n_ctx),
                           r.chat ? "messages" : "prompt", "context_length_exceeded");
        if (r.max_tokens > 0 && r.max_tokens > pc.n_ctx - len)
            throw ApiError(400, strfmt("the prompt (%lld tokens) plus max_tokens (%lld) exceeds the context of %d tokens", (long long) len,
                                       (long long) r.max_tokens, pc.n_ctx),
                           "max_tokens", "context_length_exceeded");
    }
}

std::string message_content(const json & msg, const std::string & where, const std::string & role) {
    const json * c = field(msg, "content");
    if (!c) {
        if (role == "assistant") return "";
        throw ApiError(400, "missing required parameter '" + where + ".content'", where + ".content", "missing_required_parameter");
    }
    if (c->is_string()) return c->get<std::string>();
    if (!c->is_array()) fail_type(where + ".content", "a string or an array of content parts", *c);
    std::string text;
    for (size_t i = 0; i < c->size(); ++i) {
        const json & part = (*c)[i];
        const std::string pw = where + ".content[" + std::to_string(i) + "]";
        if (!part.is_object()) fail_type(pw, "an object", part);
        const json * t = field(part, "type");
        if (!t || !t->is_string()) throw ApiError(400, "missing or invalid '" + pw + ".type'", pw + ".type", "invalid_type");
        const std::string type = t->get<std::string>();
        if (type != "text") fail_unsupported(pw + ".type", "content parts of type '" + type + "' are not supported (only text)");
        const json * tx = field(part, "text");
        if (!tx) throw ApiError(400, "missing required parameter '" + pw + ".text'", pw + ".text", "missing_required_parameter");
        if (!tx->is_string()) fail_type(pw + ".text", "a string", *tx);
        if (!text.empty()) text += "\n";
        text += tx->get<std::string>();
    }
    return text;
}

}  // namespace

json parse_json_body(const std::string & body, int max_depth) {
    if (body.empty()) throw ApiError(400, "the request body is empty (expected JSON)", "", "invalid_json");
    // Bound the nesting before parsing, so that no input can make the parser or a later walk recurse deeply.
    int depth = 0;
    bool in_str = false, esc = false;
    for (char c : body) {
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
        } else if (c == '"') {
            in_str = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max_depth) throw ApiError(400, strfmt("the JSON body is nested more than %d levels deep", max_depth), "", "invalid_json");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    try {
        return json::parse(body);
    } catch (const json::exception & e) {
        throw ApiError(400, std::string("malformed JSON: ") + e.what(), "", "invalid_json");
    }
}

GenRequest parse_chat_request(const json & body, const PromptContext & pc) {
    GenRequest r = parse_common(body, pc, true);

    const json * m = field(body, "messages");
    if (!m) throw ApiError(400, "missing required parameter 'messages'", "messages", "missing_required_parameter");
    if (!m->is_array()) fail_type("messages", "an array", *m);
    if (m->empty()) fail_value("messages", "'messages' must hold at least one message");
    std::vector<ChatMessage> msgs;
    msgs.reserve(m->size());
    for (size_t i = 0; i < m->size(); ++i) {
        const json & msg = (*m)[i];
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!msg.is_object()) fail_type(where, "an object", msg);
        const json * rv = field(msg, "role");
        if (!rv) throw ApiError(400, "missing required parameter '" + where + ".role'", where + ".role", "missing_required_parameter");
        if (!rv->is_string()) fail_type(where + ".role", "a string", *rv);
        std::string role = rv->get<std::string>();
        if (role == "developer") role = "system";
        if (role == "tool" || role == "function") fail_unsupported(where + ".role", "messages with role '" + role + "' are not supported");
        if (role != "system" && role != "user" && role != "assistant")
            fail_value(where + ".role", "invalid role '" + role + "' (expected system, developer, user or assistant)");
        const json * tc = field(msg, "tool_calls");
        if (tc && !(tc->is_array() && tc->empty())) fail_unsupported(where + ".tool_calls", "tool calls are not supported");
        msgs.push_back({role, message_content(msg, where, role)});
    }

    const bool lp = get_bool(body, "logprobs", false);
    const int64_t top = get_int(body, "top_logprobs", -1, 0, 20);
    if (top >= 0 && !lp) fail_value("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    r.logprobs = lp ? (int32_t) std::max<int64_t>(top, 0) : -1;

    const std::string text = chat_format(pc.chat_template, msgs, true, pc.bos_text);
    r.prompts.push_back(pc.tok->encode(text, !chat_template_adds_bos(pc.chat_template), true));
    check_fit(r, pc);
    return r;
}

GenRequest parse_completion_request(const json & body, const PromptContext & pc) {
    GenRequest r = parse_common(body, pc, false);
    const int64_t best_of = get_int(body, "best_of", r.n, 1, pc.max_choices);
    if (best_of != 1 && best_of != r.n) fail_unsupported("best_of", "best_of other than 1 or n is not supported");
    r.logprobs = (int32_t) get_int(body, "logprobs", -1, 0, 5);

    const json * p = field(body, "prompt");
    if (!p) throw ApiError(400, "missing required parameter 'prompt'", "prompt", "missing_required_parameter");
    const int32_t n_vocab = pc.tok->n_vocab();
    auto token_ids = [&](const json & arr, const std::string & where) {
        std::vector<int32_t> ids;
        ids.reserve(arr.size());
        for (const json & t : arr) {
            const int64_t id = to_int(where, t);
            if (id < 0 || id >= n_vocab) fail_value(where, strfmt("token id %lld is outside the vocabulary of %d", (long long) id, n_vocab));
            ids.push_back((int32_t) id);
        }
        return ids;
    };
    auto text_prompt = [&](const std::string & s) { return pc.tok->encode(s, true, true); };
    if (p->is_string()) {
        r.prompts.push_back(text_prompt(p->get<std::string>()));
    } else if (p->is_array()) {
        if (p->empty()) fail_value("prompt", "'prompt' must not be an empty array");
        if ((*p)[0].is_number()) {
            r.prompts.push_back(token_ids(*p, "prompt"));
        } else {
            if (p->size() > (size_t) pc.max_choices)
                fail_value("prompt", strfmt("at most %d prompts per request", pc.max_choices));
            for (size_t i = 0; i < p->size(); ++i) {
                const json & e = (*p)[i];
                const std::string where = "prompt[" + std::to_string(i) + "]";
                if (e.is_string()) r.prompts.push_back(text_prompt(e.get<std::string>()));
                else if (e.is_array()) r.prompts.push_back(token_ids(e, where));
                else fail_type(where, "a string or an array of token ids", e);
            }
        }
    } else {
        fail_type("prompt", "a string, an array of strings or an array of token ids", *p);
    }
    check_fit(r, pc);
    return r;
}

}  // namespace quill
