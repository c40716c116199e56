// GPTVQ (quantize/gptvq.h): the weighted EM, the layer layout and decoding, quality against RTN / GPTQ / k-means
// without error feedback on a correlated Hessian, the codebook fine-tune, parameter checks and thread-count
// determinism.
#include "tests/test_util.h"
#include "tests/test_quant_util.h"

#include "ggml-lite/common.h"
#include "ggml-lite/types.h"
#include "quantize/gptq.h"
#include "quantize/gptvq.h"
#include "quantize/rtn.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <omp.h>
#include <random>
#include <vector>

using namespace quill;
using namespace quill_test;

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, scale);
    std::vector<float> x(n);
    for (float & v : x) v = g(rng);
    return x;
}

// Every structural property of a quantized layer, and W == out.value() bit for bit.
void check_layer(const VqLayer & q, const std::vector<float> & W, int64_t rows, int64_t cols, const GptvqParams & p) {
    REQUIRE(q.rows == rows);
    REQUIRE(q.cols == cols);
    REQUIRE(q.dim == p.dim);
    REQUIRE(q.bits == p.bits);
    REQUIRE(q.rows_per_group == p.rows_per_group);
    REQUIRE(q.cols_per_group == p.cols_per_group);
    const int k = q.k();
    REQUIRE(k == (1 << (p.bits * p.dim)));
    REQUIRE(q.codebooks.size() == (size_t) (q.n_groups() * k * q.dim));
    REQUIRE(q.scales.size() == (size_t) q.n_groups());
    REQUIRE(q.idx.size() == (size_t) (rows * (cols / q.dim)));
    for (uint8_t m : q.idx) REQUIRE((int) m < k);
    for (uint16_t s : q.scales) {
        const float v = gl_fp16_to_fp32(s);
        REQUIRE(std::isfinite(v));
        REQUIRE(v >= 0.0f);
    }
    size_t mismatches = 0;
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
            const float v = q.value(r, c);
            mismatches += std::memcmp(&v, &W[(size_t) (r * cols + c)], sizeof v) != 0;
        }
    CHECK(mismatches == 0);
}

// Plain per-group k-means on the original weights (no GPTQ error feedback, unit weights, float centroids): each
// group's vectors fitted with the same seeding + EM, then every vector replaced by its nearest centroid.
std::vector<float> kmeans_no_feedback(const std::vector<float> & W, int64_t rows, int64_t cols, int d, int bits, int64_t R, int64_t Cg, int iters) {
    const int k = 1 << (bits * d);
    std::vector<float> Q = W;
    for (int64_t r0 = 0; r0 < rows; r0 += R) {
        for (int64_t c0 = 0; c0 < cols; c0 += Cg) {
            const int64_t r1 = std::min(rows, r0 + R), c1 = std::min(cols, c0 + Cg);
            std::vector<float> X;
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c) X.push_back(W[(size_t) (r * cols + c)]);
            const int64_t n = (int64_t) X.size() / d;
            const std::vector<float> w(X.size(), 1.0f);
            std::vector<float> cent;
            gptvq_em_trace(X.data(), w.data(), n, d, k, iters, &cent);
            for (int64_t i = 0; i < n; ++i) {
                int bm = 0;
                double bd = 1e300;
                for (int m = 0; m < k; ++m) {
                    double s = 0;
                    for (int t = 0; t < d; ++t) s += ((double) X[(size_t) (i * d + t)] - cent[(size_t) (m * d + t)]) * ((double) X[(size_t) (i * d + t)] - cent[(size_t) (m * d + t)]);
                    if (s < bd) {
                        bd = s;
                        bm = m;
                    }
                }
                const int64_t r = r0 + i * d / (c1 - c0), c = c0 + (i * d) % (c1 - c0);
                for (int t = 0; t < d; ++t) Q[(size_t) (r * cols + c + t)] = cent[(size_t) (bm * d + t)];
            }
        }
    }
    return Q;
}

}  // namespace

TEST_CASE("gptvq: the Hessian-weighted EM never raises its objective (d = 1, 2, 4; clustered and degenerate data)") {
    std::mt19937 rng(7);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::uniform_real_distribution<float> u(0.05f, 20.0f);
    struct Case {
        int d, k;
        int64_t n;
    };
    for (const Case & cs : {Case{1, 8, 500}, Case{2, 16, 1000}, Case{2, 64, 3000}, Case{4, 256, 4000}, Case{2, 16, 10}}) {
        CAPTURE(cs.d);
        CAPTURE(cs.k);
        CAPTURE(cs.n);
        const int d = cs.d;
        // A mixture of 12 blobs, and per-coordinate weights spanning 400x.
        std::vector<float> centers((size_t) (12 * d));
        for (float & v : centers) v = 3.0f * g(rng);
        std::vector<float> X((size_t) (cs.n * d)), w((size_t) (cs.n * d));
        for (int64_t i = 0; i < cs.n; ++i) {
            const int b = (int) (i % 12);
            for (int t = 0; t < d; ++t) {
                X[(size_t) (i * d + t)] = centers[(size_t) (b * d + t)] + 0.5f * g(rng);
                w[(size_t) (i * d + t)] = u(rng);
            }
        }
        std::vector<float> cent;
        const std::vector<double> tr = gptvq_em_trace(X.data(), w.data(), cs.n, d, cs.k, 100, &cent);
        REQUIRE(tr.size() >= 1);
        REQUIRE(tr.size() <= 101);
        REQUIRE(cent.size() == (size_t) (cs.k * d));
        for (size_t i = 1; i < tr.size(); ++i) {
            CAPTURE(i);
            CHECK(tr[i] <= tr[i - 1] * (1.0 + 1e-12));
        }
        if (cs.n < cs.k) {
            CHECK(tr.back() == 0.0);  // fewer vectors than centroids: each one exact (seeding pads with duplicates)
        } else {
            CHECK(tr.back() < 0.9 * tr.front());
            MESSAGE("d" << d << " k" << cs.k << ": objective " << tr.front() << " -> " << tr.back() << " in " << tr.size() - 1 << " rounds");
        }
        // The objective is what it says: recompute it from the returned centroids with a fresh nearest assignment
        // (which can only be as good or better than the EM's own assignment).
        double obj = 0;
        for (int64_t i = 0; i < cs.n; ++i) {
            double bd = 1e300;
            for (int m = 0; m < cs.k; ++m) {
                double s = 0;
                for (int t = 0; t < d; ++t) {
                    const double e = (double) X[(size_t) (i * d + t)] - cent[(size_t) (m * d + t)];
                    s += w[(size_t) (i * d + t)] * e * e;
                }
                bd = std::min(bd, s);
            }
            obj += bd;
        }
        CHECK(obj <= tr.back() * (1.0 + 1e-9) + 1e-12);
    }
    // Few distinct points, many repeats: clusters seeded on duplicates start empty and are re-seeded on the points with
    // the largest error, so the EM ends with every distinct point exactly represented.
    {
        const int d = 2, k = 4;
        const float pts[4][2] = {{0.0f, 0.0f}, {5.0f, 0.0f}, {0.0f, 7.0f}, {-3.0f, -3.0f}};
        std::vector<float> X, w;
        for (int i = 0; i < 200; ++i) {
            const int p = i < 170 ? 0 : i < 190 ? 1 : i < 197 ? 2 : 3;  // ranks pick point 0 for most seeds
            X.push_back(pts[p][0]);
            X.push_back(pts[p][1]);
            w.push_back(1.0f);
            w.push_back(2.0f);
        }
        const std::vector<double> tr = gptvq_em_trace(X.data(), w.data(), 200, d, k, 50);
        CHECK(tr.front() > 0.0);
        CHECK(tr.back() == 0.0);
    }
    CHECK_THROWS_AS(gptvq_em_trace(nullptr, nullptr, 4, 3, 4, 10), quill::Error);
}

TEST_CASE("gptvq: W is exactly out.value(); partial row and column groups, d = 1, 2, 4, dead columns") {
    const int64_t R = 37, C = 172;
    std::vector<float> H = correlated_hessian(C, 500, 11);
    for (int64_t j : {5, 101}) {  // dead inputs
        for (int64_t i = 0; i < C; ++i) H[(size_t) (i * C + j)] = H[(size_t) (j * C + i)] = 0.0f;
    }
    const std::vector<float> W0 = randn((size_t) (R * C), 12, 0.05f);
    struct Cfg {
        int d, bits;
    };
    for (const Cfg & cf : {Cfg{1, 3}, Cfg{2, 3}, Cfg{4, 2}, Cfg{1, 1}}) {
        CAPTURE(cf.d);
        CAPTURE(cf.bits);
        GptvqParams p;
        p.dim = cf.d;
        p.bits = cf.bits;
        p.rows_per_group = 8;   // 4 full row groups + 5 rows
        p.cols_per_group = 64;  // 2 full column groups + 44 columns
        p.em_iters = 30;
        p.update_iters = 10;
        p.block = 48;  // lazy blocks end at group boundaries too
        std::vector<float> W = W0;
        VqLayer q;
        GptvqStats st;
        gptvq_quantize(W.data(), R, C, H.data(), p, &q, &st);
        CHECK(q.n_row_groups() == 5);
        CHECK(q.n_col_groups() == 3);
        check_layer(q, W, R, C, p);
        CHECK(st.dead == 2);
        CHECK(std::isfinite(st.loss));
        CHECK(st.loss > 0.0);
        CHECK(st.update_loss1 <= st.update_loss0);
        // update_loss1 is the layer's Hessian-weighted error (float GEMM vs the double reference).
        const double e = hessian_weighted_error(W0.data(), W.data(), R, C, H.data());
        CHECK(st.update_loss1 == doctest::Approx(e).epsilon(1e-3));
        // The group of (r, c) is the documented one.
        CHECK(q.group_of(36, 171) == 4 * 3 + 2);
        CHECK(q.group_of(8, 64) == 1 * 3 + 1);
    }
}

TEST_CASE("gptvq: 2D 3-bit beats RTN, GPTQ int3 g128 and k-means without error feedback on a correlated Hessian") {
    const int64_t R = 128, C = 256;
    const std::vector<float> H = correlated_hessian(C, 600, 21);
    const std::vector<float> W0 = randn((size_t) (R * C), 22, 0.02f);

    std::vector<float> Wr = W0, Wg = W0, Wv = W0, Wv0 = W0;
    IntQuantLayer qr, qg;
    rtn_quantize(Wr.data(), R, C, 3, 128, &qr);
    GptqParams gp;
    gp.bits = 3;
    gp.group = 128;
    gptq_quantize(Wg.data(), R, C, H.data(), gp, &qg, nullptr);

    GptvqParams p;  // 3 bits/weight index + 64·2·8 / (32·128) = 0.25 bits of codebook
    p.dim = 2;
    p.bits = 3;
    p.rows_per_group = 32;
    p.cols_per_group = 128;
    VqLayer qv, qv0;
    GptvqStats st, st0;
    gptvq_quantize(Wv.data(), R, C, H.data(), p, &qv, &st);
    p.update_iters = 0;
    gptvq_quantize(Wv0.data(), R, C, H.data(), p, &qv0, &st0);
    const std::vector<float> Wk = kmeans_no_feedback(W0, R, C, 2, 3, 32, 128, 100);

    const double er = hessian_weighted_error(W0.data(), Wr.data(), R, C, H.data());
    const double eg = hessian_weighted_error(W0.data(), Wg.data(), R, C, H.data());
    const double ev = hessian_weighted_error(W0.data(), Wv.data(), R, C, H.data());
    const double ev0 = hessian_weighted_error(W0.data(), Wv0.data(), R, C, H.data());
    const double ek = hessian_weighted_error(W0.data(), Wk.data(), R, C, H.data());
    MESSAGE("RTN int3 g128 " << er << ", GPTQ " << eg << ", k-means (no feedback) " << ek << ", GPTVQ without fine-tune " << ev0
                             << ", GPTVQ " << ev << " (" << ev / eg << "x GPTQ)");
    CHECK(ev < 0.8 * er);
    CHECK(ev < 0.9 * eg);
    CHECK(ev < 0.9 * ek);
    CHECK(ev0 < ek);  // the error feedback alone already beats plain k-means
    CHECK(ev <= ev0 * (1.0 + 1e-3));
    CHECK(st.update_loss1 <= st.update_loss0);
    CHECK(st0.update_loss1 == st0.update_loss0);  // no fine-tune: nothing changes
    check_layer(qv, Wv, R, C, p);
}

TEST_CASE("gptvq: the codebook fine-tune never raises the loss, lowers it at 1D 2-bit, and survives a huge learning rate") {
    const int64_t R = 64, C = 128;
    const std::vector<float> H = correlated_hessian(C, 400, 31);
    const std::vector<float> W0 = randn((size_t) (R * C), 32, 0.02f);
    GptvqParams p;
    p.dim = 1;
    p.bits = 2;
    p.rows_per_group = 2;
    p.cols_per_group = 64;
    p.update_iters = 25;
    p.update_lr = 1e-4;
    std::vector<float> W = W0;
    VqLayer q;
    GptvqStats st;
    gptvq_quantize(W.data(), R, C, H.data(), p, &q, &st);
    MESSAGE("1D 2-bit: fine-tune " << st.update_loss0 << " -> " << st.update_loss1 << ", " << st.update_restarts << " restarts");
    CHECK(st.update_loss1 < 0.97 * st.update_loss0);
    CHECK(st.update_loss1 == doctest::Approx(hessian_weighted_error(W0.data(), W.data(), R, C, H.data())).epsilon(1e-3));
    check_layer(q, W, R, C, p);

    // A learning rate far too large: the loss rises, the safeguard cuts it (or gives up), never ends worse.
    p.update_lr = 10.0;
    std::vector<float> W2 = W0;
    VqLayer q2;
    GptvqStats st2;
    gptvq_quantize(W2.data(), R, C, H.data(), p, &q2, &st2);
    MESSAGE("lr 10: fine-tune " << st2.update_loss0 << " -> " << st2.update_loss1 << ", " << st2.update_restarts << " restarts");
    CHECK(st2.update_restarts > 0);
    CHECK(st2.update_loss1 <= st2.update_loss0);
    check_layer(q2, W2, R, C, p);

    // d = 2 and 4 too (partial groups as well).
    for (int d : {2, 4}) {
        CAPTURE(d);
        GptvqParams p4;
        p4.dim = d;
        p4.bits = 2;
        p4.rows_per_group = 16;
        p4.cols_per_group = 48;
        p4.em_iters = 20;
        std::vector<float> W4 = W0;
        VqLayer q4;
        GptvqStats st4;
        gptvq_quantize(W4.data(), R, C, H.data(), p4, &q4, &st4);
        CHECK(st4.update_loss1 <= st4.update_loss0);
        check_layer(q4, W4, R, C, p4);
    }
}

TEST_CASE("gptvq: invalid parameters are a quill::Error") {
    const int64_t R = 8, C = 16;
    const std::vector<float> H = correlated_hessian(C, 64, 3);
    const std::vector<float> W0 = randn((size_t) (R * C), 4, 0.1f);
    auto run_shape = [&](GptvqParams p, int64_t rows, int64_t cols) {
        std::vector<float> W = W0;
        VqLayer q;
        gptvq_quantize(W.data(), rows, cols, H.data(), p, &q);
    };
    auto run = [&](GptvqParams p) { run_shape(p, R, C); };
    GptvqParams ok;
    ok.rows_per_group = 4;
    ok.cols_per_group = 8;
    ok.em_iters = 5;
    ok.update_iters = 2;
    CHECK_NOTHROW(run(ok));
    auto with = [&](auto f) {
        GptvqParams p = ok;
        f(p);
        return p;
    };
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.dim = 3; })), quill::Error);
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.dim = 0; })), quill::Error);
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.bits = 0; })), quill::Error);
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.dim = 4; p.bits = 3; })), quill::Error);  // 12-bit index
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.dim = 2; p.bits = 5; })), quill::Error);  // 10-bit index
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.cols_per_group = 6; p.dim = 4; p.bits = 2; })), quill::Error);
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.rows_per_group = 0; })), quill::Error);
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.cols_per_group = -8; })), quill::Error);
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.block = 0; })), quill::Error);
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.em_iters = -1; })), quill::Error);
    CHECK_THROWS_AS(run(with([](GptvqParams & p) { p.update_lr = 0.0; })), quill::Error);
    CHECK_THROWS_AS(run_shape(with([](GptvqParams & p) { p.dim = 4; p.bits = 2; }), R, 14), quill::Error);  // cols % dim
    CHECK_THROWS_AS(run_shape(ok, 0, C), quill::Error);
    CHECK_THROWS_AS(run_shape(ok, R, 0), quill::Error);
    CHECK_NOTHROW(run(with([](GptvqParams & p) { p.dim = 4; p.bits = 2; })));
    CHECK_NOTHROW(run(with([](GptvqParams & p) { p.dim = 1; p.bits = 8; })));
}

TEST_CASE("gptvq: the same result with 1 and 2 OpenMP threads") {
    const int64_t R = 160, C = 256;  // large enough for every parallel path (column loop, fine-tune GEMM)
    const std::vector<float> H = correlated_hessian(C, 500, 41);
    const std::vector<float> W0 = randn((size_t) (R * C), 42, 0.02f);
    const int saved = omp_get_max_threads();
    for (int d : {2, 4}) {
        CAPTURE(d);
        GptvqParams p;
        p.dim = d;
        p.bits = d == 2 ? 3 : 2;
        p.rows_per_group = 16;
        p.cols_per_group = 128;
        p.em_iters = 40;
        p.update_iters = 8;
        std::vector<float> W1 = W0, W2 = W0;
        VqLayer q1, q2;
        GptvqStats s1, s2;
        omp_set_num_threads(1);
        gptvq_quantize(W1.data(), R, C, H.data(), p, &q1, &s1);
        omp_set_num_threads(2);
        gptvq_quantize(W2.data(), R, C, H.data(), p, &q2, &s2);
        omp_set_num_threads(saved);
        CHECK(std::memcmp(W1.data(), W2.data(), W1.size() * sizeof(float)) == 0);
        CHECK(q1.idx == q2.idx);
        CHECK(q1.codebooks == q2.codebooks);
        CHECK(q1.scales == q2.scales);
        CHECK(s1.loss == s2.loss);
        CHECK(s1.update_loss0 == s2.update_loss0);
        CHECK(s1.update_loss1 == s2.update_loss1);
        CHECK(s1.update_restarts == s2.update_restarts);
    }
}
