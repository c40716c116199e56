// ggml-lite scalar reference ops against naive double-precision implementations of their formulas:
// mul_mat (every type), get_row, rms_norm, softmax, silu/swiglu, rope (NORM and NEOX), attention (F32/F16 K/V, GQA).
// The reference tests pin the scalar dispatch level; a last test runs the same tolerance checks (not the bit-exact
// ones) at every SIMD level the machine has.
#include "ggml-lite/cpu.h"
#include "ggml-lite/ops.h"
#include "tests/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, scale);
    std::vector<float> x(n);
    for (float & v : x) v = g(rng);
    return x;
}

std::vector<uint8_t> quantize_rows(gl_type t, const std::vector<float> & x, int64_t ne0, int64_t rows) {
    const size_t row = gl_row_size(t, ne0);
    std::vector<uint8_t> q(row * (size_t) rows);
    for (int64_t r = 0; r < rows; ++r) gl_get_type_traits(t)->from_float(x.data() + r * ne0, q.data() + (size_t) r * row, ne0);
    return q;
}

std::vector<float> dequantize_rows(gl_type t, const void * q, int64_t ne0, int64_t rows) {
    const size_t row = gl_row_size(t, ne0);
    std::vector<float> y((size_t) (ne0 * rows));
    for (int64_t r = 0; r < rows; ++r) gl_get_type_traits(t)->to_float((const uint8_t *) q + (size_t) r * row, y.data() + r * ne0, ne0);
    return y;
}

// Squared error normalized by `energy`: the sum over outputs of the sum of squared products w_k x_k. For independent
// zero-mean data that is the expected sum of squared outputs, so this is the usual NMSE without its blow-up when
// one of a few outputs happens to land near zero.
double nmse(const std::vector<float> & got, const std::vector<double> & ref, double energy) {
    double num = 0;
    for (size_t i = 0; i < ref.size(); ++i) num += ((double) got[i] - ref[i]) * ((double) got[i] - ref[i]);
    return num / energy;
}

uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

bool bitwise_equal(const float * a, const float * b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

const float k_guard = -12345.6789f;

// Pins a CPU dispatch level for one test, restoring the previous one after.
struct CpuLevel {
    gl_cpu_level saved = gl_cpu_level_get();
    explicit CpuLevel(gl_cpu_level l) { REQUIRE(gl_cpu_level_set(l)); }
    ~CpuLevel() { gl_cpu_level_set(saved); }
};

// NMSE tolerance of gl_mul_mat against float activations, by the activation format the weight type's dot product
// takes (its vec_dot_type): the activations are rounded to it before the dot product, as ggml does.
//   f32: float products summed in double, ~1e-14.  f16: 2^-11 relative per element, ~1e-7.
//   bf16: 2^-8 relative, ~5e-6.  q8_0: half a step of amax/127 per element, ~3e-5 on gaussian data.
struct NmseTol { const char * act_type; double tol; };
//   a8_row: half a step of (max − min)/255 over the whole row, ~1e-4 on gaussian rows of thousands.
const NmseTol k_nmse_tol[] = {{"f32", 1e-12}, {"f16", 1e-6}, {"bf16", 3e-5}, {"q8_0", 3e-4}, {"a8_row", 6e-4}};

double nmse_tol_for(gl_type weight_type) {
    const char * act = gl_type_name(gl_get_type_traits(weight_type)->vec_dot_type);
    for (const NmseTol & t : k_nmse_tol) {
        if (strcmp(t.act_type, act) == 0) return t.tol;
    }
    FAIL("no NMSE tolerance stated for activation format " << act);
    return 0;
}

// ---- mul_mat ---------------------------------------------------------------------------------------------------

// gl_mul_mat against (1) dequantized weights times float activations, within the activation format's NMSE
// tolerance, and (2) dequantized weights times the activations as the kernel sees them, within ref2_tol.
void check_mul_mat_all(double ref2_tol) {
    struct Shape { int64_t ne0, ne1, n_tok; };
    // One row, one token, several tokens, row counts that are multiples of nothing, and one big enough to take
    // the OpenMP path (ne0 * ne1 * n_tok >= 2^16).
    // Shapes whose rows are not a whole number of a type's blocks are skipped for that type.
    const Shape shapes[] = {{32, 1, 1}, {64, 7, 1}, {96, 13, 3}, {160, 37, 5}, {128, 1, 9}, {32, 3, 2}, {384, 5, 2}, {640, 3, 3}, {256, 67, 4}};
    uint32_t seed = 1;
    for (uint32_t ti = 0; ti < GL_TYPE_COUNT; ++ti) {
        const gl_type t = (gl_type) ti;
        if (gl_get_type_traits(t)->vq) continue;  // codebook types: tests/test_vq.cpp
        const gl_type vt = gl_get_type_traits(t)->vec_dot_type;
        const double tol = nmse_tol_for(t);
        for (const Shape & s : shapes) {
            const std::string type = gl_type_name(t);
            CAPTURE(type);
            CAPTURE(s.ne0);
            CAPTURE(s.ne1);
            CAPTURE(s.n_tok);
            if (s.ne0 % gl_get_type_traits(t)->block_size != 0) continue;
            const std::vector<float> wf = randn((size_t) (s.ne0 * s.ne1), seed++);
            const std::vector<uint8_t> wq = quantize_rows(t, wf, s.ne0, s.ne1);
            const std::vector<float> wd = dequantize_rows(t, wq.data(), s.ne0, s.ne1);
            const std::vector<float> x = randn((size_t) (s.n_tok * s.ne0), seed++);
            const std::vector<float> x_copy = x;

            const gl_tensor w = gl_tensor_make(t, s.ne0, s.ne1, wq.data(), "w");
            CHECK(w.nb1 == gl_row_size(t, s.ne0));
            const size_t scratch = gl_mul_mat_scratch_size(w, s.n_tok);
            CHECK(scratch == (vt == GL_TYPE_F32 ? 0 : gl_row_size(vt, s.ne0) * (size_t) s.n_tok));
            const size_t G = 64;
            std::vector<uint8_t> wdata(scratch + G, 0xa5);
            std::vector<float> ybuf((size_t) (s.n_tok * s.ne1) + 2 * G, k_guard);
            float * y = ybuf.data() + G;
            gl_mul_mat(w, x.data(), s.n_tok, y, scratch ? wdata.data() : nullptr);

            // Nothing outside y or the scratch was written, and x is untouched.
            for (size_t i = 0; i < G; ++i) {
                CHECK(f32_bits(ybuf[i]) == f32_bits(k_guard));
                CHECK(f32_bits(ybuf[ybuf.size() - 1 - i]) == f32_bits(k_guard));
                CHECK(wdata[scratch + i] == 0xa5);
            }
            CHECK(x == x_copy);

            // Reference 1: dequantized weights, float activations, in double.
            // Reference 2: dequantized weights, activations as the kernel sees them (rounded to vec_dot_type).
            std::vector<double> ref1((size_t) (s.n_tok * s.ne1)), ref2(ref1.size());
            double energy = 0;
            const std::vector<float> xa = dequantize_rows(vt, quantize_rows(vt, x, s.ne0, s.n_tok).data(), s.ne0, s.n_tok);
            for (int64_t tk = 0; tk < s.n_tok; ++tk) {
                for (int64_t r = 0; r < s.ne1; ++r) {
                    double a1 = 0, a2 = 0;
                    for (int64_t k = 0; k < s.ne0; ++k) {
                        a1 += (double) wd[r * s.ne0 + k] * (double) x[tk * s.ne0 + k];
                        a2 += (double) wd[r * s.ne0 + k] * (double) xa[tk * s.ne0 + k];
                        energy += std::pow((double) wd[r * s.ne0 + k] * (double) x[tk * s.ne0 + k], 2);
                    }
                    ref1[tk * s.ne1 + r] = a1;
                    ref2[tk * s.ne1 + r] = a2;
                }
            }
            const std::vector<float> got(y, y + s.n_tok * s.ne1);
            for (float v : got) REQUIRE(std::isfinite(v));
            CHECK(nmse(got, ref1, energy) <= tol);
            CHECK(nmse(got, ref2, energy) <= ref2_tol);
        }
    }
}

}  // namespace

TEST_CASE("ops: gl_mul_mat matches a naive double loop for every type and shape, and writes only y") {
    CpuLevel level(GL_CPU_SCALAR);
    check_mul_mat_all(1e-11);
}

TEST_CASE("ops: gl_get_row widens one row of every type") {
    CpuLevel level(GL_CPU_SCALAR);
    for (uint32_t ti = 0; ti < GL_TYPE_COUNT; ++ti) {
        const gl_type t = (gl_type) ti;
        if (gl_get_type_traits(t)->vq) continue;  // codebook types: tests/test_vq.cpp
        const std::string type = gl_type_name(t);
        CAPTURE(type);
        const int64_t ne0 = 256, ne1 = 5;
        const std::vector<uint8_t> q = quantize_rows(t, randn((size_t) (ne0 * ne1), 40 + ti), ne0, ne1);
        const std::vector<float> all = dequantize_rows(t, q.data(), ne0, ne1);
        const gl_tensor w = gl_tensor_make(t, ne0, ne1, q.data());
        for (int64_t r = 0; r < ne1; ++r) {
            std::vector<float> row((size_t) ne0 + 1, k_guard);
            gl_get_row(w, r, row.data());
            CHECK(bitwise_equal(row.data(), all.data() + r * ne0, (size_t) ne0));
            CHECK(f32_bits(row[(size_t) ne0]) == f32_bits(k_guard));
        }
    }
}

// ---- rms_norm, softmax, silu -----------------------------------------------------------------------------------

namespace {

void check_rms_norm(double rel_tol) {
    uint32_t seed = 300;
    for (int64_t n : {1, 7, 32, 4096}) {
        for (float eps : {1e-5f, 1e-6f, 0.1f}) {
            for (bool with_w : {false, true}) {
                CAPTURE(n);
                CAPTURE(eps);
                CAPTURE(with_w);
                const std::vector<float> x = randn((size_t) n, seed++, 3.0f);
                const std::vector<float> w = randn((size_t) n, seed++);
                std::vector<float> y((size_t) n + 1, k_guard);
                gl_rms_norm(x.data(), with_w ? w.data() : nullptr, n, eps, y.data());
                double ss = 0;
                for (float v : x) ss += (double) v * v;
                const double inv = 1.0 / std::sqrt(ss / (double) n + eps);
                for (int64_t i = 0; i < n; ++i) {
                    const double ref = x[i] * inv * (with_w ? w[i] : 1.0);
                    CHECK(std::fabs(y[i] - ref) <= rel_tol * std::fabs(ref) + 1e-7);
                }
                CHECK(f32_bits(y[(size_t) n]) == f32_bits(k_guard));
            }
        }
    }
    // All zeros: zeros, not NaN (eps keeps the denominator positive).
    std::vector<float> z(16, 0.0f), y(16, 1.0f);
    gl_rms_norm(z.data(), nullptr, 16, 1e-5f, y.data());
    for (float v : y) CHECK(v == 0.0f);
    // Without a weight, the output has unit RMS when eps is negligible.
    const std::vector<float> x = randn(256, 9, 100.0f);
    std::vector<float> yy(256);
    gl_rms_norm(x.data(), nullptr, 256, 1e-6f, yy.data());
    double ss = 0;
    for (float v : yy) ss += (double) v * v;
    CHECK(std::sqrt(ss / 256) == doctest::Approx(1.0).epsilon(rel_tol));
}

// bitwise: the exact identities (shift by an exact constant, pre-scaled input) hold bit for bit; otherwise within
// rel_tol.
void check_softmax(bool bitwise, double rel_tol) {
    auto same = [&](const std::vector<float> & a, const std::vector<float> & b) {
        if (bitwise) return bitwise_equal(a.data(), b.data(), a.size());
        for (size_t i = 0; i < a.size(); ++i) {
            if (!(std::fabs(a[i] - b[i]) <= rel_tol * std::fabs(b[i]) + 1e-7)) return false;
        }
        return true;
    };
    uint32_t seed = 400;
    for (int64_t n : {1, 2, 5, 100, 1000}) {
        for (float scale : {1.0f, 0.125f, 3.0f}) {
            CAPTURE(n);
            CAPTURE(scale);
            // Logits on a 2^-10 grid in [-8, 8]: adding 64 is exact, so shifted inputs are comparable bit for bit.
            std::mt19937 rng(seed++);
            std::uniform_int_distribution<int> u(-8192, 8192);
            std::vector<float> x((size_t) n);
            for (float & v : x) v = (float) u(rng) / 1024.0f;

            std::vector<float> p = x;
            gl_softmax(p.data(), n, scale);
            double sum = 0, mx = -INFINITY;
            for (float v : x) mx = std::max(mx, (double) v * scale);
            std::vector<double> ref((size_t) n);
            for (int64_t i = 0; i < n; ++i) sum += ref[i] = std::exp((double) x[i] * scale - mx);
            double psum = 0;
            for (int64_t i = 0; i < n; ++i) {
                ref[i] /= sum;
                CHECK(p[i] >= 0.0f);
                CHECK(std::fabs(p[i] - ref[i]) <= rel_tol * ref[i] + 1e-7);
                psum += p[i];
            }
            CHECK(psum == doctest::Approx(1.0).epsilon(rel_tol));

            // scale: softmax(x, s) == softmax(x * s, 1), bit for bit.
            std::vector<float> xs = x;
            for (float & v : xs) v *= scale;
            gl_softmax(xs.data(), n, 1.0f);
            CHECK(same(xs, p));

            // Adding a constant changes nothing: exactly when the shift and scale are exact, closely otherwise.
            std::vector<float> sh = x;
            for (float & v : sh) v += 64.0f;
            gl_softmax(sh.data(), n, scale);
            if (scale != 3.0f) {
                CHECK(same(sh, p));
            } else {
                for (int64_t i = 0; i < n; ++i) CHECK(std::fabs(sh[i] - p[i]) <= 1e-4 * p[i] + 1e-7);
            }
            std::vector<float> sh2 = x;
            for (float & v : sh2) v -= 1000.3f;
            gl_softmax(sh2.data(), n, scale);
            for (int64_t i = 0; i < n; ++i) CHECK(std::fabs(sh2[i] - p[i]) <= 3e-3 * p[i] + 1e-7);
        }
    }
    // One element: probability 1. Large logits: no overflow. -inf (masked) entries: probability 0.
    float one = 123.0f;
    gl_softmax(&one, 1, 1.0f);
    CHECK(one == doctest::Approx(1.0).epsilon(rel_tol));
    std::vector<float> big = {1000.0f, 999.0f, -1000.0f, 88.0f};
    gl_softmax(big.data(), 4, 1.0f);
    CHECK(big[0] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))).epsilon(1e-6));
    CHECK(big[1] == doctest::Approx(std::exp(-1.0) / (1.0 + std::exp(-1.0))).epsilon(1e-6));
    CHECK(big[2] == 0.0f);
    std::vector<float> masked = {0.5f, -INFINITY, 0.5f, -INFINITY};
    gl_softmax(masked.data(), 4, 0.125f);
    CHECK(masked[0] == doctest::Approx(0.5));
    CHECK(masked[1] == 0.0f);
    CHECK(masked[2] == doctest::Approx(0.5));
    CHECK(masked[3] == 0.0f);
}

void check_swiglu(double rel_tol) {
    const std::vector<float> g = randn(1000, 11, 4.0f), u = randn(1000, 12, 2.0f);
    std::vector<float> out(1001, k_guard);
    gl_swiglu(g.data(), u.data(), 1000, out.data());
    for (size_t i = 0; i < 1000; ++i) {
        const double ref = (double) g[i] / (1.0 + std::exp(-(double) g[i])) * u[i];
        CHECK(std::fabs(out[i] - ref) <= rel_tol * std::fabs(ref) + 1e-30);
    }
    CHECK(f32_bits(out[1000]) == f32_bits(k_guard));
}

}  // namespace

TEST_CASE("ops: gl_rms_norm matches x / sqrt(mean(x^2) + eps) * w") {
    CpuLevel level(GL_CPU_SCALAR);
    check_rms_norm(2e-6);
}

TEST_CASE("ops: gl_softmax sums to 1, matches exp/sum, is shift invariant and applies its scale") {
    CpuLevel level(GL_CPU_SCALAR);
    check_softmax(true, 1e-5);
}

TEST_CASE("ops: gl_silu and gl_swiglu match x / (1 + e^-x) and silu(g) * u") {
    CpuLevel level(GL_CPU_SCALAR);
    for (int i = -3000; i <= 3000; ++i) {
        const float x = (float) i / 100.0f;
        const double ref = (double) x / (1.0 + std::exp(-(double) x));
        const float got = gl_silu(x);
        if (!(std::fabs(got - ref) <= 1e-6 * std::fabs(ref) + 1e-30)) FAIL_CHECK("silu(" << x << ") = " << got << ", want " << ref);
    }
    CHECK(gl_silu(0.0f) == 0.0f);
    CHECK(gl_silu(100.0f) == 100.0f);
    for (float x : {-100.0f, -1000.0f, -1e30f}) {
        CHECK(!std::isnan(gl_silu(x)));
        CHECK(std::fabs(gl_silu(x)) <= 1e-30f);
    }
    check_swiglu(2e-6);
}

TEST_CASE("ops: gl_gelu_tanh, gl_geglu, gl_add, gl_add_bias, gl_scale and gl_softcap match their formulas at every level") {
    for (int i = -2000; i <= 2000; ++i) {
        const double x = (double) i / 100.0;
        const double ref = 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
        const float got = gl_gelu_tanh((float) x);
        if (!(std::fabs(got - ref) <= 2e-6 * std::fabs(ref) + 1e-7)) FAIL_CHECK("gelu_tanh(" << x << ") = " << got << ", want " << ref);
    }
    CHECK(gl_gelu_tanh(0.0f) == 0.0f);
    CHECK(!std::isnan(gl_gelu_tanh(-1e30f)));
    for (int level = 0; level <= (int) gl_cpu_max_level(); ++level) {
        CpuLevel lv((gl_cpu_level) level);
        CAPTURE(gl_cpu_level_name((gl_cpu_level) level));
        for (int64_t n : {1, 7, 8, 33, 100}) {
            const std::vector<float> g = randn((size_t) n, 11), u = randn((size_t) n, 12), b = randn((size_t) n, 13);
            std::vector<float> out((size_t) n);
            gl_geglu(g.data(), u.data(), n, out.data());
            for (int64_t i = 0; i < n; ++i) CHECK(out[(size_t) i] == doctest::Approx(gl_gelu_tanh(g[(size_t) i]) * u[(size_t) i]).epsilon(1e-6));
            std::vector<float> y = u;
            gl_add(y.data(), g.data(), n);
            for (int64_t i = 0; i < n; ++i) CHECK(y[(size_t) i] == u[(size_t) i] + g[(size_t) i]);  // one rounding, exact
            std::vector<float> rows((size_t) (3 * n));
            for (int64_t i = 0; i < 3 * n; ++i) rows[(size_t) i] = (float) i;
            gl_add_bias(rows.data(), b.data(), 3, n);
            for (int64_t r = 0; r < 3; ++r)
                for (int64_t i = 0; i < n; ++i) CHECK(rows[(size_t) (r * n + i)] == (float) (r * n + i) + b[(size_t) i]);
            y = g;
            gl_scale(y.data(), n, 8.0f);
            for (int64_t i = 0; i < n; ++i) CHECK(y[(size_t) i] == g[(size_t) i] * 8.0f);
            y = g;
            for (float & v : y) v *= 50.0f;
            gl_softcap(y.data(), n, 30.0f);
            for (int64_t i = 0; i < n; ++i) {
                CHECK(std::fabs(y[(size_t) i]) <= 30.0f);
                CHECK(y[(size_t) i] == doctest::Approx(30.0 * std::tanh(50.0 * g[(size_t) i] / 30.0)).epsilon(1e-5));
            }
        }
    }
}

TEST_CASE("ops: gl_mul_mat_multi gives each weight gl_mul_mat's bits, sharing activations or not") {
    const int64_t K = 256;  // large enough that decode-sized products (1 and 3 tokens) run threaded
    struct W {
        gl_type type;
        int64_t rows;
    };
    // q/k/v-like (same type, different heights), mixed types with one activation format (q4_0 and q8_0 take Q8_0),
    // and formats that cannot share (f32 with q8_0): the last runs them one after the other.
    const std::vector<std::vector<W>> sets = {{{GL_TYPE_Q4_0, 1024}, {GL_TYPE_Q4_0, 272}, {GL_TYPE_Q4_0, 272}},
                                              {{GL_TYPE_Q8_0, 500}, {GL_TYPE_Q4_0, 613}},  // heights not multiples of 16
                                              {{GL_TYPE_F32, 16}, {GL_TYPE_Q8_0, 17}, {GL_TYPE_F16, 33}}};
    for (int level = 0; level <= (int) gl_cpu_max_level(); ++level) {
        CpuLevel lv((gl_cpu_level) level);
        for (const auto & set : sets) {
            for (int64_t n_tok : {1, 3, 19}) {
                CAPTURE(n_tok);
                std::vector<std::vector<uint8_t>> data;
                std::vector<gl_tensor> ws;
                size_t wd = 0;
                for (size_t i = 0; i < set.size(); ++i) {
                    data.push_back(quantize_rows(set[i].type, randn((size_t) (K * set[i].rows), 20 + (uint32_t) i), K, set[i].rows));
                }
                for (size_t i = 0; i < set.size(); ++i) {
                    ws.push_back(gl_tensor_make(set[i].type, K, set[i].rows, data[i].data()));
                    wd = std::max(wd, gl_mul_mat_scratch_size(ws.back(), n_tok));
                }
                const std::vector<float> x = randn((size_t) (K * n_tok), 7);
                std::vector<uint8_t> scratch(wd + 1);
                std::vector<std::vector<float>> want(set.size()), got(set.size());
                std::vector<const gl_tensor *> wp;
                std::vector<float *> yp;
                for (size_t i = 0; i < set.size(); ++i) {
                    want[i].assign((size_t) (set[i].rows * n_tok), 0.0f);
                    got[i].assign((size_t) (set[i].rows * n_tok), -1.0f);
                    gl_mul_mat(ws[i], x.data(), n_tok, want[i].data(), scratch.data());
                    wp.push_back(&ws[i]);
                    yp.push_back(got[i].data());
                }
                gl_mul_mat_multi(wp.data(), yp.data(), (int) set.size(), x.data(), n_tok, scratch.data());
                for (size_t i = 0; i < set.size(); ++i) CHECK(memcmp(got[i].data(), want[i].data(), got[i].size() * sizeof(float)) == 0);
            }
        }
    }
    CHECK(gl_mul_mat_can_share(gl_tensor_make(GL_TYPE_Q4_0, 64, 1, nullptr), gl_tensor_make(GL_TYPE_Q8_0, 64, 1, nullptr)));
    CHECK_FALSE(gl_mul_mat_can_share(gl_tensor_make(GL_TYPE_F32, 64, 1, nullptr), gl_tensor_make(GL_TYPE_Q8_0, 64, 1, nullptr)));
    CHECK_FALSE(gl_mul_mat_can_share(gl_tensor_make(GL_TYPE_Q8_0, 64, 1, nullptr), gl_tensor_make(GL_TYPE_Q8_0, 96, 1, nullptr)));
}

TEST_CASE("ops: x16 tensors: pack/unpack round trip, gl_get_row, and gl_mul_mat equal to the plain rows' product") {
    CHECK(gl_x16_ok(GL_TYPE_Q4_0, 64, 32));
    CHECK(gl_x16_ok(GL_TYPE_Q8_0, 32, 16));
    CHECK_FALSE(gl_x16_ok(GL_TYPE_Q4_0, 64, 24));      // not whole groups of 16 rows
    CHECK_FALSE(gl_x16_ok(GL_TYPE_Q4_0, 48, 16));      // not whole blocks
    CHECK_FALSE(gl_x16_ok(GL_TYPE_F16, 64, 16));       // no x16 layout
    CHECK_FALSE(gl_x16_ok(GL_TYPE_Q4_G128, 128, 16));
    const int64_t K = 320;
    for (gl_type t : {GL_TYPE_Q4_0, GL_TYPE_Q8_0}) {
        CAPTURE(gl_type_name(t));
        const int64_t rows[3] = {1024, 256, 48};
        std::vector<std::vector<uint8_t>> plain, packed;
        std::vector<gl_tensor> wp, wx;
        for (int i = 0; i < 3; ++i) {
            plain.push_back(quantize_rows(t, randn((size_t) (K * rows[i]), 40 + (uint32_t) i), K, rows[i]));
            packed.emplace_back(plain.back().size());
            gl_x16_pack(t, K, rows[i], plain.back().data(), packed.back().data());
            std::vector<uint8_t> back(plain.back().size());
            gl_x16_unpack(t, K, rows[i], packed.back().data(), back.data());
            CHECK(back == plain.back());
            CHECK(packed.back() != plain.back());
        }
        for (int i = 0; i < 3; ++i) {
            wp.push_back(gl_tensor_make(t, K, rows[i], plain[(size_t) i].data()));
            wx.push_back(gl_tensor_make(t, K, rows[i], packed[(size_t) i].data()));
            wx.back().x16 = true;
        }
        std::vector<float> a((size_t) K), b((size_t) K);
        for (int64_t r : {0, 5, 15, 16, 47}) {
            gl_get_row(wp[2], r, a.data());
            gl_get_row(wx[2], r, b.data());
            CHECK(a == b);
        }
        for (int level = 0; level <= (int) gl_cpu_max_level(); ++level) {
            CpuLevel lv((gl_cpu_level) level);
            for (int64_t n_tok : {1, 3, 19}) {
                CAPTURE(level);
                CAPTURE(n_tok);
                const std::vector<float> x = randn((size_t) (K * n_tok), 9);
                std::vector<uint8_t> scratch(gl_mul_mat_scratch_size(wp[0], n_tok) + 1);
                std::vector<std::vector<float>> yp(3), yx(3), ym(3);
                std::vector<const gl_tensor *> ptrs;
                std::vector<float *> outs;
                for (int i = 0; i < 3; ++i) {
                    yp[(size_t) i].assign((size_t) (rows[i] * n_tok), 0.0f);
                    yx[(size_t) i].assign((size_t) (rows[i] * n_tok), 0.0f);
                    ym[(size_t) i].assign((size_t) (rows[i] * n_tok), -1.0f);
                    gl_mul_mat(wp[(size_t) i], x.data(), n_tok, yp[(size_t) i].data(), scratch.data());
                    gl_mul_mat(wx[(size_t) i], x.data(), n_tok, yx[(size_t) i].data(), scratch.data());
                    ptrs.push_back(&wx[(size_t) i]);
                    outs.push_back(ym[(size_t) i].data());
                }
                gl_mul_mat_multi(ptrs.data(), outs.data(), 3, x.data(), n_tok, scratch.data());
                for (int i = 0; i < 3; ++i) {
                    // One weight or three in one parallel region: the same bits. Against the plain rows: the same
                    // bits at the scalar level (the reference regroups and runs the plain dot), rounding elsewhere.
                    CHECK(ym[(size_t) i] == yx[(size_t) i]);
                    if (level == GL_CPU_SCALAR) CHECK(yx[(size_t) i] == yp[(size_t) i]);
                    double worst = 0;
                    for (size_t j = 0; j < yp[(size_t) i].size(); ++j)
                        worst = std::max(worst, std::fabs((double) yx[(size_t) i][j] - yp[(size_t) i][j]) / (1.0 + std::fabs((double) yp[(size_t) i][j])));
                    CHECK(worst < 1e-4);
                }
            }
        }
    }
}

// ---- rope ------------------------------------------------------------------------------------------------------

namespace {

// The formula, in double: theta_i = pos * freq_scale * base^(-2i/n_dims) / ff[i], rotating (x[2i], x[2i+1]) (NORM)
// or (x[i], x[i + n_dims/2]) (NEOX) of each head; dims from n_dims on are left alone.
std::vector<double> rope_ref(const std::vector<float> & x, int64_t n_head, int64_t head_dim, int64_t n_dims, int64_t pos, double base,
                             double freq_scale, const float * ff, gl_rope_mode mode) {
    std::vector<double> y(x.begin(), x.end());
    for (int64_t h = 0; h < n_head; ++h) {
        for (int64_t i = 0; i < n_dims / 2; ++i) {
            const double theta = (double) pos * freq_scale * std::pow(base, -2.0 * (double) i / (double) n_dims) / (ff ? ff[i] : 1.0);
            const int64_t a = h * head_dim + (mode == GL_ROPE_NEOX ? i : 2 * i);
            const int64_t b = h * head_dim + (mode == GL_ROPE_NEOX ? i + n_dims / 2 : 2 * i + 1);
            const double x0 = x[a], x1 = x[b];
            y[a] = x0 * std::cos(theta) - x1 * std::sin(theta);
            y[b] = x0 * std::sin(theta) + x1 * std::cos(theta);
        }
    }
    return y;
}

}  // namespace

TEST_CASE("ops: gl_rope NORM rotates adjacent pairs and NEOX rotates halves, as the formula says") {
    struct Cfg { int64_t n_head, head_dim, n_dims; float base, scale; bool ff; };
    const Cfg cfgs[] = {
        {3, 16, 16, 10000.0f, 1.0f, false}, {2, 16, 8, 10000.0f, 1.0f, false},  {4, 64, 64, 10000.0f, 1.0f, false},
        {2, 64, 64, 500000.0f, 1.0f, true}, {1, 128, 128, 10000.0f, 0.25f, false}, {2, 32, 24, 10000.0f, 0.5f, true},
    };
    uint32_t seed = 500;
    for (const Cfg & c : cfgs) {
        // Llama-3-like factors: 1 for high frequencies, up to 8 for low ones, smooth in between.
        std::vector<float> ff((size_t) c.n_dims / 2);
        for (size_t i = 0; i < ff.size(); ++i) ff[i] = 1.0f + 7.0f * (float) i / (float) (ff.size() - 1) * (float) i / (float) (ff.size() - 1);
        for (gl_rope_mode mode : {GL_ROPE_NORM, GL_ROPE_NEOX}) {
            for (int64_t pos : {0, 1, 3, 17, 100, 1000}) {
                CAPTURE(c.n_head);
                CAPTURE(c.head_dim);
                CAPTURE(c.n_dims);
                CAPTURE(c.base);
                CAPTURE(c.scale);
                CAPTURE(c.ff);
                CAPTURE((int) mode);
                CAPTURE(pos);
                const std::vector<float> x = randn((size_t) (c.n_head * c.head_dim), seed++);
                std::vector<float> y = x;
                gl_rope(y.data(), c.n_head, c.head_dim, c.n_dims, pos, c.base, c.scale, c.ff ? ff.data() : nullptr, mode);
                const std::vector<double> ref = rope_ref(x, c.n_head, c.head_dim, c.n_dims, pos, c.base, c.scale, c.ff ? ff.data() : nullptr, mode);
                if (pos == 0) CHECK(y == x);  // the identity, exactly
                // theta is built in float by repeated multiplication (as ggml): its absolute error grows with pos.
                const double tol = 3e-6 + 4e-7 * (double) pos;
                for (int64_t h = 0; h < c.n_head; ++h) {
                    for (int64_t i = 0; i < c.n_dims / 2; ++i) {
                        const int64_t a = h * c.head_dim + (mode == GL_ROPE_NEOX ? i : 2 * i);
                        const int64_t b = h * c.head_dim + (mode == GL_ROPE_NEOX ? i + c.n_dims / 2 : 2 * i + 1);
                        const double norm0 = std::hypot((double) x[a], (double) x[b]);
                        const double norm1 = std::hypot((double) y[a], (double) y[b]);
                        CHECK(std::fabs(norm1 - norm0) <= 1e-6 * norm0 + 1e-7);  // a rotation keeps the pair's length
                        CHECK(std::fabs(y[a] - ref[a]) <= tol * norm0 + 1e-7);
                        CHECK(std::fabs(y[b] - ref[b]) <= tol * norm0 + 1e-7);
                    }
                    // Dimensions past n_dims are not touched.
                    for (int64_t d = c.n_dims; d < c.head_dim; ++d) CHECK(f32_bits(y[h * c.head_dim + d]) == f32_bits(x[h * c.head_dim + d]));
                }
            }
        }
    }
}

TEST_CASE("ops: gl_rope freq_factors divide theta, freq_scale scales it, NEOX is NORM on de-interleaved pairs") {
    const int64_t n_head = 2, head_dim = 32, n_dims = 32;
    const std::vector<float> x = randn((size_t) (n_head * head_dim), 77);
    for (gl_rope_mode mode : {GL_ROPE_NORM, GL_ROPE_NEOX}) {
        CAPTURE((int) mode);
        // Factors of 2 at position 10 are position 5, bit for bit (halving is exact); so is freq_scale 0.5.
        std::vector<float> ff2((size_t) n_dims / 2, 2.0f);
        std::vector<float> a = x, b = x, c = x;
        gl_rope(a.data(), n_head, head_dim, n_dims, 10, 10000.0f, 1.0f, ff2.data(), mode);
        gl_rope(b.data(), n_head, head_dim, n_dims, 5, 10000.0f, 1.0f, nullptr, mode);
        gl_rope(c.data(), n_head, head_dim, n_dims, 10, 10000.0f, 0.5f, nullptr, mode);
        CHECK(a == b);
        CHECK(c == b);
        // Factors of 1 are no factors.
        std::vector<float> ff1((size_t) n_dims / 2, 1.0f);
        std::vector<float> d = x, e = x;
        gl_rope(d.data(), n_head, head_dim, n_dims, 37, 10000.0f, 1.0f, ff1.data(), mode);
        gl_rope(e.data(), n_head, head_dim, n_dims, 37, 10000.0f, 1.0f, nullptr, mode);
        CHECK(d == e);
        // A factor on one pair only changes that pair.
        std::vector<float> ffk = ff1;
        ffk[3] = 4.0f;
        std::vector<float> f = x;
        gl_rope(f.data(), n_head, head_dim, n_dims, 37, 10000.0f, 1.0f, ffk.data(), mode);
        for (int64_t h = 0; h < n_head; ++h) {
            for (int64_t i = 0; i < n_dims / 2; ++i) {
                const int64_t ia = h * head_dim + (mode == GL_ROPE_NEOX ? i : 2 * i);
                const int64_t ib = h * head_dim + (mode == GL_ROPE_NEOX ? i + n_dims / 2 : 2 * i + 1);
                const bool same = f[ia] == e[ia] && f[ib] == e[ib];
                CHECK(same == (i != 3));
            }
        }
    }
    // NEOX on x equals NORM on x with each head's halves interleaved, then de-interleaved back.
    std::vector<float> inter(x.size());
    for (int64_t h = 0; h < n_head; ++h) {
        for (int64_t i = 0; i < n_dims / 2; ++i) {
            inter[h * head_dim + 2 * i] = x[h * head_dim + i];
            inter[h * head_dim + 2 * i + 1] = x[h * head_dim + i + n_dims / 2];
        }
    }
    std::vector<float> neox = x;
    gl_rope(neox.data(), n_head, head_dim, n_dims, 123, 10000.0f, 1.0f, nullptr, GL_ROPE_NEOX);
    gl_rope(inter.data(), n_head, head_dim, n_dims, 123, 10000.0f, 1.0f, nullptr, GL_ROPE_NORM);
    for (int64_t h = 0; h < n_head; ++h) {
        for (int64_t i = 0; i < n_dims / 2; ++i) {
            CHECK(neox[h * head_dim + i] == inter[h * head_dim + 2 * i]);
            CHECK(neox[h * head_dim + i + n_dims / 2] == inter[h * head_dim + 2 * i + 1]);
        }
    }
    // Every head gets the same rotation.
    std::vector<float> same(x.begin(), x.begin() + head_dim);
    same.insert(same.end(), x.begin(), x.begin() + head_dim);
    gl_rope(same.data(), 2, head_dim, n_dims, 9, 10000.0f, 1.0f, nullptr, GL_ROPE_NORM);
    CHECK(std::equal(same.begin(), same.begin() + head_dim, same.begin() + head_dim));
}

// ---- attention -------------------------------------------------------------------------------------------------

namespace {

// scalar: also the exact identities of the reference (one position gives its value row bit for bit).
void check_attention_all(bool scalar) {
    uint32_t seed = 900;
    for (gl_type kt : {GL_TYPE_F32, GL_TYPE_F16}) {
        for (gl_type vt : {GL_TYPE_F32, GL_TYPE_F16}) {
            for (int64_t n_head_kv : {4, 2, 1}) {
                for (int64_t n_kv : {1, 2, 37}) {
                    for (int64_t head_dim : {8, 64}) {
                        const int64_t n_head = 4;
                        const std::string k_type = gl_type_name(kt);
                        CAPTURE(k_type);
                        const std::string v_type = gl_type_name(vt);
                        CAPTURE(v_type);
                        CAPTURE(n_head_kv);
                        CAPTURE(n_kv);
                        CAPTURE(head_dim);
                        const int64_t row = n_head_kv * head_dim;
                        const int64_t pad = 3;  // rows are stride bytes apart, with unused elements between them
                        const std::vector<float> q = randn((size_t) (n_head * head_dim), seed++);
                        const std::vector<float> q_copy = q;
                        std::vector<float> kf = randn((size_t) (n_kv * (row + pad)), seed++);
                        std::vector<float> vf = randn((size_t) (n_kv * (row + pad)), seed++);
                        for (int64_t j = 0; j < n_kv; ++j) {
                            for (int64_t p = 0; p < pad; ++p) kf[j * (row + pad) + row + p] = vf[j * (row + pad) + row + p] = NAN;  // must not be read
                        }
                        const std::vector<uint8_t> kq = quantize_rows(kt, kf, row + pad, n_kv);
                        const std::vector<uint8_t> vq = quantize_rows(vt, vf, row + pad, n_kv);
                        const std::vector<float> kd = dequantize_rows(kt, kq.data(), row + pad, n_kv);
                        const std::vector<float> vd = dequantize_rows(vt, vq.data(), row + pad, n_kv);
                        gl_kv_view K{kt, kq.data(), gl_row_size(kt, row + pad)};
                        gl_kv_view V{vt, vq.data(), gl_row_size(vt, row + pad)};
                        const float scale = 1.0f / std::sqrt((float) head_dim);
                        const size_t G = 16;
                        std::vector<float> outbuf((size_t) (n_head * head_dim) + 2 * G, k_guard);
                        std::vector<float> scratch((size_t) (n_kv + head_dim) + G, k_guard);
                        float * out = outbuf.data() + G;
                        gl_attention(q.data(), n_head, n_head_kv, head_dim, K, V, n_kv, scale, out, scratch.data());

                        for (size_t i = 0; i < G; ++i) {
                            CHECK(f32_bits(outbuf[i]) == f32_bits(k_guard));
                            CHECK(f32_bits(outbuf[outbuf.size() - 1 - i]) == f32_bits(k_guard));
                            CHECK(f32_bits(scratch[(size_t) (n_kv + head_dim) + i]) == f32_bits(k_guard));
                        }
                        CHECK(q == q_copy);

                        // f16 on either side rounds q (for K) or the probabilities (for V) to f16, as ggml does.
                        const double tol = (kt == GL_TYPE_F32 && vt == GL_TYPE_F32) ? 2e-5 : 3e-3;
                        const int64_t group = n_head / n_head_kv;
                        for (int64_t h = 0; h < n_head; ++h) {
                            const int64_t kvh = h / group;
                            std::vector<double> s((size_t) n_kv);
                            double mx = -INFINITY, sum = 0;
                            for (int64_t j = 0; j < n_kv; ++j) {
                                double dot = 0;
                                for (int64_t d = 0; d < head_dim; ++d) dot += (double) q[h * head_dim + d] * kd[j * (row + pad) + kvh * head_dim + d];
                                s[j] = dot * scale;
                                mx = std::max(mx, s[j]);
                            }
                            for (double & v : s) sum += v = std::exp(v - mx);
                            for (int64_t d = 0; d < head_dim; ++d) {
                                double o = 0;
                                for (int64_t j = 0; j < n_kv; ++j) o += s[j] / sum * vd[j * (row + pad) + kvh * head_dim + d];
                                const float got = out[h * head_dim + d];
                                REQUIRE(std::isfinite(got));
                                CHECK(std::fabs(got - o) <= tol);
                                // One position: the output is that position's value row, exactly.
                                if (scalar && n_kv == 1) CHECK(f32_bits(got) == f32_bits(vd[kvh * head_dim + d]));
                            }
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

TEST_CASE("ops: gl_attention matches naive double attention for F32/F16 K/V, GQA, n_kv 1 and 37") {
    CpuLevel level(GL_CPU_SCALAR);
    check_attention_all(true);
}

TEST_CASE("ops: gl_attention heads sharing a KV head see the same keys and values") {
    CpuLevel level(GL_CPU_SCALAR);
    const int64_t n_head = 4, n_head_kv = 2, head_dim = 16, n_kv = 9;
    // Identical query heads: heads 0/1 share KV head 0, heads 2/3 share KV head 1.
    std::vector<float> qh = randn((size_t) head_dim, 1);
    std::vector<float> q;
    for (int h = 0; h < n_head; ++h) q.insert(q.end(), qh.begin(), qh.end());
    const std::vector<float> k = randn((size_t) (n_kv * n_head_kv * head_dim), 2), v = randn((size_t) (n_kv * n_head_kv * head_dim), 3);
    gl_kv_view K{GL_TYPE_F32, k.data(), (size_t) (n_head_kv * head_dim) * 4};
    gl_kv_view V{GL_TYPE_F32, v.data(), (size_t) (n_head_kv * head_dim) * 4};
    std::vector<float> out((size_t) (n_head * head_dim)), scratch((size_t) (n_kv + head_dim));
    gl_attention(q.data(), n_head, n_head_kv, head_dim, K, V, n_kv, 0.25f, out.data(), scratch.data());
    CHECK(std::equal(out.begin(), out.begin() + head_dim, out.begin() + head_dim));
    CHECK(std::equal(out.begin() + 2 * head_dim, out.begin() + 3 * head_dim, out.begin() + 3 * head_dim));
    CHECK(!std::equal(out.begin(), out.begin() + head_dim, out.begin() + 2 * head_dim));
}

// ---- SIMD levels -----------------------------------------------------------------------------------------------

TEST_CASE("ops: every SIMD dispatch level this CPU has meets the reference tolerances") {
    const gl_cpu_level max = gl_cpu_max_level();
    if (max == GL_CPU_SCALAR) {
        MESSAGE("SKIP: this CPU has no SIMD dispatch level");
        return;
    }
    for (int l = GL_CPU_SCALAR + 1; l <= (int) max; ++l) {
        const std::string cpu_level = gl_cpu_level_name((gl_cpu_level) l);
        CAPTURE(cpu_level);
        CpuLevel level((gl_cpu_level) l);
        // Against activations quantized by the scalar reference: a SIMD quantizer may round exact ties differently.
        check_mul_mat_all(1e-6);
        check_rms_norm(2e-5);
        check_softmax(false, 2e-5);
        check_swiglu(2e-5);
        check_attention_all(false);
    }
}

TEST_CASE("ops: a static activation grid (act_s, act_z) quantizes every token on it, clamped, at every level and in x16") {
    // W8A8 per tensor: the weight carries one int8 grid for its input (formats/SPEC.md "input_scale"). The product
    // must be the integer dot against the activations quantized on that grid (the scalar reference below, bit for
    // bit: A8 dots are exact), not on each token's own range.
    const int64_t K = 224, R = 48;  // rows of 128 + 64 + 32 codes; 3 groups of 16 for x16
    const float s = 0.01f;
    const int32_t z = -20;
    for (gl_type t : {GL_TYPE_Q8_ROW_A8, GL_TYPE_Q4_ROW_A8, GL_TYPE_Q3_ROW_A8}) {
        CAPTURE(gl_type_name(t));
        const std::vector<uint8_t> wq = quantize_rows(t, randn((size_t) (K * R), 77), K, R);
        gl_tensor w = gl_tensor_make(t, K, R, wq.data());
        w.act_s = s;
        w.act_z = z;
        for (int64_t n_tok : {1, 3, 9}) {
            CAPTURE(n_tok);
            std::vector<float> x = randn((size_t) (K * n_tok), 5, 0.8f);  // about 6% beyond the grid's [-1.08, 1.47]
            x[3] = 40.0f, x[7] = -40.0f;
            // reference: the scalar grid quantizer and the scalar dot
            const size_t ar = gl_row_size(GL_TYPE_A8_ROW, K);
            std::vector<uint8_t> act(ar * (size_t) n_tok);
            for (int64_t i = 0; i < n_tok; ++i) gl_kernels_scalar.at[GL_TYPE_A8_ROW].quantize_act_grid(x.data() + i * K, act.data() + i * ar, K, s, z);
            gl_row_header_a8 h;
            memcpy(&h, act.data(), sizeof h);
            CHECK(h.s == s);
            CHECK(h.z == z);
            CHECK((int) (int8_t) act[GL_ROW_HEADER_A + 3] == 127);   // clamped
            CHECK((int) (int8_t) act[GL_ROW_HEADER_A + 7] == -128);
            std::vector<float> ref((size_t) (R * n_tok)), tok((size_t) (R * n_tok));
            for (int64_t i = 0; i < n_tok; ++i)
                for (int64_t r = 0; r < R; ++r)
                    gl_kernels_scalar.at[t].vec_dot(K, &ref[(size_t) (i * R + r)], wq.data() + (size_t) r * w.nb1, act.data() + i * ar);
            gl_tensor wt = w;  // the same weight with per-token activations
            wt.act_s = 0.0f;
            for (int level = 0; level <= (int) gl_cpu_max_level(); ++level) {
                CAPTURE(level);
                CpuLevel lv((gl_cpu_level) level);
                std::vector<uint8_t> scratch(gl_mul_mat_scratch_size(w, n_tok));
                std::vector<float> y((size_t) (R * n_tok));
                gl_mul_mat(w, x.data(), n_tok, y.data(), scratch.data());
                CHECK(y == ref);
                gl_mul_mat(wt, x.data(), n_tok, tok.data(), scratch.data());
                CHECK(tok != ref);  // the grid is what decides the activations
                if (gl_x16_ok(t, K, R)) {
                    std::vector<uint8_t> packed(wq.size());
                    gl_x16_pack(t, K, R, wq.data(), packed.data());
                    gl_tensor wx = w;
                    wx.data = packed.data();
                    wx.x16 = true;
                    gl_mul_mat(wx, x.data(), n_tok, y.data(), scratch.data());
                    CHECK(y == ref);
                }
            }
            // gl_mul_mat_multi shares activations only between weights with the same grid
            gl_tensor w2 = w;
            w2.act_z = z + 1;
            CHECK(gl_mul_mat_can_share(w, w));
            CHECK_FALSE(gl_mul_mat_can_share(w, w2));
            CHECK_FALSE(gl_mul_mat_can_share(w, wt));
        }
    }
}
