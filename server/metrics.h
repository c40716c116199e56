// Server counters, rendered for GET /metrics in the Prometheus text format (version 0.0.4).
//
//   quill_requests_total{route,status}   counter  HTTP requests answered (route is a known path or "other")
//   quill_requests_rejected_total        counter  requests refused with 503 because the queue was full
//   quill_requests_cancelled_total       counter  requests whose client went away before the end
//   quill_prompt_tokens_total            counter  prompt tokens processed
//   quill_generated_tokens_total         counter  tokens sampled
//   quill_decode_steps_total             counter  decode calls (one per scheduler step)
//   quill_decode_batch_tokens_total      counter  tokens through those calls (/ steps = mean batch size)
//   quill_decode_seconds_total           counter  time spent in decode
//   quill_queue_depth                    gauge    choices waiting for a slot
//   quill_slots_busy, quill_slots_total  gauge
//   quill_tokens_per_second              gauge    tokens sampled per second over the last 10 seconds
//   quill_connections_open               gauge    HTTP connections being served
//   quill_connections_rejected_total     counter  connections refused with 503 because --max-connections were open
//   quill_header_timeouts_total          counter  requests whose line and headers did not arrive within --header-timeout
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>

namespace quill {

class Metrics {
public:
    void on_request(const std::string & route, int status);
    void on_generated(uint64_t n);  // also feeds the tokens/s window
    void on_decode(uint64_t batch_tokens, double seconds);

    std::atomic<uint64_t> rejected{0}, cancelled{0}, prompt_tokens{0};
    // Kept by the connection layer (http_conn.cpp).
    std::atomic<int64_t> connections_open{0};
    std::atomic<uint64_t> connections_rejected{0}, header_timeouts{0};

    std::string render(int slots_busy, int slots_total, int queue_depth) const;

private:
    static constexpr int kWindow = 10;  // seconds
    std::atomic<uint64_t> generated_{0}, steps_{0}, batch_tokens_{0}, decode_ns_{0};
    mutable std::mutex mu_;
    std::map<std::pair<std::string, int>, uint64_t> requests_;
    std::array<uint64_t, kWindow> bucket_tokens_{};  // tokens sampled in second bucket_sec_[i]
    std::array<int64_t, kWindow> bucket_sec_{};
};

}  // namespace quill
