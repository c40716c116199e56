// HTTP plumbing (errors, auth, CORS, access log) and the small routes: /health, /metrics, /, /v1/models,
// /tokenize, /detokenize.
#include "ggml-lite/common.h"
#include "model/tokenizer.h"
#include "server/app.h"
#include "server/chat_page.h"
#include "server/http_conn.h"
#include "server/metrics.h"
#include "server/scheduler.h"
#include "server/text_stream.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace quill {

using json = nlohmann::json;
using httplib::Request;
using httplib::Response;

namespace {

using Clock = std::chrono::steady_clock;

// Per connection thread: when the current request started and how many streamed bytes it has written.
thread_local Clock::time_point t_request_start;
thread_local bool t_request_started = false;
thread_local size_t t_stream_bytes = 0;

std::string route_label(const std::string & path) {
    static const char * known[] = {"/", "/health", "/metrics", "/v1/models", "/v1/chat/completions", "/v1/completions", "/tokenize", "/detokenize"};
    for (const char * k : known) {
        if (path == k) return k;
    }
    if (path.rfind("/v1/models/", 0) == 0) return "/v1/models";
    return "other";
}

// The time taken depends only on the length of the client's value, not on where it differs from the key.
bool constant_time_equal(const std::string & given, const std::string & key) {
    unsigned char diff = given.size() != key.size();
    for (size_t i = 0; i < given.size(); ++i) diff |= (unsigned char) (given[i] ^ (i < key.size() ? key[i] : 0));
    return diff == 0;
}

void access_log(const Request & req, const Response & res) {
    char when[32];
    const std::time_t t = std::time(nullptr);
    std::tm tm;
    gmtime_r(&t, &tm);
    std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::string dur = "-";
    if (t_request_started) dur = strfmt("%.1fms", std::chrono::duration<double, std::milli>(Clock::now() - t_request_start).count());
    std::string path = req.path.size() > 200 ? req.path.substr(0, 200) + "..." : req.path;
    for (char & c : path) {
        if ((unsigned char) c < 0x20 || c == '"' || (unsigned char) c >= 0x7f) c = '?';
    }
    std::string addr = req.remote_addr;
    int port = req.remote_port;
    if (addr.empty()) http_peer(addr, port);  // a request that failed before httplib filled them in
    fprintf(stderr, "%s %s:%d \"%s %s\" %d %zuB %s\n", when, addr.c_str(), port, req.method.c_str(), path.c_str(), res.status,
            res.body.size() + t_stream_bytes, dur.c_str());
    t_request_started = false;
    t_stream_bytes = 0;
}

}  // namespace

std::string http_dump(const json & j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void http_send_json(Response & res, int status, const json & j) {
    res.status = status;
    res.set_content(http_dump(j), "application/json");
}

void http_send_error(Response & res, const ApiError & e) {
    if (e.status == 503) res.set_header("Retry-After", "1");
    if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
    http_send_json(res, e.status, api_error_json(e));
}

std::string http_read_body(const Request & req, const httplib::ContentReader & reader, const Response & res, size_t limit) {
    std::string body;
    bool too_big = false;
    auto receive = [&](const char * data, size_t n) {
        if (body.size() + n > limit) {
            too_big = true;
            return false;
        }
        body.append(data, n);
        return true;
    };
    // Multipart bodies must be read through httplib's multipart reader (the plain one is not set up for them).
    const bool multipart = req.is_multipart_form_data();
    const bool ok = multipart ? reader([](const httplib::MultipartFormData &) { return true; }, receive) : reader(receive);
    // httplib refuses a Content-Length over the limit itself (status 413, body skipped); chunked bodies are
    // counted here.
    if (too_big || (!ok && res.status == 413))
        throw ApiError(413, strfmt("the request body is larger than the limit of %zu bytes", limit), "", "request_too_large");
    if (multipart) throw ApiError(400, "the request body must be JSON, not multipart/form-data", "", "invalid_json");
    if (!ok) throw ApiError(400, "the request body could not be read", "", "invalid_body");
    return body;
}

void http_check_auth(const App & app, const Request & req) {
    if (app.params.api_key.empty()) return;
    const std::string h = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (h.rfind(prefix, 0) != 0) throw ApiError(401, "missing API key: send the header 'Authorization: Bearer <key>'", "", "invalid_api_key");
    if (!constant_time_equal(h.substr(prefix.size()), app.params.api_key))
        throw ApiError(401, "incorrect API key provided", "", "invalid_api_key");
}

void http_count_bytes(size_t n) { t_stream_bytes += n; }

void http_setup(httplib::Server & svr, App & app) {
    const ServerParams & p = app.params;
    svr.set_payload_max_length(p.max_body);
    // Connections get a thread each (up to --max-connections) from HttpServer's own task queue (http_conn.cpp),
    // which also bounds the time for request headers; nothing to set up here.

    if (!p.cors_origin.empty()) {
        httplib::Headers h = {
            {"Access-Control-Allow-Origin", p.cors_origin},
            {"Access-Control-Allow-Headers", "Authorization, Content-Type"},
            {"Access-Control-Allow-Methods", "GET, POST, OPTIONS"},
            {"Access-Control-Max-Age", "600"},
        };
        if (p.cors_origin != "*") h.emplace("Vary", "Origin");
        svr.set_default_headers(h);
        svr.Options(".*", [](const Request &, Response & res) { res.status = 204; });
    }

    svr.set_pre_routing_handler([](const Request &, Response &) {
        t_request_start = Clock::now();
        t_request_started = true;
        t_stream_bytes = 0;
        return httplib::Server::HandlerResponse::Unhandled;
    });
    svr.set_logger([&app](const Request & req, const Response & res) {
        app.metrics->on_request(route_label(req.path), res.status);
        access_log(req, res);
    });
    // Statuses httplib sets itself (404 unknown route, 413 body too large, 400 unparsable request) get the
    // OpenAI error body too; responses that already have a body are left alone.
    svr.set_error_handler(httplib::Server::HandlerWithResponse([&app](const Request & req, Response & res) {
        if (!res.body.empty() || res.content_provider_) return httplib::Server::HandlerResponse::Unhandled;
        ApiError e(res.status, strfmt("HTTP error %d", res.status));
        if (res.status == 404) e = ApiError(404, "unknown route: " + req.method + " " + req.path, "", "not_found");
        if (res.status == 413)
            e = ApiError(413, strfmt("the request body is larger than the limit of %zu bytes", app.params.max_body), "", "request_too_large");
        if (res.status == 400) e = ApiError(400, "malformed HTTP request", "", "bad_request");
        if (res.status == 400 && http_header_timed_out())
            e = ApiError(408, strfmt("the request line and headers did not arrive within %g seconds", app.params.header_timeout), "", "request_timeout");
        if (res.status == 414) e = ApiError(414, "the request URI is too long", "", "uri_too_long");
        http_send_json(res, e.status, api_error_json(e));
        return httplib::Server::HandlerResponse::Handled;
    }));
    svr.set_exception_handler([](const Request &, Response & res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
            if (ep) std::rethrow_exception(ep);
        } catch (const std::exception & e) {
            what = e.what();
        } catch (...) {
        }
        http_send_error(res, ApiError(500, "internal error: " + what));
    });

    svr.Get("/health", [&app](const Request &, Response & res) {
        if (app.draining) return http_send_json(res, 503, {{"status", "shutting down"}});
        http_send_json(res, 200, {{"status", "ok"}});
    });
    svr.Get("/metrics", [&app](const Request &, Response & res) {
        res.set_content(app.metrics->render(app.sched->slots_busy(), app.sched->n_slots(), app.sched->queue_depth()),
                        "text/plain; version=0.0.4");
    });
    svr.Get("/", [](const Request &, Response & res) {
        res.set_header("Cache-Control", "no-cache");
        res.set_content(chat_page_html(), "text/html; charset=utf-8");
    });

    svr.Get("/favicon.ico", [](const Request &, Response & res) { res.status = 204; });

    auto model_json = [&app] {
        return json{{"id", app.model_id},
                    {"object", "model"},
                    {"created", app.created},
                    {"owned_by", "quill"},
                    {"meta", {{"n_ctx", app.pc.n_ctx}, {"n_vocab", app.tok->n_vocab()}, {"slots", app.sched->n_slots()}, {"chat_template", app.pc.chat_template}}}};
    };
    svr.Get("/v1/models", http_guarded([&app, model_json](const Request & req, Response & res) {
        http_check_auth(app, req);
        http_send_json(res, 200, {{"object", "list"}, {"data", json::array({model_json()})}});
    }));
    svr.Get(R"(/v1/models/(.+))", http_guarded([&app, model_json](const Request & req, Response & res) {
        http_check_auth(app, req);
        if (req.matches[1] != app.model_id) throw ApiError(404, "the model '" + std::string(req.matches[1]) + "' does not exist", "model", "model_not_found");
        http_send_json(res, 200, model_json());
    }));

    svr.Post("/tokenize", http_guarded_body([&app](const Request & req, Response & res, const httplib::ContentReader & reader) {
        const json body = parse_json_body(http_read_body(req, reader, res, app.params.max_body));
        http_check_auth(app, req);
        if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
        auto it = body.find("content");
        if (it == body.end() || !it->is_string()) throw ApiError(400, "'content' must be a string", "content", "invalid_type");
        auto flag = [&](const char * k, bool def) {
            auto f = body.find(k);
            if (f == body.end() || f->is_null()) return def;
            if (!f->is_boolean()) throw ApiError(400, std::string("'") + k + "' must be a boolean", k, "invalid_type");
            return f->get<bool>();
        };
        const bool add_special = flag("add_special", false), parse_special = flag("parse_special", true), pieces = flag("with_pieces", false);
        const std::vector<int32_t> ids = app.tok->encode(it->get<std::string>(), add_special, parse_special);
        json out = json::array();
        for (int32_t id : ids) {
            if (pieces) out.push_back({{"id", id}, {"piece", utf8_sanitize(app.tok->token_to_piece(id, true))}});
            else out.push_back(id);
        }
        http_send_json(res, 200, {{"tokens", out}});
    }));
    svr.Post("/detokenize", http_guarded_body([&app](const Request & req, Response & res, const httplib::ContentReader & reader) {
        const json body = parse_json_body(http_read_body(req, reader, res, app.params.max_body));
        http_check_auth(app, req);
        if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
        auto it = body.find("tokens");
        if (it == body.end() || !it->is_array()) throw ApiError(400, "'tokens' must be an array of token ids", "tokens", "invalid_type");
        std::vector<int32_t> ids;
        for (const json & t : *it) {
            if (!t.is_number_integer()) throw ApiError(400, "'tokens' must be an array of token ids", "tokens", "invalid_type");
            const int64_t id = t.is_number_unsigned() && t.get<uint64_t>() > (uint64_t) INT32_MAX ? -1 : t.get<int64_t>();
            if (id < 0 || id >= app.tok->n_vocab())
                throw ApiError(400, strfmt("token id %lld is outside the vocabulary of %d", (long long) id, app.tok->n_vocab()), "tokens", "invalid_value");
            ids.push_back((int32_t) id);
        }
        http_send_json(res, 200, {{"content", utf8_sanitize(app.tok->decode(ids))}});
    }));

    http_add_generate_routes(svr, app);
}

}  // namespace quill
