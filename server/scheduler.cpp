#include "server/scheduler.h"

#include "ggml-lite/common.h"
#include "model/tokenizer.h"
#include "server/metrics.h"

#include <algorithm>
#include <omp.h>

namespace quill {

using Clock = std::chrono::steady_clock;

static const char * kShuttingDown = "the server is shutting down";

bool Job::wait(std::vector<Delta> & out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, timeout, [&] { return !q_.empty(); })) return false;
    for (Delta & d : q_) out.push_back(std::move(d));
    q_.clear();
    return true;
}

void Job::push(Delta && d) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        q_.push_back(std::move(d));
    }
    cv_.notify_one();
}

Scheduler::Scheduler(Context & ctx, const Tokenizer & tok, Metrics & metrics, int32_t queue_max)
    : ctx_(ctx), tok_(tok), metrics_(metrics), queue_max_(queue_max) {
    const int32_t n = ctx.kv().n_seq;
    GL_ASSERT(n >= 1 && ctx.n_batch() >= n);
    slots_.resize((size_t) n);
    for (int32_t i = 0; i < n; ++i) slots_[(size_t) i].id = i;
    batch_.token.reserve((size_t) ctx.n_batch());
    batch_.pos.reserve((size_t) ctx.n_batch());
    batch_.seq.reserve((size_t) ctx.n_batch());
    batch_.want_logits.reserve((size_t) ctx.n_batch());
}

Scheduler::~Scheduler() { stop(); }

void Scheduler::start() {
    GL_ASSERT(!thread_.joinable());
    // The thread count set by -t is a per-thread OpenMP setting: hand it on to the thread that runs decode.
    const int n_threads = omp_get_max_threads();
    thread_ = std::thread([this, n_threads] {
        omp_set_num_threads(n_threads);
        loop();
    });
}

Scheduler::Submit Scheduler::submit(const std::shared_ptr<Job> & job) {
    const GenRequest & r = job->req;
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (draining_ || stop_) return Submit::closed;
        if (n_busy_ + (int32_t) queue_.size() + r.n_choices() > capacity()) return Submit::full;
        for (size_t p = 0; p < r.prompts.size(); ++p) {
            for (int32_t i = 0; i < r.n; ++i) queue_.push_back(Task{job, (int32_t) p * r.n + i, &r.prompts[p]});
        }
    }
    cv_.notify_one();
    return Submit::ok;
}

void Scheduler::drain() {
    std::lock_guard<std::mutex> lk(mu_);
    draining_ = true;
}

bool Scheduler::idle() {
    std::lock_guard<std::mutex> lk(mu_);
    return queue_.empty() && n_busy_ == 0;
}

void Scheduler::cancel_all() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        cancel_all_ = true;
    }
    cv_.notify_one();
}

void Scheduler::stop() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

int32_t Scheduler::slots_busy() {
    std::lock_guard<std::mutex> lk(mu_);
    return n_busy_;
}

int32_t Scheduler::queue_depth() {
    std::lock_guard<std::mutex> lk(mu_);
    return (int32_t) queue_.size();
}

// Under mu_: drops cancelled tasks from the queue and moves waiting tasks into free slots. Returns the slots that
// got a task; start_task() sets them up outside the lock.
std::vector<size_t> Scheduler::admit_locked() {
    std::vector<size_t> admitted;
    for (auto it = queue_.begin(); it != queue_.end();) {
        if (cancel_all_ || it->job->cancelled()) {
            Delta d;
            d.index = it->index;
            d.error = cancel_all_ ? kShuttingDown : "cancelled";
            d.shutdown = cancel_all_;
            it->job->push(std::move(d));
            it = queue_.erase(it);
        } else {
            ++it;
        }
    }
    for (Slot & s : slots_) {
        if (queue_.empty()) break;
        if (s.busy) continue;
        s.busy = true;
        s.task = std::move(queue_.front());
        queue_.pop_front();
        ++n_busy_;
        admitted.push_back((size_t) s.id);
    }
    return admitted;
}

void Scheduler::start_task(Slot & s) {
    const GenRequest & r = s.task.job->req;
    SamplingParams sp = r.sampling;
    if (!r.random_seed) sp.seed = r.sampling.seed + (uint64_t) s.task.index;
    s.sampler.emplace(sp, tok_.n_vocab());
    const std::vector<int32_t> & prompt = *s.task.prompt;
    // The penalties look at the prompt too ("the text so far"); only the last repeat_last_n tokens matter.
    const size_t from = prompt.size() > (size_t) sp.repeat_last_n ? prompt.size() - (size_t) sp.repeat_last_n : 0;
    for (size_t i = from; i < prompt.size(); ++i) s.sampler->accept(prompt[i]);
    s.text.reset(&r.stop);
    s.max_tokens = r.max_tokens > 0 ? r.max_tokens : (int64_t) ctx_.n_ctx() - (int64_t) prompt.size();
    s.n_past = 0;
    s.n_gen = 0;
    s.next_token = -1;
    s.logits_row = -1;
    s.pending.clear();
    ctx_.clear_seq(s.id);  // the slot's positions restart at 0
    metrics_.prompt_tokens += prompt.size();
}

void Scheduler::loop() {
    for (;;) {
        std::vector<size_t> admitted;
        bool cancel_all;
        {
            std::unique_lock<std::mutex> lk(mu_);
            cv_.wait(lk, [&] { return stop_ || !queue_.empty() || n_busy_ > 0; });
            if (stop_) break;
            admitted = admit_locked();
            cancel_all = cancel_all_;
        }
        for (size_t i : admitted) start_task(slots_[i]);
        for (Slot & s : slots_) {
            if (s.busy && (cancel_all || s.task.job->cancelled())) finish(s, nullptr, cancel_all ? kShuttingDown : "cancelled", cancel_all);
        }
        if (!build_batch()) continue;
        const auto t0 = Clock::now();
        try {
            ctx_.decode(batch_);
        } catch (const std::exception & e) {
            fail_all(std::string("decode failed: ") + e.what());
            continue;
        }
        metrics_.on_decode(batch_.size(), std::chrono::duration<double>(Clock::now() - t0).count());
        sample_slots();
    }
    fail_all(kShuttingDown, true);
    std::lock_guard<std::mutex> lk(mu_);
    for (Task & t : queue_) {
        Delta d;
        d.index = t.index;
        d.error = kShuttingDown;
        d.shutdown = true;
        t.job->push(std::move(d));
    }
    queue_.clear();
}

// One token of every generating slot first (their latency matters most), then prompt chunks in the room left.
bool Scheduler::build_batch() {
    batch_.clear();
    int32_t rows = 0;
    for (Slot & s : slots_) {
        s.logits_row = -1;
        if (!s.busy || s.next_token < 0) continue;
        batch_.add(s.next_token, s.n_past, s.id, true);
        s.logits_row = rows++;
        s.n_past++;
    }
    size_t budget = (size_t) ctx_.n_batch() - batch_.size();
    const size_t n = slots_.size();
    for (size_t k = 0; k < n && budget > 0; ++k) {
        Slot & s = slots_[(prefill_cursor_ + k) % n];
        if (!s.busy || s.next_token >= 0) continue;
        const std::vector<int32_t> & p = *s.task.prompt;
        const size_t take = std::min(budget, p.size() - (size_t) s.n_past);
        for (size_t j = 0; j < take; ++j) {
            const int32_t pos = s.n_past + (int32_t) j;
            const bool last = (size_t) pos + 1 == p.size();
            batch_.add(p[(size_t) pos], pos, s.id, last);
            if (last) s.logits_row = rows++;
        }
        s.n_past += (int32_t) take;
        budget -= take;
    }
    prefill_cursor_ = (prefill_cursor_ + 1) % n;
    return batch_.size() > 0;
}

void Scheduler::sample_slots() {
    uint64_t n_sampled = 0;
    for (Slot & s : slots_) {
        if (!s.busy || s.logits_row < 0) continue;
        Sampler & smp = *s.sampler;
        const int32_t id = smp.sample(ctx_.logits((size_t) s.logits_row));
        smp.accept(id);
        s.n_gen++;
        n_sampled++;
        const bool eog = tok_.is_eog(id);
        const int32_t n_top = s.task.job->req.logprobs;
        if (n_top >= 0 && !eog) {
            s.pending.push_back(TokenLogprobs{id, smp.last_logprob(), s.text.size(), {}});
            if (n_top > 0) smp.top_logprobs(n_top, s.pending.back().top);
        }
        const char * reason = nullptr;
        if (eog || s.text.append(tok_.token_to_piece(id))) reason = "stop";
        else if (s.n_gen >= s.max_tokens || s.n_past >= ctx_.n_ctx()) reason = "length";
        if (reason) {
            finish(s, reason);
            continue;
        }
        s.next_token = id;
        Delta d;
        take_text(s, false, d);
        if (!d.text.empty() || !d.logprobs.empty()) s.task.job->push(std::move(d));
    }
    if (n_sampled) metrics_.on_generated(n_sampled);
}

// Fills d with the text that can be sent now and the logprobs of the tokens that text starts.
void Scheduler::take_text(Slot & s, bool final, Delta & d) {
    d.index = s.task.index;
    d.text = s.text.take(final);
    if (s.pending.empty()) return;
    // Tokens are sent with the delta that holds their first byte; at the end, those past a stop string are dropped.
    const size_t limit = final ? s.text.size() + (s.text.stopped() ? 0 : 1) : s.text.sent();
    size_t k = 0;
    while (k < s.pending.size() && s.pending[k].offset < limit) ++k;
    d.logprobs.assign(std::make_move_iterator(s.pending.begin()), std::make_move_iterator(s.pending.begin() + (ptrdiff_t) k));
    s.pending.erase(s.pending.begin(), s.pending.begin() + (ptrdiff_t) k);
}

void Scheduler::finish(Slot & s, const char * reason, const std::string & error, bool shutdown) {
    Delta d;
    if (error.empty()) take_text(s, true, d);
    d.index = s.task.index;
    d.finish_reason = error.empty() ? reason : nullptr;
    d.error = error;
    d.shutdown = shutdown && !error.empty();
    d.n_prompt = (int32_t) s.task.prompt->size();
    d.n_gen = s.n_gen;
    // Free the slot before the client can see the end, so that its next request finds the slot free.
    std::shared_ptr<Job> job = std::move(s.task.job);
    s.task = Task{};
    s.busy = false;
    s.next_token = -1;
    s.logits_row = -1;
    s.pending.clear();
    {
        std::lock_guard<std::mutex> lk(mu_);
        --n_busy_;
    }
    job->push(std::move(d));
}

void Scheduler::fail_all(const std::string & error, bool shutdown) {
    for (Slot & s : slots_) {
        if (s.busy) finish(s, nullptr, error, shutdown);
    }
}

}  // namespace quill
