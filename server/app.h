// What the HTTP handlers share: the server's settings, the model's tokenizer, the scheduler and the metrics.
#pragma once

#include "server/api_error.h"
#include "server/http_lib.h"
#include "server/oai_request.h"
#include "server/server.h"

#include <atomic>
#include <cstdint>
#include <string>

namespace quill {

class Tokenizer;
class Scheduler;
class Metrics;

struct App {
    ServerParams params;
    const Tokenizer * tok = nullptr;
    Scheduler * sched = nullptr;
    Metrics * metrics = nullptr;
    PromptContext pc;
    std::string model_id;
    int64_t created = 0;                 // start-up time, reported as the model's "created"
    std::atomic<bool> draining{false};   // SIGINT/SIGTERM received: refuse new work
    std::atomic<int> open_responses{0};  // generation requests still being answered (waited for, or streamed)
};

// Registers every route, the error/exception handlers, CORS and the access log.
void http_setup(httplib::Server & svr, App & app);
// POST /v1/chat/completions and /v1/completions (routes_generate.cpp).
void http_add_generate_routes(httplib::Server & svr, App & app);

// Helpers shared by the route files.
std::string http_dump(const nlohmann::json & j);  // invalid UTF-8 replaced, never throws on it
void http_send_json(httplib::Response & res, int status, const nlohmann::json & j);
void http_send_error(httplib::Response & res, const ApiError & e);
// Reads the body through the content reader, at most `limit` bytes (ApiError 413 beyond, 400 when it breaks off).
std::string http_read_body(const httplib::Request & req, const httplib::ContentReader & reader, const httplib::Response & res, size_t limit);
// ApiError 401 unless the request carries "Authorization: Bearer <key>" (when a key is set).
void http_check_auth(const App & app, const httplib::Request & req);
// Counts body bytes written by streaming responses, for the access log.
void http_count_bytes(size_t n);

// Wrap a handler so that ApiError, and any other exception as a 500, becomes an OpenAI-shaped error response.
template <typename F>
httplib::Server::Handler http_guarded(F fn) {
    return [fn](const httplib::Request & req, httplib::Response & res) {
        try {
            fn(req, res);
        } catch (const ApiError & e) {
            http_send_error(res, e);
        } catch (const std::exception & e) {
            http_send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
        }
    };
}

template <typename F>
httplib::Server::HandlerWithContentReader http_guarded_body(F fn) {
    return [fn](const httplib::Request & req, httplib::Response & res, const httplib::ContentReader & reader) {
        try {
            fn(req, res, reader);
        } catch (const ApiError & e) {
            http_send_error(res, e);
        } catch (const std::exception & e) {
            http_send_error(res, ApiError(500, std::string("internal error: ") + e.what()));
        }
    };
}

}  // namespace quill
