// POST /v1/chat/completions and /v1/completions: validate, queue the job, then write its deltas as they come,
// either as Server-Sent Events (stream: true) or as one JSON object at the end.
//
// Both kinds of response are written by a chunked content provider, so that the HTTP thread can notice a client
// that went away (a failed write, or sink.is_writable() while waiting) and cancel the job: the scheduler then
// frees its slots at the next step. The status line (200) is sent before generation starts, so an error that
// happens during generation (only a shutdown that cannot wait any longer) arrives in the body: as an
// {"error": ...} event in a stream, or as an error object instead of the completion.
#include "server/app.h"
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

class ResponseWriter {
public:
    ResponseWriter(App & app, std::shared_ptr<Job> job)
        : app_(app), job_(std::move(job)), meta_(oai_meta(job_->req.chat, app.model_id, job_->req.stream && job_->req.include_usage)) {
        const GenRequest & r = job_->req;
        n_choices_ = r.n_choices();
        for (const std::vector<int32_t> & p : r.prompts) prompt_tokens_ += (int64_t) p.size();
        if (!r.stream) choices_.resize((size_t) n_choices_);
    }

    // Called by the content provider until it calls sink.done(); false ends the response (client gone).
    bool pump(httplib::DataSink & sink) { return job_->req.stream ? pump_stream(sink) : pump_whole(sink); }

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

    bool pump_stream(httplib::DataSink & sink) {
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
                out += sse(api_error_json(d.error, "server_error", "", ""));
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

    bool pump_whole(httplib::DataSink & sink) {
        std::string error;
        while (n_done_ < n_choices_) {
            if (!wait(sink)) return false;
            for (Delta & d : deltas_) {
                Choice & c = choices_[(size_t) d.index];
                c.text += d.text;
                for (TokenLogprobs & t : d.logprobs) c.logprobs.push_back(std::move(t));
                if (!d.error.empty()) error = d.error;
                c.finish = d.finish_reason;
                if (d.last()) {
                    n_done_++;
                    completion_tokens_ += d.n_gen;
                }
            }
        }
        json body;
        if (!error.empty()) {
            body = api_error_json(error, "server_error", "", "");
        } else {
            json choices = json::array();
            for (size_t i = 0; i < choices_.size(); ++i) {
                json lp = job_->req.logprobs >= 0 ? oai_logprobs(*app_.tok, meta_.chat, choices_[i].logprobs) : json(nullptr);
                choices.push_back(oai_choice(meta_, (int32_t) i, choices_[i].text, lp, choices_[i].finish));
            }
            body = oai_response(meta_, std::move(choices), prompt_tokens_, completion_tokens_);
        }
        if (!write(sink, http_dump(body))) return false;
        finished_ = true;
        sink.done();
        return true;
    }

    App & app_;
    std::shared_ptr<Job> job_;
    ResponseMeta meta_;
    int32_t n_choices_ = 0, n_done_ = 0;
    int64_t prompt_tokens_ = 0, completion_tokens_ = 0;
    bool started_ = false, finished_ = false, failed_ = false;
    std::vector<Delta> deltas_;
    std::vector<Choice> choices_;  // non-streamed responses
};

void handle_generate(App & app, const httplib::Request & req, httplib::Response & res, const httplib::ContentReader & reader, bool chat) {
    // The body is read first, whatever happens next, so that the connection stays usable for the next request.
    const std::string body = http_read_body(req, reader, res, app.params.max_body);
    http_check_auth(app, req);
    if (app.draining) throw ApiError(503, "the server is shutting down", "", "shutting_down");
    const json j = parse_json_body(body);
    auto job = std::make_shared<Job>(chat ? parse_chat_request(j, app.pc) : parse_completion_request(j, app.pc));
    auto writer = std::make_shared<ResponseWriter>(app, job);
    switch (app.sched->submit(job)) {
        case Scheduler::Submit::ok: break;
        case Scheduler::Submit::full:
            app.metrics->rejected++;
            throw ApiError(503, "all slots are busy and the queue is full; retry later", "", "server_busy");
        case Scheduler::Submit::closed: throw ApiError(503, "the server is shutting down", "", "shutting_down");
    }
    app.open_responses++;  // from here on the writer's release() runs whatever happens to the response
    const bool stream = job->req.stream;
    if (stream) {
        res.set_header("Cache-Control", "no-cache");
        res.set_header("X-Accel-Buffering", "no");  // tell nginx not to buffer the event stream
    }
    res.set_chunked_content_provider(
        stream ? "text/event-stream" : "application/json", [writer](size_t, httplib::DataSink & sink) { return writer->pump(sink); },
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
