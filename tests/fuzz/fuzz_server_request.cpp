// Fuzz target: the HTTP request parsers (server/oai_request.cpp): a request body -> parse_json_body ->
// parse_chat_request (with each chat template) and parse_completion_request, with the PromptContext the server
// builds for the stories260K model (its tok512.bin from ../shared).
//
// Contracts checked (server/oai_request.h): bad input throws ApiError with a 4xx status (a 5xx or any other
// exception is a finding); an accepted request is within the limits the parser enforces: 1 <= n, choices <= the
// server's max, every prompt non-empty and shorter than the context with room for max_tokens, token ids in the
// vocabulary, sampling values in their documented ranges.
#include "ggml-lite/common.h"
#include "model/chat.h"
#include "model/tokenizer.h"
#include "server/oai_request.h"
#include "tests/fuzz/fuzz_util.h"

using namespace quill;

namespace {

void check_request(const GenRequest & r, const PromptContext & pc) {
    FUZZ_CHECK(r.n >= 1 && r.n <= pc.max_choices, strfmt("n = %d", r.n));
    FUZZ_CHECK(!r.prompts.empty() && r.n_choices() <= pc.max_choices, strfmt("%zu prompts x n %d", r.prompts.size(), r.n));
    FUZZ_CHECK(!r.chat || r.prompts.size() == 1, "a chat request with several prompts");
    FUZZ_CHECK(r.max_tokens >= 0, strfmt("max_tokens %lld", (long long) r.max_tokens));
    for (const std::vector<int32_t> & p : r.prompts) {
        const int64_t len = (int64_t) p.size();
        FUZZ_CHECK(len >= 1 && len < pc.n_ctx, strfmt("a prompt of %lld tokens (context %d)", (long long) len, pc.n_ctx));
        FUZZ_CHECK(r.max_tokens == 0 || r.max_tokens <= pc.n_ctx - len, strfmt("max_tokens %lld", (long long) r.max_tokens));
        for (int32_t id : p) FUZZ_CHECK(id >= 0 && id < pc.tok->n_vocab(), strfmt("token id %d", id));
        (void) pc.tok->decode(p, true);
    }
    FUZZ_CHECK(r.logprobs >= -1 && r.logprobs <= 20, strfmt("logprobs %d", r.logprobs));
    const SamplingParams & s = r.sampling;
    FUZZ_CHECK(s.temp >= 0 && s.temp <= 2 && s.top_p >= 0 && s.top_p <= 1 && s.min_p >= 0 && s.min_p <= 1 && s.top_k >= 0,
               "a sampling value out of its range");
    FUZZ_CHECK(r.stop.size() <= 16, strfmt("%zu stop strings", r.stop.size()));
}

void check_error(const ApiError & e) {
    FUZZ_CHECK(e.status >= 400 && e.status < 500, strfmt("status %d for a bad request: %s", e.status, e.what()));
    // As the server sends it (server/app.h http_dump: invalid UTF-8 from the request replaced, never a throw).
    (void) api_error_json(e).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

int quill_fuzz_server_request(const uint8_t * data, size_t size) {
    const std::string body((const char *) data, size);
    nlohmann::json j;
    try {
        j = parse_json_body(body);
    } catch (const ApiError & e) {
        check_error(e);
        return 0;
    }

    const Tokenizer & tok = quill_fuzz::stories_tokenizer();
    PromptContext pc;
    pc.tok = &tok;
    pc.bos_text = tok.bos() >= 0 ? tok.token_text(tok.bos()) : "";
    pc.n_ctx = 64 + (int32_t) (size % 449);  // a context between 64 and 512 (the model's)
    pc.max_choices = 1 + (int32_t) (size % 16);
    for (const char * name : {"llama2", "chatml", "llama3", "plain"}) {
        pc.chat_template = name;
        try {
            check_request(parse_chat_request(j, pc), pc);
        } catch (const ApiError & e) {
            check_error(e);
        }
    }
    try {
        check_request(parse_completion_request(j, pc), pc);
    } catch (const ApiError & e) {
        check_error(e);
    }
    return 0;
}

QUILL_FUZZ_ENTRY(quill_fuzz_server_request, true)
