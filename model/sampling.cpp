// Sampler: llama.cpp's default chain. Contract in model/sampling.h.
#include "model/sampling.h"

#include "ggml-lite/common.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace quill {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

}  // namespace

Sampler::Sampler(const SamplingParams & params, int32_t n_vocab) : params_(params), n_vocab_(n_vocab) {
    if (n_vocab <= 0) throw_error("sampler: n_vocab must be positive (got %d)", n_vocab);
    const SamplingParams & p = params_;
    if (!std::isfinite(p.temp) || !std::isfinite(p.top_p) || !std::isfinite(p.min_p) ||
        !std::isfinite(p.repeat_penalty) || !std::isfinite(p.presence_penalty) || !std::isfinite(p.frequency_penalty))
        throw_error("sampler: sampling parameters must be finite numbers");
    if (p.repeat_penalty <= 0) throw_error("sampler: repeat_penalty must be > 0 (got %g)", (double) p.repeat_penalty);
    if (p.repeat_last_n < 0) throw_error("sampler: repeat_last_n must be >= 0 (got %d)", p.repeat_last_n);

    pen_logits_.resize((size_t) n_vocab);
    cand_.reserve((size_t) n_vocab);
    scratch_.reserve((size_t) n_vocab);
    probs_.reserve((size_t) n_vocab);
    counts_.assign((size_t) n_vocab, 0);
    mark_.assign((size_t) n_vocab, 0);
    ring_.assign((size_t) p.repeat_last_n, 0);
    reseed();
}

void Sampler::reseed() {
    if (params_.seed == kSamplerRandomSeed) {
        std::random_device rd;
        seed_cur_ = ((uint64_t) rd() << 32) ^ (uint64_t) rd();
    } else {
        seed_cur_ = params_.seed;
    }
    rng_.seed(seed_cur_);
}

void Sampler::reset() {
    std::fill(counts_.begin(), counts_.end(), 0);
    ring_head_ = ring_size_ = 0;
    last_token_ = 0;
    last_sampling_prob_ = 1.0f;
    lse_valid_ = false;
    reseed();
}

void Sampler::accept(int32_t token) {
    if (token < 0 || token >= n_vocab_) throw_error("sampler: token id %d out of range [0, %d)", token, n_vocab_);
    const size_t cap = ring_.size();
    if (cap == 0) return;
    if (ring_size_ == cap) {
        counts_[(size_t) ring_[ring_head_]]--;  // evict the oldest
    } else {
        ring_size_++;
    }
    ring_[ring_head_] = token;
    counts_[(size_t) token]++;
    ring_head_ = (ring_head_ + 1) % cap;
}

double Sampler::uniform01() {
    return (double) (rng_() >> 11) * (1.0 / 9007199254740992.0);  // 53 random bits -> [0, 1)
}

void Sampler::apply_penalties() {
    const SamplingParams & p = params_;
    if (ring_size_ == 0) return;
    if (p.repeat_penalty == 1.0f && p.presence_penalty == 0.0f && p.frequency_penalty == 0.0f) return;
    if (++step_ == 0) {  // wrapped: clear the marks so an old step number cannot match
        std::fill(mark_.begin(), mark_.end(), 0);
        step_ = 1;
    }
    for (size_t i = 0; i < ring_size_; ++i) {
        const int32_t t = ring_[i];
        if (mark_[(size_t) t] == step_) continue;
        mark_[(size_t) t] = step_;
        const int32_t c = counts_[(size_t) t];
        float & l = pen_logits_[(size_t) t];
        if (l <= 0) {
            l *= p.repeat_penalty;
        } else {
            l /= p.repeat_penalty;
        }
        l -= (float) c * p.frequency_penalty + (c > 0 ? 1.0f : 0.0f) * p.presence_penalty;
    }
}

int32_t Sampler::greedy() const {
    int32_t best = 0;
    float   best_l = kNegInf;
    for (int32_t i = 0; i < n_vocab_; ++i) {
        if (pen_logits_[(size_t) i] > best_l) {
            best_l = pen_logits_[(size_t) i];
            best = i;
        }
    }
    return best;
}

int32_t Sampler::sample(const float * logits) {
    GL_ASSERT(logits != nullptr);
    for (int32_t i = 0; i < n_vocab_; ++i) {
        const float l = logits[i];
        pen_logits_[(size_t) i] = std::isnan(l) ? kNegInf : l;
    }
    lse_valid_ = false;
    apply_penalties();

    const SamplingParams & p = params_;
    const int32_t best = greedy();
    if (p.temp <= 0.0f || pen_logits_[(size_t) best] == kNegInf) {
        last_token_ = best;
        last_sampling_prob_ = 1.0f;
        return best;
    }

    // Candidates, ordered by (logit desc, id asc) whenever they are sorted.
    auto better = [](const Cand & a, const Cand & b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
    cand_.clear();
    for (int32_t i = 0; i < n_vocab_; ++i) cand_.push_back(Cand{i, pen_logits_[(size_t) i]});
    bool sorted = false;

    // top_k
    if (p.top_k > 0 && (size_t) p.top_k < cand_.size()) {
        std::nth_element(cand_.begin(), cand_.begin() + p.top_k, cand_.end(), better);
        cand_.resize((size_t) p.top_k);
        std::sort(cand_.begin(), cand_.end(), better);
        sorted = true;
    }

    // top_p
    if (p.top_p < 1.0f) {
        if (!sorted) {
            std::sort(cand_.begin(), cand_.end(), better);
            sorted = true;
        }
        const float mx = cand_[0].logit;
        double sum = 0;
        for (const Cand & c : cand_) sum += std::exp((double) (c.logit - mx));
        double cum = 0;
        size_t keep = cand_.size();
        for (size_t i = 0; i < cand_.size(); ++i) {
            cum += std::exp((double) (cand_[i].logit - mx)) / sum;
            if (cum >= (double) p.top_p) {
                keep = i + 1;
                break;
            }
        }
        cand_.resize(std::max<size_t>(keep, 1));
    }

    // min_p
    if (p.min_p > 0.0f) {
        float mx = kNegInf;
        for (const Cand & c : cand_) mx = std::max(mx, c.logit);
        const float thr = mx + std::log(p.min_p);
        size_t w = 0;
        for (size_t i = 0; i < cand_.size(); ++i)
            if (cand_[i].logit >= thr) cand_[w++] = cand_[i];
        cand_.resize(std::max<size_t>(w, 1));  // the max always passes, as min_p <= 1 keeps it; guard anyway
    }

    // temperature, softmax, draw
    float mx = kNegInf;
    for (const Cand & c : cand_) mx = std::max(mx, c.logit);
    probs_.resize(cand_.size());
    double sum = 0;
    for (size_t i = 0; i < cand_.size(); ++i) {
        const float e = std::exp((cand_[i].logit - mx) / p.temp);
        probs_[i] = e;
        sum += e;
    }
    const double u = uniform01() * sum;
    double cum = 0;
    size_t pick = cand_.size() - 1;
    for (size_t i = 0; i < cand_.size(); ++i) {
        cum += probs_[i];
        if (u < cum) {
            pick = i;
            break;
        }
    }
    // A zero-probability candidate (exp underflow) can only be picked by the fallback; step back to a live one.
    while (pick > 0 && probs_[pick] == 0.0f) --pick;
    last_token_ = cand_[pick].id;
    last_sampling_prob_ = (float) (probs_[pick] / sum);
    return last_token_;
}

float Sampler::log_sum_exp() const {
    if (!lse_valid_) {
        float mx = kNegInf;
        for (float l : pen_logits_) mx = std::max(mx, l);
        double s = 0;
        if (mx != kNegInf)
            for (float l : pen_logits_) s += std::exp((double) (l - mx));
        lse_ = mx == kNegInf ? kNegInf : mx + (float) std::log(s);
        lse_valid_ = true;
    }
    return lse_;
}

float Sampler::last_logprob() const {
    const float lse = log_sum_exp();
    if (lse == kNegInf) return 0.0f;  // degenerate all -inf row: the forced token 0 is "certain"
    return pen_logits_[(size_t) last_token_] - lse;
}

void Sampler::top_logprobs(int32_t n, std::vector<TokenLogprob> & out) const {
    out.clear();
    if (n <= 0) return;
    const size_t k = std::min<size_t>((size_t) n, (size_t) n_vocab_);
    const float  lse = log_sum_exp();
    scratch_.clear();
    for (int32_t i = 0; i < n_vocab_; ++i) scratch_.push_back(Cand{i, pen_logits_[(size_t) i]});
    auto better = [](const Cand & a, const Cand & b) { return a.logit > b.logit || (a.logit == b.logit && a.id < b.id); };
    std::partial_sort(scratch_.begin(), scratch_.begin() + (ptrdiff_t) k, scratch_.end(), better);
    out.resize(k);
    for (size_t i = 0; i < k; ++i) {
        out[i].token = scratch_[i].id;
        out[i].logprob = lse == kNegInf ? kNegInf : scratch_[i].logit - lse;
    }
}

}  // namespace quill
