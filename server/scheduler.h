// The slot scheduler: continuous batching over one Context.
//
// One thread owns the Context. A request (Job) becomes one task per choice; a task runs in a slot (one KV
// sequence of the Context, one Sampler). Every step the scheduler builds a single Batch holding
//   (a) one token from every slot that is generating, and
//   (b) the next chunk of prompt tokens of slots still reading their prompt, within n_batch,
// calls decode once, samples each slot that got logits with that slot's own Sampler, and hands the text to the
// Job, whose HTTP thread is waiting on it. Tasks waiting for a slot are admitted between steps; there are at most
// `queue` of them beyond the slots, and submit() refuses a job that does not fit. A Job whose client went away is
// marked cancelled by its HTTP thread and its slots are freed at the next step. When there is no work the thread
// sleeps on a condition variable.
#pragma once

#include "model/llama.h"
#include "model/sampling.h"
#include "server/oai_request.h"
#include "server/text_stream.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace quill {

class Tokenizer;
class Metrics;

struct TokenLogprobs {
    int32_t token = 0;
    float logprob = 0.0f;
    size_t offset = 0;  // byte offset of the token's text in the choice's text
    std::vector<TokenLogprob> top;
};

// A piece of one choice's output.
struct Delta {
    int32_t index = 0;                    // the choice
    std::string text;                     // whole UTF-8 characters; may be empty
    std::vector<TokenLogprobs> logprobs;  // tokens whose text starts in this delta (when logprobs were asked for)
    const char * finish_reason = nullptr; // "stop" or "length" on the choice's last delta
    std::string error;                    // on the last delta instead, when the choice failed
    bool shutdown = false;                // ... because the server is shutting down (cancel_all or stop)
    int32_t n_prompt = 0, n_gen = 0;      // on the last delta
    bool last() const { return finish_reason || !error.empty(); }
};

// One request, shared by the HTTP thread that serves it and the scheduler thread.
class Job {
public:
    explicit Job(GenRequest r) : req(std::move(r)) {}
    const GenRequest req;

    // HTTP side.
    void cancel() { cancelled_.store(true); }
    bool cancelled() const { return cancelled_.load(); }
    // Waits until deltas are there (or the timeout passes) and moves them into out. False on timeout.
    bool wait(std::vector<Delta> & out, std::chrono::milliseconds timeout);

    // Scheduler side.
    void push(Delta && d);

private:
    std::atomic<bool> cancelled_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::vector<Delta> q_;
};

class Scheduler {
public:
    enum class Submit { ok, full, closed };

    // ctx has n_slots sequences; tok and metrics must outlive the scheduler.
    Scheduler(Context & ctx, const Tokenizer & tok, Metrics & metrics, int32_t queue_max);
    ~Scheduler();

    void start();
    Submit submit(const std::shared_ptr<Job> & job);  // ok, or full (beyond slots + queue), or closed (draining)

    // Shutdown: drain() refuses new jobs; idle() tells when every accepted job is done; cancel_all() ends them at
    // the next step; stop() ends the thread.
    void drain();
    bool idle();
    void cancel_all();
    void stop();

    int32_t n_slots() const { return (int32_t) slots_.size(); }
    int32_t capacity() const { return n_slots() + queue_max_; }
    int32_t slots_busy();
    int32_t queue_depth();

private:
    struct Task {
        std::shared_ptr<Job> job;
        int32_t index = 0;  // choice index in the job
        const std::vector<int32_t> * prompt = nullptr;
    };
    struct Slot {
        int32_t id = 0;
        bool busy = false;
        Task task;
        std::optional<Sampler> sampler;
        TextStream text;
        int64_t max_tokens = 0;
        int32_t n_past = 0;       // positions in the KV cache
        int32_t n_gen = 0;        // tokens sampled
        int32_t next_token = -1;  // sampled, to be fed at the next step; -1 while reading the prompt
        int32_t logits_row = -1;  // row of this step's logits, -1 when none
        std::vector<TokenLogprobs> pending;  // sampled tokens whose text has not been sent yet
    };

    void loop();
    std::vector<size_t> admit_locked();
    void start_task(Slot & s);
    bool build_batch();
    void sample_slots();
    void finish(Slot & s, const char * reason, const std::string & error = "", bool shutdown = false);
    void take_text(Slot & s, bool final, Delta & d);
    void fail_all(const std::string & error, bool shutdown = false);

    Context & ctx_;
    const Tokenizer & tok_;
    Metrics & metrics_;
    const int32_t queue_max_;
    std::vector<Slot> slots_;

    std::mutex mu_;  // guards queue_, n_busy_, draining_, stop_, cancel_all_
    std::condition_variable cv_;
    std::deque<Task> queue_;
    int32_t n_busy_ = 0;
    bool draining_ = false, stop_ = false, cancel_all_ = false;

    std::thread thread_;
    Batch batch_;
    size_t prefill_cursor_ = 0;  // the slot whose prompt goes first in the next step (round robin)
};

}  // namespace quill
