// POST /v1/chat/completions and /v1/completions: validate, queue the job, then write its deltas as they come,
// either as Server-Sent Events (stream: true) or as one JSON object at the end.
//
// A non-streamed request is answered when its job is done, so that the status says how it went: 200 with the
// completion, 503 (code shutting_down) when a shutdown cancelled it, 500 for any other failure. While it waits,
// the handler checks every 250 ms whether the client went away (http_client_gone(): the connection was closed or
// reset) and if so cancels the job; the scheduler then frees its slots at the next step.
//
// A stream is written by a chunked content provider, which notices a client that went away by a failed write or
// by sink.is_writable() while it waits, and cancels the job the same way. Its status (200) goes out before
// generation starts, so an error during generation (only a shutdown that cannot wait any longer) arrives in the
// stream: a data: {"error": {..., "code": "shutting_down"}} event, then data: [DONE].
#include "server/app.h"
#include "server/http_conn.h"
#include "server/metrics.h"
#include "server/oai_response.h"
#include "server/scheduler.h"

#include <chrono>
#include <memory>

namespace quill {

using json = nlohmann::json;

namespace {

constexpr std::chrono::milliseconds kPoll(250);  // how often a waiting response checks that its client is still there

struct Choice {
    std::string text;
    std::vector<TokenLogprobs> logprobs;
    const char * finish = nullptr;
};

// Writes a streamed response (Server-Sent Events) through the chunked content provider.
class StreamWriter {
public:
    StreamWriter(App & app, std::shared_ptr<Job> job)
        : app_(app), job_(std::move(job)), meta_(oai_meta(job_->req.chat, app.model_id, job_->req.include_usage)) {
        const GenRequest & r = job_->req;
        n_choices_ = r.n_choices();
        for (const std::vector<int32_t> & p : r.prompts) prompt_tokens_ += (int64_t) p.size();
    }

    // Called by the content provider until it calls sink.done(); false ends the response (client gone).
    bool pump(httplib::DataSink & sink) {
        std::string out;
        if (!started_) {
            started_ = true;
            if (meta_.chat) {
                const std::string empty;
                for (int32_t i = 0; i < n_choices_; ++i) out += sse(oai_chunk(meta_, i, "assistant", &empty, nullptr, nullptr));
                return write(sink, out);
            }
        }
        if (!wait(sink)) return false;
        for (const Delta & d : deltas_) {
            if (!d.text.empty() || !d.logprobs.empty()) {
                json lp = job_->req.logprobs >= 0 ? oai_logprobs(*app_.tok, meta_.chat, d.logprobs) : json(nullptr);
                out += sse(oai_chunk(meta_, d.index, nullptr, &d.text, lp, nullptr));
            }
            if (!d.error.empty()) {
                failed_ = true;
                out += sse(api_error_json(d.error, "server_error", "", d.shutdown ? "shutting_down" : ""));
            } else if (d.finish_reason) {
                out += sse(oai_chunk(meta_, d.index, nullptr, nullptr, nullptr, d.finish_reason));
            }
            if (d.last()) {
                n_done_++;
                completion_tokens_ += d.n_gen;
            }
        }
        const bool done = n_done_ == n_choices_;
        if (done) {
            if (meta_.usage_in_chunks && !failed_) out += sse(oai_usage_chunk(meta_, prompt_tokens_, completion_tokens_));
            out += "data: [DONE]\n\n";
        }
        if (!write(sink, out)) return false;
        if (done) {
            finished_ = true;
            sink.done();
        }
        return true;
    }

    // Called when the response is destroyed, however it ended.
    void release() {
        if (!finished_) {
            app_.metrics->cancelled++;  // counted before the scheduler can see the cancellation and free the slot
            job_->cancel();
        }
        app_.open_responses--;
    }

private:
    bool write(httplib::DataSink & sink, const std::string & s) {
        if (s.empty()) return true;
        http_count_bytes(s.size());
        return sink.write(s.data(), s.size());
    }

    // Waits for deltas; false when the client is gone.
    bool wait(httplib::DataSink & sink) {
        deltas_.clear();
        while (!job_->wait(deltas_, kPoll)) {
            if (!sink.is_writable()) return false;
        }
        return true;
    }

    static std::string sse(const json & j) { return "data: " + http_dump(j) + "\n\n"; }

    App & app_;
    std::shared_ptr<Job> job_;
    ResponseMeta meta_;
    int32_t n_choices_ = 0, n_done_ = 0;
    int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
    bool started_ = false, finished_ = false, failed_ = false;
    std::vector<Delta> deltas_;
};

// Waits for every choice of a non-streamed job and answers with the completion, or with the error's status.
void answer_whole(App & app, Job & job, httplib::Response & res) {
    const GenRequest & r = job.req;
    const ResponseMeta meta = oai_meta(r.chat, app.model_id, false);
    const int32_t n_choices = r.n_choices();
    int64_t prompt_tokens = 0, completion_tokens = 0;
    for (const std::vector<int32_t> & p : r.prompts) prompt_tokens += (int64_t) p.size();
    std::vector<Choice> choices((size_t) n_choices);
    std::string error;
    bool shutdown = false;
    std::vector<Delta> deltas;
    auto checked = std::chrono::steady_clock::now();
    for (int32_t n_done = 0; n_done < n_choices;) {
        deltas.clear();
        const bool got = job.wait(deltas, kPoll);
        // Every kPoll, whether or not tokens keep coming.
        const auto now = std::chrono::steady_clock::now();
        if (now - checked >= kPoll) {
            checked = now;
            if (http_client_gone()) {
                app.metrics->cancelled++;  // counted before the scheduler can see the cancellation and free the slot
                job.cancel();
                // Nobody reads this; the access log and the metrics show 499 ("client closed request", as nginx).
                throw ApiError(499, "the client closed the connection before the response", "", "client_closed_request");
            }
        }
        if (!got) continue;
        for (Delta & d : deltas) {
            Choice & c = choices[(size_t) d.index];
            c.text += d.text;
            for (TokenLogprobs & t : d.logprobs) c.logprobs.push_back(std::move(t));
            if (!d.error.empty()) {
                error = d.error;
                shutdown = shutdown || d.shutdown;
            }
            c.finish = d.finish_reason;
            if (d.last()) {
                n_done++;
                completion_tokens += d.n_gen;
            }
        }
    }
    if (shutdown) throw ApiError(503, error, "", "shutting_down");
    if (!error.empty()) throw ApiError(500, error);
    json out = json::array();
    for (size_t i = 0; i < choices.size(); ++i) {
        json lp = r.logprobs >= 0 ? oai_logprobs(*app.tok, meta.chat, choices[i].logprobs) : json(nullptr);
        out.push_back(oai_choice(meta, (int32_t) i, choices[i].text, lp, choices[i].finish));
    }
    http_send_json(res, 200, oai_response(meta, std::move(out), prompt_tokens, completion_tokens));
}

void handle_generate(App & app, const httplib::Request & req, httplib::Response & res, const httplib::ContentReader & reader, bool chat) {
    // The body is read first, whatever happens next, so that the connection stays usable for the next request.
    const std::string body = http_read_body(req, reader, res, app.params.max_body);
    http_check_auth(app, req);
    if (app.draining) throw ApiError(503, "the server is shutting down", "", "shutting_down");
    const json j = parse_json_body(body);
    auto job = std::make_shared<Job>(chat ? parse_chat_request(j, app.pc) : parse_completion_request(j, app.pc));
    const bool stream = job->req.stream;
    std::shared_ptr<StreamWriter> writer = stream ? std::make_shared<StreamWriter>(app, job) : nullptr;
    switch (app.sched->submit(job)) {
        case Scheduler::Submit::ok: break;
        case Scheduler::Submit::full:
            app.metrics->rejected++;
            throw ApiError(503, "all slots are busy and the queue is full; retry later", "", "server_busy");
        case Scheduler::Submit::closed: throw ApiError(503, "the server is shutting down", "", "shutting_down");
    }
    if (!stream) {
        app.open_responses++;
        struct Open {
            App & app;
            ~Open() { app.open_responses--; }
        } open{app};
        return answer_whole(app, *job, res);
    }
    app.open_responses++;  // from here on the writer's release() runs whatever happens to the response
    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");  // tell nginx not to buffer the event stream
    res.set_chunked_content_provider(
        "text/event-stream", [writer](size_t, httplib::DataSink & sink) { return writer->pump(sink); },
        [writer](bool) { writer->release(); });
}

}  // namespace

void http_add_generate_routes(httplib::Server & svr, App & app) {
    svr.Post("/v1/chat/completions", http_guarded_body([&app](const httplib::Request & req, httplib::Response & res, const httplib::ContentReader & reader) {
                 handle_generate(app, req, res, reader, true);
             }));
    svr.Post("/v1/completions", http_guarded_body([&app](const httplib::Request & req, httplib::Response & res, const httplib::ContentReader & reader) {
                 handle_generate(app, req, res, reader, false);
             }));
}

}  // namespace quill
