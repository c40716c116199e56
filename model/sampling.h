// Token sampling: llama.cpp's default sampler chain, one Sampler per sequence (the server runs one per slot).
//
// sample(logits) runs, in this order (llama.cpp common_sampler's default order):
//   1. penalties over the last repeat_last_n accepted tokens (see accept()): for every distinct token t in that
//      window with count c: logit = logit <= 0 ? logit * repeat_penalty : logit / repeat_penalty, then
//      logit -= c * frequency_penalty + presence_penalty   (llama_sampler_penalties)
//   2. top_k: keep the k largest logits (k <= 0 or k >= n_vocab: keep all)
//   3. top_p: keep the smallest prefix of the sorted candidates whose softmax mass reaches top_p (>= 1: off)
//   4. min_p: keep candidates with p >= min_p * p_max, i.e. logit >= logit_max + log(min_p) (<= 0: off)
//   5. temperature: logits / temp
//   6. softmax over what is left, then one draw from the Sampler's own PRNG (std::mt19937_64 seeded with `seed`;
//      the uniform is (rng() >> 11) * 2^-53, so the same seed gives the same tokens on every platform).
// temp <= 0 is greedy: penalties, then the argmax (lowest id on ties); steps 2-6 are skipped and no random number
// is drawn. Ties elsewhere are also broken by the lower id, so results never depend on sort stability.
// Logits that are NaN count as -inf. If every logit is -inf the result is token 0.
//
// No allocation per token: candidate buffers, penalty counts and the history ring are sized in the constructor.
// A Sampler is not thread-safe; use one per sequence.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace quill {

struct SamplingParams {
    float    temp = 0.8f;
    int32_t  top_k = 40;
    float    top_p = 0.95f;
    float    min_p = 0.05f;
    float    repeat_penalty = 1.0f;     // 1 = off; must be > 0
    int32_t  repeat_last_n = 64;        // window of accepted tokens the penalties look at; 0 = off; must be >= 0
                                        // (callers resolve llama.cpp's -1 "= context size" themselves)
    float    presence_penalty = 0.0f;
    float    frequency_penalty = 0.0f;
    uint64_t seed = 0xFFFFFFFF;         // 0xFFFFFFFF (llama.cpp's LLAMA_DEFAULT_SEED) = pick a random seed
};

constexpr uint64_t kSamplerRandomSeed = 0xFFFFFFFF;

// The accepted range of each sampling parameter, the same for `quill run` and the server's requests.
struct SamplingRange {
    double lo, hi;
};
constexpr SamplingRange kTempRange = {0.0, 2.0};
constexpr SamplingRange kTopPRange = {0.0, 1.0};
constexpr SamplingRange kMinPRange = {0.0, 1.0};
constexpr SamplingRange kRepeatPenaltyRange = {1e-3, 100.0};
constexpr SamplingRange kPresencePenaltyRange = {-2.0, 2.0};

struct TokenLogprob {
    int32_t token = 0;
    float   logprob = 0.0f;
};

class Sampler {
public:
    // Throws quill::Error on n_vocab <= 0, non-finite parameters, repeat_penalty <= 0 or repeat_last_n < 0.
    Sampler(const SamplingParams & params, int32_t n_vocab);

    // Picks the next token from n_vocab logits. Does not record it: call accept() with the token actually used.
    int32_t sample(const float * logits);
    // Records a token in the penalty window (prompt tokens may be accepted too). Throws quill::Error when the id is
    // outside [0, n_vocab).
    void accept(int32_t token);
    // Forgets the penalty window and restarts the PRNG from the seed (a random seed is drawn again when the
    // params asked for a random one), so a reset Sampler with a fixed seed repeats its draws.
    void reset();

    const SamplingParams & params() const { return params_; }
    int32_t  n_vocab() const { return n_vocab_; }
    uint64_t seed() const { return seed_cur_; }  // the seed in use (the drawn one when the params asked for random)

    // --- Information about the last sample() call (for the server's logprobs). Undefined before the first call.
    int32_t last_token() const { return last_token_; }
    // log p(last token) under the full distribution after penalties, before top-k/top-p/min-p and temperature
    // (the model's own distribution as the user's penalties changed it).
    float last_logprob() const;
    // Probability with which the last token was actually drawn (after truncation and temperature; 1 when greedy).
    float last_sampling_prob() const { return last_sampling_prob_; }
    // The n most likely tokens of that same full distribution, most likely first (lower id first on ties),
    // written to `out` (resized to min(n, n_vocab); n <= 0 gives an empty list). Computed on demand, O(n_vocab).
    void top_logprobs(int32_t n, std::vector<TokenLogprob> & out) const;

private:
    struct Cand {
        int32_t id;
        float   logit;
    };

    void    reseed();
    void    apply_penalties();
    int32_t greedy() const;
    float   log_sum_exp() const;  // over pen_logits_, computed lazily and cached per step
    double  uniform01();

    SamplingParams params_;
    int32_t        n_vocab_;
    uint64_t       seed_cur_ = 0;
    std::mt19937_64 rng_;

    std::vector<float>    pen_logits_;  // logits after penalties, by token id
    std::vector<Cand>     cand_;        // working candidate list (capacity n_vocab)
    mutable std::vector<Cand> scratch_; // for top_logprobs
    std::vector<float>    probs_;       // softmax of the final candidates
    std::vector<int32_t>  counts_;      // occurrences of each id in the penalty window
    std::vector<uint32_t> mark_;        // per-step "penalty already applied" marks
    uint32_t              step_ = 0;
    std::vector<int32_t>  ring_;        // the penalty window
    size_t                ring_head_ = 0, ring_size_ = 0;

    int32_t       last_token_ = 0;
    float         last_sampling_prob_ = 1.0f;
    mutable bool  lse_valid_ = false;
    mutable float lse_ = 0.0f;
};

}  // namespace quill
