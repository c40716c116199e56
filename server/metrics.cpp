#include "server/metrics.h"

#include "ggml-lite/common.h"

#include <chrono>

namespace quill {

namespace {

int64_t now_sec() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void metric_head(std::string & out, const char * name, const char * type, const char * help) {
    out += strfmt("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

}  // namespace

void Metrics::on_request(const std::string & route, int status) {
    std::lock_guard<std::mutex> lk(mu_);
    requests_[{route, status}]++;
}

void Metrics::on_generated(uint64_t n) {
    generated_ += n;
    const int64_t s = now_sec();
    std::lock_guard<std::mutex> lk(mu_);
    const size_t i = (size_t) (s % kWindow);
    if (bucket_sec_[i] != s) bucket_sec_[i] = s, bucket_tokens_[i] = 0;
    bucket_tokens_[i] += n;
}

void Metrics::on_decode(uint64_t batch_tokens, double seconds) {
    steps_++;
    batch_tokens_ += batch_tokens;
    decode_ns_ += (uint64_t) (seconds * 1e9);
}

std::string Metrics::render(int slots_busy, int slots_total, int queue_depth) const {
    std::string out;
    metric_head(out, "quill_requests_total", "counter", "HTTP requests answered, by route and status.");
    uint64_t window_tokens = 0;
    {
        std::lock_guard<std::mutex> lk(mu_);
        for (const auto & kv : requests_)
            out += strfmt("quill_requests_total{route=\"%s\",status=\"%d\"} %llu\n", kv.first.first.c_str(), kv.first.second,
                          (unsigned long long) kv.second);
        // The last kWindow complete seconds.
        const int64_t s = now_sec();
        for (int i = 0; i < kWindow; ++i) {
            if (bucket_sec_[(size_t) i] < s && bucket_sec_[(size_t) i] >= s - kWindow) window_tokens += bucket_tokens_[(size_t) i];
        }
    }
    auto counter = [&](const char * name, const char * help, unsigned long long v) {
        metric_head(out, name, "counter", help);
        out += strfmt("%s %llu\n", name, v);
    };
    auto gauge = [&](const char * name, const char * help, double v) {
        metric_head(out, name, "gauge", help);
        out += strfmt("%s %g\n", name, v);
    };
    counter("quill_requests_rejected_total", "Requests refused with 503 because the queue was full.", rejected.load());
    counter("quill_requests_cancelled_total", "Requests whose client disconnected before the end.", cancelled.load());
    counter("quill_prompt_tokens_total", "Prompt tokens processed.", prompt_tokens.load());
    counter("quill_generated_tokens_total", "Tokens generated.", generated_.load());
    counter("quill_decode_steps_total", "Batched decode steps.", steps_.load());
    counter("quill_decode_batch_tokens_total", "Tokens run through the model in those steps.", batch_tokens_.load());
    metric_head(out, "quill_decode_seconds_total", "counter", "Seconds spent in decode.");
    out += strfmt("quill_decode_seconds_total %.6f\n", (double) decode_ns_.load() * 1e-9);
    gauge("quill_queue_depth", "Choices waiting for a free slot.", queue_depth);
    gauge("quill_slots_busy", "Slots generating or reading a prompt.", slots_busy);
    gauge("quill_slots_total", "Slots (--parallel).", slots_total);
    gauge("quill_tokens_per_second", "Tokens generated per second over the last 10 seconds.", (double) window_tokens / kWindow);
    gauge("quill_connections_open", "HTTP connections being served.", (double) connections_open.load());
    counter("quill_connections_rejected_total", "Connections refused with 503 because --max-connections were open.", connections_rejected.load());
    counter("quill_header_timeouts_total", "Requests whose request line and headers did not arrive within --header-timeout.", header_timeouts.load());
    return out;
}

}  // namespace quill
