// Sampler: greedy, determinism, distribution, truncation, penalties, logprobs.
#include "model/sampling.h"
#include "ggml-lite/common.h"
#include "tests/test_util.h"

#include <cmath>
#include <vector>

using namespace quill;

namespace {

SamplingParams plain(float temp = 1.0f) {
    SamplingParams p;
    p.temp = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 1234;
    return p;
}

std::vector<double> softmax(const std::vector<float> & l) {
    double mx = -INFINITY, s = 0;
    for (float x : l) mx = std::max(mx, (double) x);
    std::vector<double> p(l.size());
    for (size_t i = 0; i < l.size(); ++i) s += p[i] = std::exp(l[i] - mx);
    for (double & x : p) x /= s;
    return p;
}

std::vector<int> histogram(Sampler & s, const std::vector<float> & logits, int n) {
    std::vector<int> h(logits.size(), 0);
    for (int i = 0; i < n; ++i) h[(size_t) s.sample(logits.data())]++;
    return h;
}

}  // namespace

TEST_CASE("sampling: greedy picks the argmax, lowest id on ties") {
    std::vector<float> l = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
    SamplingParams p = plain(0.0f);
    Sampler s(p, (int32_t) l.size());
    CHECK(s.sample(l.data()) == 1);
    CHECK(s.last_sampling_prob() == 1.0f);
    p.temp = -1.0f;
    Sampler s2(p, (int32_t) l.size());
    CHECK(s2.sample(l.data()) == 1);
    // NaN logits are ignored.
    std::vector<float> n = {NAN, 0.5f, NAN};
    Sampler s4(p, 3);
    CHECK(s4.sample(n.data()) == 1);
    Sampler s5(plain(1.0f), 3);
    for (int i = 0; i < 20; ++i) CHECK(s5.sample(n.data()) == 1);
    // All -inf: token 0.
    std::vector<float> inf = {-INFINITY, -INFINITY};
    Sampler s3(plain(1.0f), 2);
    CHECK(s3.sample(inf.data()) == 0);
}

TEST_CASE("sampling: top_k = 1 equals greedy") {
    std::vector<float> l(100);
    for (size_t i = 0; i < l.size(); ++i) l[i] = std::sin((float) i * 0.37f) * 3.0f;
    SamplingParams p = plain(1.5f);
    p.top_k = 1;
    Sampler s(p, 100);
    Sampler g(plain(0.0f), 100);
    for (int i = 0; i < 50; ++i) {
        l[(size_t) (i * 7) % 100] += 0.5f;
        CHECK(s.sample(l.data()) == g.sample(l.data()));
    }
}

TEST_CASE("sampling: same seed gives the same draws, different seeds differ, reset repeats") {
    std::vector<float> l(64);
    for (size_t i = 0; i < l.size(); ++i) l[i] = (float) ((i * 13) % 7) * 0.3f;
    SamplingParams p = plain(1.0f);
    p.seed = 42;
    Sampler a(p, 64), b(p, 64);
    p.seed = 43;
    Sampler c(p, 64);
    std::vector<int32_t> ra, rb, rc;
    for (int i = 0; i < 200; ++i) {
        ra.push_back(a.sample(l.data()));
        rb.push_back(b.sample(l.data()));
        rc.push_back(c.sample(l.data()));
    }
    CHECK(ra == rb);
    CHECK(ra != rc);
    a.reset();
    std::vector<int32_t> ra2;
    for (int i = 0; i < 200; ++i) ra2.push_back(a.sample(l.data()));
    CHECK(ra == ra2);
    CHECK(a.seed() == 42);
    // A random seed is resolved to something concrete.
    p.seed = kSamplerRandomSeed;
    Sampler r(p, 64);
    CHECK(r.seed() != kSamplerRandomSeed);
}

TEST_CASE("sampling: draws at temp 1 follow the softmax") {
    const std::vector<float> l = {1.0f, 2.0f, 0.0f, 2.5f, -1.0f, 1.5f};
    Sampler s(plain(1.0f), (int32_t) l.size());
    const int N = 20000;
    const std::vector<int> h = histogram(s, l, N);
    const std::vector<double> p = softmax(l);
    for (size_t i = 0; i < l.size(); ++i) {
        CAPTURE(i);
        const double sd = std::sqrt(p[i] * (1 - p[i]) / N);
        CHECK(std::fabs((double) h[i] / N - p[i]) < 5 * sd + 1e-3);
    }
    // Temperature 2 flattens: the same as softmax(l / 2).
    Sampler t(plain(2.0f), (int32_t) l.size());
    const std::vector<int> h2 = histogram(t, l, N);
    std::vector<float> half(l);
    for (float & x : half) x /= 2;
    const std::vector<double> p2 = softmax(half);
    for (size_t i = 0; i < l.size(); ++i) {
        const double sd = std::sqrt(p2[i] * (1 - p2[i]) / N);
        CHECK(std::fabs((double) h2[i] / N - p2[i]) < 5 * sd + 1e-3);
    }
}

TEST_CASE("sampling: top_k, top_p and min_p cut what they should") {
    // probabilities ~ 0.5, 0.25, 0.125, 0.0625, ... (logits log2 steps)
    std::vector<float> l(8);
    for (size_t i = 0; i < l.size(); ++i) l[i] = -(float) i * std::log(2.0f);
    const int N = 4000;

    SamplingParams p = plain(1.0f);
    p.top_k = 3;
    Sampler k(p, 8);
    std::vector<int> h = histogram(k, l, N);
    for (size_t i = 3; i < 8; ++i) CHECK(h[i] == 0);
    CHECK(h[0] > 0);
    CHECK(h[1] > 0);
    CHECK(h[2] > 0);

    // top_p 0.7: 0.5 < 0.7 <= 0.75 -> keep ids 0, 1 only.
    p = plain(1.0f);
    p.top_p = 0.7f;
    Sampler tp(p, 8);
    h = histogram(tp, l, N);
    CHECK(h[0] > 0);
    CHECK(h[1] > 0);
    for (size_t i = 2; i < 8; ++i) CHECK(h[i] == 0);
    // Renormalised: id 0 about 2/3 of the time.
    CHECK(std::fabs(h[0] / (double) N - 2.0 / 3.0) < 0.05);

    // top_p small: only the top token.
    p.top_p = 0.1f;
    Sampler tp1(p, 8);
    h = histogram(tp1, l, 500);
    CHECK(h[0] == 500);

    // min_p 0.2: keep p >= 0.2 * 0.5 = 0.1 -> ids 0, 1, 2.
    p = plain(1.0f);
    p.min_p = 0.2f;
    Sampler mp(p, 8);
    h = histogram(mp, l, N);
    CHECK(h[2] > 0);
    for (size_t i = 3; i < 8; ++i) CHECK(h[i] == 0);

    // Truncation happens before temperature: a huge temperature cannot revive cut tokens.
    p.temp = 100.0f;
    Sampler mp2(p, 8);
    h = histogram(mp2, l, N);
    for (size_t i = 3; i < 8; ++i) CHECK(h[i] == 0);
    CHECK(std::abs(h[0] - h[2]) < N / 8);  // nearly uniform over the 3 survivors
}

TEST_CASE("sampling: repetition penalties lower the chosen token") {
    std::vector<float> l = {2.0f, 1.8f, -0.5f, -1.0f};
    SamplingParams p = plain(0.0f);
    p.repeat_penalty = 1.5f;
    Sampler s(p, 4);
    CHECK(s.sample(l.data()) == 0);
    s.accept(0);
    CHECK(s.sample(l.data()) == 1);  // 2.0 / 1.5 = 1.33 < 1.8
    s.accept(1);
    CHECK(s.sample(l.data()) == 0);  // both penalised: 1.33 vs 1.2
    // Negative logits are multiplied: -0.5 * 1.5 = -0.75.
    std::vector<float> neg = {-0.5f, -0.6f};
    Sampler n(p, 2);
    n.accept(0);
    CHECK(n.sample(neg.data()) == 1);

    // Window: only the last repeat_last_n tokens count.
    p.repeat_last_n = 2;
    Sampler w(p, 4);
    w.accept(0);
    w.accept(2);
    w.accept(3);  // 0 left the window
    CHECK(w.sample(l.data()) == 0);

    // repeat_last_n = 0 disables penalties.
    p.repeat_last_n = 0;
    Sampler off(p, 4);
    off.accept(0);
    CHECK(off.sample(l.data()) == 0);

    // Frequency and presence penalties: logit -= count * freq + presence.
    SamplingParams f = plain(0.0f);
    f.frequency_penalty = 0.15f;
    Sampler fs(f, 4);
    fs.accept(0);
    CHECK(fs.sample(l.data()) == 0);  // 2.0 - 0.15 = 1.85 > 1.8
    fs.accept(0);
    CHECK(fs.sample(l.data()) == 1);  // 2.0 - 0.30 = 1.70 < 1.8
    f.frequency_penalty = 0;
    f.presence_penalty = 0.25f;
    Sampler ps(f, 4);
    ps.accept(0);
    CHECK(ps.sample(l.data()) == 1);

    CHECK_THROWS_AS(ps.accept(4), Error);
    CHECK_THROWS_AS(ps.accept(-1), Error);
    SamplingParams bad = plain();
    bad.repeat_penalty = 0;
    CHECK_THROWS_AS(Sampler(bad, 4), Error);
    bad = plain();
    bad.temp = NAN;
    CHECK_THROWS_AS(Sampler(bad, 4), Error);
    CHECK_THROWS_AS(Sampler(plain(), 0), Error);
}

TEST_CASE("sampling: logprobs of the last step") {
    std::vector<float> l = {1.0f, 3.0f, 2.0f, 3.0f, -5.0f};
    SamplingParams p = plain(0.0f);
    Sampler s(p, 5);
    CHECK(s.sample(l.data()) == 1);
    const std::vector<double> sm = softmax(l);
    CHECK(s.last_logprob() == doctest::Approx(std::log(sm[1])).epsilon(1e-5));
    std::vector<TokenLogprob> top;
    s.top_logprobs(3, top);
    REQUIRE(top.size() == 3);
    CHECK(top[0].token == 1);  // tie with 3: lower id first
    CHECK(top[1].token == 3);
    CHECK(top[2].token == 2);
    CHECK(top[2].logprob == doctest::Approx(std::log(sm[2])).epsilon(1e-5));
    s.top_logprobs(100, top);
    CHECK(top.size() == 5);
    s.top_logprobs(0, top);
    CHECK(top.empty());

    // After penalties: the distribution reported is the penalised one.
    p.repeat_penalty = 3.0f;
    Sampler q(p, 5);
    q.accept(1);
    q.accept(3);
    CHECK(q.sample(l.data()) == 2);  // 3/3 = 1 < 2
    std::vector<float> pen = {1.0f, 1.0f, 2.0f, 1.0f, -5.0f};
    CHECK(q.last_logprob() == doctest::Approx(std::log(softmax(pen)[2])).epsilon(1e-5));

    // Sampling probability of a drawn token with temperature.
    Sampler r(plain(1.0f), 5);
    const int32_t t = r.sample(l.data());
    CHECK(r.last_sampling_prob() == doctest::Approx(sm[(size_t) t]).epsilon(1e-5));
}
