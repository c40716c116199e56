// quill serve under bad input and in operation: every error case with its status and OpenAI error shape (and the
// server still healthy after), API key and CORS, a disconnecting client freeing its slot, the bounded queue (503),
// and graceful shutdown on SIGTERM/SIGINT.
#include "tests/server/harness.h"

#include <atomic>
#include <thread>

using namespace srvtest;

namespace {

json chat(const std::string & user, json extra = json::object()) {
    json b = {{"model", "m"}, {"messages", {{{"role", "user"}, {"content", user}}}}, {"max_tokens", 8}, {"temperature", 0}};
    for (auto it = extra.begin(); it != extra.end(); ++it) b[it.key()] = it.value();
    return b;
}

struct ErrorCase {
    std::string name, path, body;
    int status;
    std::string param;  // expected "param" ("" = not checked)
    std::string code;   // expected "code" ("" = not checked)
};

std::vector<ErrorCase> error_cases() {
    const std::string cc = "/v1/chat/completions", cp = "/v1/completions";
    auto withj = [](json b, const char * k, json v) {
        b[k] = v;
        return b;
    };
    auto with = [&](json b, const char * k, json v) { return withj(std::move(b), k, std::move(v)).dump(); };
    const json ok = chat("Hi");
    json bad_role = ok, tool_role = ok, null_content = ok, num_content = ok, image = ok, no_role = ok, not_obj = ok;
    bad_role["messages"][0]["role"] = "wizard";
    tool_role["messages"][0]["role"] = "tool";
    null_content["messages"][0]["content"] = nullptr;
    num_content["messages"][0]["content"] = 5;
    image["messages"][0]["content"] = json::array({{{"type", "image_url"}, {"image_url", {{"url", "http://x/y.png"}}}}});
    no_role["messages"][0].erase("role");
    not_obj["messages"][0] = "hello";
    json seventeen = json::array();
    for (int i = 0; i < 17; ++i) seventeen.push_back("s" + std::to_string(i));
    std::string long_prompt;
    for (int i = 0; i < 300; ++i) long_prompt += "Once upon a time ";
    const json comp = {{"prompt", "Once"}, {"max_tokens", 4}};

    return {
        {"malformed JSON", cc, "{\"messages\": [", 400, "", "invalid_json"},
        {"empty body", cc, "", 400, "", "invalid_json"},
        {"body not an object", cc, "[1, 2]", 400, "", ""},
        {"deeply nested JSON", cc, std::string(60000, '['), 400, "", "invalid_json"},
        {"invalid UTF-8", cc, "{\"messages\": [{\"role\": \"user\", \"content\": \"\xff\xfe\xc3\"}]}", 400, "", "invalid_json"},
        {"missing messages", cc, "{\"model\": \"m\"}", 400, "messages", "missing_required_parameter"},
        {"null messages", cc, "{\"messages\": null}", 400, "messages", "missing_required_parameter"},
        {"messages not an array", cc, "{\"messages\": \"hi\"}", 400, "messages", "invalid_type"},
        {"empty messages", cc, "{\"messages\": []}", 400, "messages", ""},
        {"message not an object", cc, not_obj.dump(), 400, "messages[0]", "invalid_type"},
        {"message without role", cc, no_role.dump(), 400, "messages[0].role", ""},
        {"unknown role", cc, bad_role.dump(), 400, "messages[0].role", ""},
        {"tool role", cc, tool_role.dump(), 400, "messages[0].role", "unsupported_parameter"},
        {"null user content", cc, null_content.dump(), 400, "messages[0].content", ""},
        {"numeric content", cc, num_content.dump(), 400, "messages[0].content", "invalid_type"},
        {"image content part", cc, image.dump(), 400, "messages[0].content[0].type", "unsupported_parameter"},
        {"temperature a string", cc, with(ok, "temperature", "hot"), 400, "temperature", "invalid_type"},
        {"temperature out of range", cc, with(ok, "temperature", 5), 400, "temperature", "invalid_value"},
        {"top_p negative", cc, with(ok, "top_p", -1), 400, "top_p", ""},
        {"max_tokens zero", cc, with(ok, "max_tokens", 0), 400, "max_tokens", ""},
        {"max_tokens not an integer", cc, with(ok, "max_tokens", 1.5), 400, "max_tokens", "invalid_type"},
        {"max_tokens huge float", cc, with(ok, "max_tokens", 1e300), 400, "max_tokens", "context_length_exceeded"},
        {"max_tokens huge integer", cc, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"max_tokens\": 1180591620717411303424}", 400,
         "max_tokens", "context_length_exceeded"},
        {"prompt plus max_tokens beyond the context", cc, with(ok, "max_completion_tokens", 600), 400, "max_tokens", "context_length_exceeded"},
        {"n zero", cc, with(ok, "n", 0), 400, "n", ""},
        {"n huge", cc, with(ok, "n", 1000000000000LL), 400, "n", ""},
        {"n a string", cc, with(ok, "n", "2"), 400, "n", "invalid_type"},
        {"stop a number", cc, with(ok, "stop", 5), 400, "stop", "invalid_type"},
        {"stop with a number", cc, with(ok, "stop", json::array({"a", 1})), 400, "stop", ""},
        {"too many stop strings", cc, with(ok, "stop", seventeen), 400, "stop", ""},
        {"seed a string", cc, with(ok, "seed", "x"), 400, "seed", "invalid_type"},
        {"stream a string", cc, with(ok, "stream", "yes"), 400, "stream", "invalid_type"},
        {"tools", cc, with(ok, "tools", json::array({{{"type", "function"}}})), 400, "tools", "unsupported_parameter"},
        {"logit_bias", cc, with(ok, "logit_bias", {{"1", 5}}), 400, "logit_bias", "unsupported_parameter"},
        {"response_format json", cc, with(ok, "response_format", {{"type", "json_object"}}), 400, "response_format", "unsupported_parameter"},
        {"top_logprobs without logprobs", cc, with(ok, "top_logprobs", 2), 400, "top_logprobs", ""},
        {"top_logprobs too many", cc, with(withj(ok, "logprobs", true), "top_logprobs", 50), 400, "top_logprobs", ""},
        {"missing prompt", cp, "{\"max_tokens\": 4}", 400, "prompt", "missing_required_parameter"},
        {"null prompt", cp, "{\"prompt\": null}", 400, "prompt", "missing_required_parameter"},
        {"prompt a number", cp, with(comp, "prompt", 5), 400, "prompt", "invalid_type"},
        {"empty prompt array", cp, with(comp, "prompt", json::array()), 400, "prompt", ""},
        {"token id out of range", cp, with(comp, "prompt", json::array({1, 99999})), 400, "prompt", ""},
        {"prompt longer than the context", cp, with(comp, "prompt", long_prompt), 400, "prompt", "context_length_exceeded"},
        {"echo", cp, with(comp, "echo", true), 400, "echo", "unsupported_parameter"},
        {"logprobs too many", cp, with(comp, "logprobs", 6), 400, "logprobs", ""},
        {"tokenize without content", "/tokenize", "{\"text\": \"x\"}", 400, "content", ""},
        {"detokenize bad id", "/detokenize", "{\"tokens\": [1, -5]}", 400, "tokens", ""},
        {"unknown route", "/v1/nothing", "{}", 404, "", "not_found"},
        {"body over the limit", cc, "{\"messages\": \"" + std::string(70000, 'x') + "\"}", 413, "", "request_too_large"},
    };
}

// A streamed greedy completion read on its own thread (joined on destruction, also when a check fails).
struct BackgroundStream {
    std::atomic<bool> started{false};  // the first text delta arrived
    HttpResult result;
    std::thread thread;

    BackgroundStream(const ServerProcess & srv, int max_tokens) {
        thread = std::thread([this, &srv, max_tokens] {
            httplib::Client c = srv.client();
            const json b = {{"prompt", "Once upon a time"}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", true}};
            result = post_stream(c, "/v1/completions", b.dump(), [this](const std::string & all) {
                if (all.find("\"text\"") != std::string::npos) started = true;
                return true;
            });
        });
    }
    ~BackgroundStream() { join(); }
    void join() {
        if (thread.joinable()) thread.join();
    }
};

}  // namespace

TEST_CASE("server: every error case gets its status and the OpenAI error shape and the server stays healthy") {
    REQUIRE_SHARED();
    ServerProcess srv({"--max-body", "65536", "--parallel", "2"});
    httplib::Client c = srv.client();
    for (const ErrorCase & e : error_cases()) {
        HttpResult r = post(c, e.path, e.body);
        INFO(e.name << ": " << r.status << " " << r.body.substr(0, 300));
        CHECK(r.status == e.status);
        REQUIRE(is_error_shape(r.body));
        const json err = json::parse(r.body)["error"];
        if (!e.param.empty()) CHECK(err["param"] == e.param);
        if (!e.code.empty()) CHECK(err["code"] == e.code);
        CHECK(err["type"] == (e.status == 404 ? "not_found_error" : "invalid_request_error"));
    }
    // A body over the limit sent in chunks (no Content-Length) is refused too.
    {
        httplib::Client cc = srv.client();
        size_t sent = 0;
        auto r = cc.Post(
            "/v1/chat/completions",
            [&](size_t, httplib::DataSink & sink) {
                std::string piece(8192, 'x');
                if (sent >= 200000) {
                    sink.done();
                    return true;
                }
                sent += piece.size();
                return sink.write(piece.data(), piece.size());
            },
            "application/json");
        if (r) {
            CHECK(r->status == 413);
            CHECK(is_error_shape(r->body));
        }
    }
    // A multipart form instead of JSON.
    httplib::MultipartFormDataItems form = {{"messages", "hi", "", ""}};
    auto mp = c.Post("/v1/chat/completions", form);
    REQUIRE(mp);
    CHECK(mp->status == 400);
    CHECK(is_error_shape(mp->body));
    // Wrong method on a known route, and GET of an unknown one.
    HttpResult gm = get(c, "/v1/chat/completions");
    CHECK(gm.status == 404);
    CHECK(is_error_shape(gm.body));
    CHECK(get(c, "/nope").status == 404);

    // Nulls where optional values are expected mean "not given"; unknown fields are ignored.
    json nulls = chat("Hi", {{"temperature", nullptr}, {"stop", nullptr}, {"seed", nullptr}, {"n", nullptr}, {"stream", nullptr},
                             {"logprobs", nullptr}, {"top_p", nullptr}, {"some_future_field", {{"x", 1}}}, {"user", "u1"}});
    HttpResult r = post(c, "/v1/chat/completions", nulls.dump());
    CHECK(r.status == 200);
    CHECK(json::parse(r.body)["choices"][0]["finish_reason"] == "length");

    // Still healthy, nothing leaked, and generation still works.
    CHECK(get(c, "/health").status == 200);
    CHECK(metric(c, "quill_slots_busy") == 0);
    CHECK(metric(c, "quill_queue_depth") == 0);
    HttpResult again = post(c, "/v1/completions", json{{"prompt", "Once upon a time"}, {"max_tokens", 5}, {"temperature", 0}}.dump());
    CHECK(again.status == 200);
    CHECK(json::parse(again.body)["choices"][0]["text"] == ", there was a little");
    CHECK(srv.stop() == 0);
}

TEST_CASE("server: API key from QUILL_API_KEY guards the API routes, and CORS") {
    REQUIRE_SHARED();
    ServerProcess srv({"--cors-origin", "https://chat.example"}, {"QUILL_API_KEY=sekret-key"});
    httplib::Client c = srv.client();
    const httplib::Headers good = {{"Authorization", "Bearer sekret-key"}}, bad = {{"Authorization", "Bearer nope"}};
    const std::string body = chat("Hi").dump();

    for (const httplib::Headers & h : {httplib::Headers{}, bad, httplib::Headers{{"Authorization", "sekret-key"}}}) {
        HttpResult m = get(c, "/v1/models", h);
        CHECK(m.status == 401);
        CHECK(is_error_shape(m.body));
        CHECK(json::parse(m.body)["error"]["code"] == "invalid_api_key");
        CHECK(post(c, "/v1/chat/completions", body, h).status == 401);
        CHECK(post(c, "/v1/completions", "{\"prompt\": \"x\"}", h).status == 401);
        CHECK(post(c, "/tokenize", "{\"content\": \"x\"}", h).status == 401);
    }
    CHECK(get(c, "/v1/models", good).status == 200);
    HttpResult ok = post(c, "/v1/chat/completions", body, good);
    CHECK(ok.status == 200);
    CHECK(json::parse(ok.body)["choices"].size() == 1);
    // Health, metrics and the page need no key.
    CHECK(get(c, "/health").status == 200);
    CHECK(get(c, "/metrics").status == 200);
    CHECK(get(c, "/").status == 200);

    // CORS: preflight and the header on responses.
    auto pre = c.Options("/v1/chat/completions", {{"Origin", "https://chat.example"}, {"Access-Control-Request-Method", "POST"}});
    REQUIRE(pre);
    CHECK(pre->status == 204);
    CHECK(pre->get_header_value("Access-Control-Allow-Origin") == "https://chat.example");
    CHECK(pre->get_header_value("Access-Control-Allow-Headers").find("Authorization") != std::string::npos);
    CHECK(ok.headers.find("Access-Control-Allow-Origin")->second == "https://chat.example");
    CHECK(srv.stop() == 0);
}

TEST_CASE("server: a client that disconnects frees its slot, a full queue gives 503, then N requests run at once") {
    REQUIRE_SHARED();
    // Two slots, no queue, a long context so that a generation lasts seconds unless it is cancelled.
    ServerProcess srv({"--parallel", "2", "--queue", "0", "-c", "4096"});
    httplib::Client c = srv.client();
    const json long_req = {{"prompt", "Once upon a time"}, {"max_tokens", 4000}, {"temperature", 0}, {"stream", true}};

    // 1. Read three deltas, then hang up.
    {
        httplib::Client cd = srv.client();
        HttpResult r = post_stream(cd, "/v1/completions", long_req.dump(), [](const std::string & all) {
            size_t n = 0;
            for (size_t at = all.find("\"text\""); at != std::string::npos; at = all.find("\"text\"", at + 1)) ++n;
            return n < 3;
        });
        CHECK(r.status == 0);  // the client cancelled
    }
    CHECK(eventually([&] { return metric(c, "quill_slots_busy") == 0; }, 5.0));
    CHECK(metric(c, "quill_requests_cancelled_total") == 1);
    const double generated = metric(c, "quill_generated_tokens_total");
    CHECK(generated < 4000);
    MESSAGE("the disconnected request stopped after " << generated << " of 4000 tokens");

    // 2. Two streams hold both slots; a third request gets 503 with Retry-After and the error shape.
    std::atomic<bool> release{false};
    std::atomic<int> streaming{0};
    std::vector<std::thread> holders;
    std::vector<HttpResult> held(2);
    for (int i = 0; i < 2; ++i) {
        holders.emplace_back([&, i] {
            httplib::Client ch = srv.client();
            bool counted = false;
            held[(size_t) i] = post_stream(ch, "/v1/completions", long_req.dump(), [&](const std::string & all) {
                if (!counted && all.find("\"text\"") != std::string::npos) counted = true, streaming++;
                return !release.load();
            });
        });
    }
    const bool both = eventually([&] { return streaming == 2; }, 10.0);
    CHECK(both);
    if (both) {
        CHECK(metric(c, "quill_slots_busy") == 2);
        HttpResult busy = post(c, "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 4}}.dump());
        CHECK(busy.status == 503);
        CHECK(is_error_shape(busy.body));  // (no json::parse that could throw while the holder threads run)
        CHECK(busy.body.find("\"server_busy\"") != std::string::npos);
        auto ra = busy.headers.find("Retry-After");
        CHECK((ra != busy.headers.end() && ra->second == "1"));
        CHECK(post(c, "/v1/chat/completions", chat("Hi", {{"stream", true}}).dump()).status == 503);
        CHECK(metric(c, "quill_requests_rejected_total") == 2);
    }
    release = true;
    for (std::thread & t : holders) t.join();
    CHECK(eventually([&] { return metric(c, "quill_slots_busy") == 0; }, 5.0));

    // 3. Both slots are free again: N = 2 new requests are served together (with no queue, a leaked slot would
    // make one of them 503).
    std::vector<HttpResult> fresh(2);
    std::vector<std::thread> ts;
    for (int i = 0; i < 2; ++i) {
        ts.emplace_back([&, i] {
            httplib::Client cf = srv.client();
            json b = {{"prompt", "Once upon a time"}, {"max_tokens", 200}, {"temperature", 0}, {"stream", true}};
            fresh[(size_t) i] = post_stream(cf, "/v1/completions", b.dump(), [](const std::string &) { return true; });
        });
    }
    for (std::thread & t : ts) t.join();
    for (const HttpResult & r : fresh) {
        CHECK(r.status == 200);
        Sse s = parse_sse(r.body);
        CHECK(s.done);
        CHECK(sse_finish(s) == "length");
        CHECK(sse_text(s).rfind(", there was a little girl named Lily.", 0) == 0);
    }
    CHECK(metric(c, "quill_requests_rejected_total") == 2);
    CHECK(get(c, "/health").status == 200);
    CHECK(srv.stop() == 0);
}

TEST_CASE("server: SIGTERM lets accepted requests finish, refuses new ones and exits 0, a second signal cancels") {
    REQUIRE_SHARED();
    {
        ServerProcess srv({"-c", "4096"});
        BackgroundStream stream(srv, 1500);
        REQUIRE(eventually([&] { return stream.started.load(); }, 10.0));
        srv.signal(SIGTERM);
        httplib::Client c = srv.client();
        // While draining: /health and new requests answer 503 (or the server is already gone).
        CHECK(eventually([&] { HttpResult h = get(c, "/health"); return h.status == 503 || h.status == 0; }, 5.0));
        HttpResult late = post(c, "/v1/completions", json{{"prompt", "Hi"}, {"max_tokens", 4}}.dump());
        CHECK((late.status == 503 || late.status == 0));
        if (late.status == 503) CHECK(json::parse(late.body)["error"]["code"] == "shutting_down");
        stream.join();
        CHECK(stream.result.status == 200);
        Sse s = parse_sse(stream.result.body);
        CHECK(s.done);
        CHECK(sse_finish(s) == "length");
        CHECK(srv.wait_exit(20.0) == 0);
        CHECK(srv.log().find("SIGTERM received") != std::string::npos);
    }
    {
        ServerProcess srv({"-c", "4096"});
        BackgroundStream stream(srv, 4000);
        REQUIRE(eventually([&] { return stream.started.load(); }, 10.0));
        srv.signal(SIGTERM);
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        srv.signal(SIGINT);
        stream.join();
        // The stream ends early with an error event and [DONE].
        Sse s = parse_sse(stream.result.body);
        CHECK(s.done);
        bool error_event = false;
        for (const json & e : s.events) error_event |= e.contains("error");
        CHECK(error_event);
        CHECK(srv.wait_exit(10.0) == 0);
    }
    {
        ServerProcess srv;
        CHECK(srv.stop(SIGINT) == 0);
    }
}
