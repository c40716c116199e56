// The AVX-512 kernel table (ggml-lite/cpu/avx512.cpp) entry by entry against the scalar reference, called directly
// (not through dispatch), so each kernel is checked even where the table leaves a neighbour to a lower level.
//
// Bit-identical: activation quantizers (Q8_0, F16, BF16) and to_float. Within a tolerance: dot products, gemm, axpy
// and the float ops, which sum in another order; tolerances are relative to the sum of the terms' magnitudes.
#include "tests/test_util.h"

#include "ggml-lite/cpu.h"
#include "ggml-lite/types.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace {

bool have_avx512() {
    if (gl_cpu_max_level() >= GL_CPU_AVX512) return true;
    MESSAGE("SKIP: this CPU has no AVX-512 F/BW/VL/VNNI; the AVX-512 kernels cannot run here");
    return false;
}

const gl_type k_types[] = {GL_TYPE_F32, GL_TYPE_F16, GL_TYPE_BF16, GL_TYPE_Q8_0, GL_TYPE_Q4_0};

uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

std::vector<float> normal_floats(std::mt19937 & rng, int64_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v((size_t) n);
    for (float & x : v) x = d(rng);
    return v;
}

// A row of type t: reference-quantized random floats; for quantized types a third of the blocks get random code
// bytes (the full range: -128 for Q8_0, every nibble for Q4_0).
std::vector<uint8_t> random_row(std::mt19937 & rng, gl_type t, int64_t n) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    std::vector<float> f = normal_floats(rng, n);
    std::vector<uint8_t> row(gl_row_size(t, n));
    tr->from_float(f.data(), row.data(), n);
    if (tr->is_quantized) {
        for (int64_t b = 0; b < n / tr->block_size; ++b) {
            if (rng() % 3 != 0) continue;
            uint8_t * blk = row.data() + b * tr->type_size;
            for (size_t j = 2; j < tr->type_size; ++j) blk[j] = (uint8_t) rng();
        }
    }
    return row;
}

// Activations for weights of type t, in its vec_dot_type, from the reference quantizer.
std::vector<uint8_t> random_act(std::mt19937 & rng, gl_type t, int64_t n) {
    const gl_type vt = gl_get_type_traits(t)->vec_dot_type;
    std::vector<float> f = normal_floats(rng, n, 3.0f);
    std::vector<uint8_t> row(gl_row_size(vt, n));
    gl_get_type_traits(vt)->from_float(f.data(), row.data(), n);
    return row;
}

// Σ |x_i y_i| of the widened rows: the scale of any summation order's rounding error.
double sum_abs_products(gl_type t, const void * x, const void * y, int64_t n) {
    const gl_type vt = gl_get_type_traits(t)->vec_dot_type;
    std::vector<float> fx((size_t) n), fy((size_t) n);
    gl_get_type_traits(t)->to_float(x, fx.data(), n);
    gl_get_type_traits(vt)->to_float(y, fy.data(), n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs((double) fx[(size_t) i] * fy[(size_t) i]);
    return s;
}

// Quantized types: 1, 2, 3, 7 and 129 blocks (129 crosses the gemm's 64-block segments twice). Float types: any
// length, so that every tail of a 16- or 32-element vector is hit.
std::vector<int64_t> sizes(gl_type t) {
    if (gl_get_type_traits(t)->block_size > 1) return {32, 64, 96, 224, 129 * 32};
    return {1, 2, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1001, 4096};
}

}  // namespace

TEST_CASE("avx512: vec_dot matches the scalar reference") {
    if (!have_avx512()) return;
    std::mt19937 rng(42);
    for (gl_type t : k_types) {
        const gl_vec_dot_fn dot = gl_kernels_avx512[t].vec_dot;
        if (!dot) continue;
        const std::string type_name = gl_type_name(t);
        CAPTURE(type_name);
        for (int64_t n : sizes(t)) {
            CAPTURE(n);
            for (int rep = 0; rep < 4; ++rep) {
                const std::vector<uint8_t> x = random_row(rng, t, n), y = random_act(rng, t, n);
                float ref = 0, got = 0;
                gl_get_type_traits(t)->vec_dot(n, &ref, x.data(), y.data());
                dot(n, &got, x.data(), y.data());
                const double tol = 2e-6 * sum_abs_products(t, x.data(), y.data(), n) + 1e-30;
                CHECK(std::fabs((double) got - (double) ref) <= tol);
            }
        }
    }
}

TEST_CASE("avx512: gemm matches the scalar dot product of every row and token") {
    if (!have_avx512()) return;
    std::mt19937 rng(7);
    const float guard = -12345.0f;
    for (gl_type t : k_types) {
        const gl_gemm_fn gemm = gl_kernels_avx512[t].gemm;
        if (!gemm) continue;
        const gl_type_traits * tr = gl_get_type_traits(t);
        const gl_type vt = tr->vec_dot_type;
        const std::string type_name = gl_type_name(t);
        CAPTURE(type_name);
        // 65 and 129 blocks cross the batch kernel's 64-block segments, 517 the decode kernel's 512-block one.
        const std::vector<int64_t> ns = tr->block_size > 1 ? std::vector<int64_t>{32, 64, 96, 224, 65 * 32, 129 * 32, 517 * 32}
                                                           : std::vector<int64_t>{1, 17, 64, 100};
        for (int64_t n : ns) {
            for (int64_t nr : {1, 3, 4, 5, 8, 16, 17, 33}) {
                for (int64_t nt : {1, 2, 3, 4, 5, 7, 8, 9, 17}) {
                    if (n > 1000 && nr > 17 && nt > 9) continue;  // keep the test quick
                    if (n > 10000 && (nr > 5 || nt > 5)) continue;
                    CAPTURE(n);
                    CAPTURE(nr);
                    CAPTURE(nt);
                    // Rows and activations with padding between them (strides larger than a row).
                    const size_t wrow = gl_row_size(t, n), arow = gl_row_size(vt, n);
                    const size_t w_stride = wrow + 18 * 3, act_stride = arow + 34;
                    std::vector<uint8_t> w(w_stride * (size_t) nr), act(act_stride * (size_t) nt);
                    for (int64_t r = 0; r < nr; ++r) {
                        const std::vector<uint8_t> row = random_row(rng, t, n);
                        memcpy(w.data() + r * w_stride, row.data(), wrow);
                    }
                    for (int64_t i = 0; i < nt; ++i) {
                        const std::vector<uint8_t> a = random_act(rng, t, n);
                        memcpy(act.data() + i * act_stride, a.data(), arow);
                    }
                    // y: nt rows of y_stride floats, guard values before, after and between the tile's rows.
                    const int64_t y_stride = nr + 3, pad = 5;
                    std::vector<float> ybuf((size_t) (nt * y_stride + 2 * pad), guard);
                    float * y = ybuf.data() + pad;
                    gemm(n, nr, nt, w.data(), w_stride, act.data(), act_stride, y, y_stride);
                    bool guards_ok = true;
                    for (int64_t i = 0; i < (int64_t) ybuf.size(); ++i) {
                        const int64_t k = i - pad;
                        const bool inside = k >= 0 && k < nt * y_stride && k % y_stride < nr;
                        if (!inside && ybuf[(size_t) i] != guard) guards_ok = false;
                    }
                    CHECK(guards_ok);
                    int bad = 0;
                    for (int64_t i = 0; i < nt; ++i) {
                        for (int64_t r = 0; r < nr; ++r) {
                            const uint8_t * wr = w.data() + r * w_stride;
                            const uint8_t * ai = act.data() + i * act_stride;
                            float ref = 0;
                            tr->vec_dot(n, &ref, wr, ai);
                            const double tol = 4e-6 * sum_abs_products(t, wr, ai, n) + 1e-30;
                            if (!(std::fabs((double) y[i * y_stride + r] - (double) ref) <= tol)) ++bad;
                        }
                    }
                    CHECK(bad == 0);
                }
            }
        }
    }
}

TEST_CASE("avx512: Q8_0 activation quantizer is byte-identical to the reference") {
    if (!have_avx512()) return;
    const gl_from_float_fn q = gl_kernels_avx512[GL_TYPE_Q8_0].quantize_act;
    REQUIRE((q != nullptr));
    std::mt19937 rng(99);
    std::vector<std::vector<float>> cases;
    for (int64_t n : {32, 64, 96, 224, 4096}) cases.push_back(normal_floats(rng, n, 2.5f));
    {
        // Ties: with amax = 127, d = 1 and x * (1/d) = k + 0.5 exactly; roundf rounds them away from zero.
        std::vector<float> v(64);
        for (int j = 0; j < 64; ++j) v[(size_t) j] = (float) (j - 32) + 0.5f;
        v[0] = 127.0f;
        v[40] = -0.5f;
        v[41] = 0.5f;
        v[42] = -1.5f;
        cases.push_back(v);
        // The same ties with a scale that is not a power of two.
        std::vector<float> w(32);
        for (int j = 0; j < 32; ++j) w[(size_t) j] = ((float) (j - 16) + 0.5f) * 0.37f;
        w[3] = 127.0f * 0.37f;
        cases.push_back(w);
    }
    cases.push_back(std::vector<float>(96, 0.0f));   // all zero: d = 0, every q = 0
    cases.push_back(std::vector<float>(32, -0.0f));  // negative zeros
    {
        std::vector<float> v = normal_floats(rng, 128, 1.0f);
        for (int j = 0; j < 32; ++j) v[(size_t) j] = -std::fabs(v[(size_t) j]);   // all negative
        for (int j = 32; j < 64; ++j) v[(size_t) j] *= 1e30f;                      // big
        for (int j = 64; j < 96; ++j) v[(size_t) j] *= 1e-40f;                     // denormal
        v[100] = std::numeric_limits<float>::max();
        v[101] = -std::numeric_limits<float>::max();
        cases.push_back(v);
    }
    {
        // One huge value next to small ones; inf and NaN (skipped by the max, converted to 0 like the scalar cast).
        std::vector<float> v = normal_floats(rng, 96, 1.0f);
        v[5] = 3e38f;
        v[40] = std::numeric_limits<float>::infinity();
        v[70] = std::numeric_limits<float>::quiet_NaN();
        v[71] = -std::numeric_limits<float>::infinity();
        cases.push_back(v);
    }
    for (size_t c = 0; c < cases.size(); ++c) {
        CAPTURE(c);
        const std::vector<float> & x = cases[c];
        const int64_t n = (int64_t) x.size();
        std::vector<uint8_t> ref(gl_row_size(GL_TYPE_Q8_0, n)), got(ref.size(), 0xAA);
        gl_get_type_traits(GL_TYPE_Q8_0)->from_float(x.data(), ref.data(), n);
        q(x.data(), got.data(), n);
        CHECK(ref == got);
    }
}

TEST_CASE("avx512: F16 and BF16 conversions are bit-identical to the reference") {
    if (!have_avx512()) return;
    std::mt19937 rng(5);
    // float -> half: random bit patterns (every class: NaNs with payloads, infinities, denormals), values around the
    // fp16 rounding boundaries and overflow threshold, for lengths with every tail.
    std::vector<float> x;
    for (int i = 0; i < 20000; ++i) x.push_back(bits_f32((uint32_t) rng()));
    const float specials[] = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, -65520.0f, 1e-8f, 2.98e-8f, 5.96e-8f, 6.1e-5f,
                              std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::quiet_NaN(), bits_f32(0x7f800001u), bits_f32(0xffc12345u),
                              bits_f32(0x7fbfffffu), 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 1.0f + 1.0f / 256, 1.0f + 3.0f / 256};
    for (float f : specials) x.push_back(f);
    for (int i = 0; i < 4000; ++i) {
        const float f = normal_floats(rng, 1, 100.0f)[0];
        x.push_back(f);
        x.push_back(bits_f32((f32_bits(f) & 0xffff0000u) | 0x8000u));  // exact bf16 ties
        x.push_back(bits_f32((f32_bits(f) & 0xffffe000u) | 0x1000u));  // exact fp16 ties
    }
    for (gl_type t : {GL_TYPE_F16, GL_TYPE_BF16}) {
        const std::string type_name = gl_type_name(t);
        CAPTURE(type_name);
        const gl_from_float_fn from = gl_kernels_avx512[t].quantize_act;
        const gl_to_float_fn to = gl_kernels_avx512[t].to_float;
        REQUIRE((from != nullptr));
        REQUIRE((to != nullptr));
        for (int64_t n : {(int64_t) x.size(), (int64_t) 1, (int64_t) 15, (int64_t) 17, (int64_t) 33}) {
            CAPTURE(n);
            std::vector<uint16_t> ref((size_t) n), got((size_t) n + 1, 0xBEEF);
            gl_get_type_traits(t)->from_float(x.data() + 3, ref.data(), n);
            from(x.data() + 3, got.data(), n);
            CHECK(got[(size_t) n] == 0xBEEF);  // nothing written past the end
            got.resize((size_t) n);
            CHECK(ref == got);
        }
        // One element at a time (gl_attention's per-probability round trip takes a scalar path).
        int one_bad = 0;
        for (size_t i = 0; i < x.size(); i += 7) {
            uint16_t r = 0, g = 0;
            gl_get_type_traits(t)->from_float(&x[i], &r, 1);
            from(&x[i], &g, 1);
            one_bad += r != g;
        }
        for (uint32_t h = 0; h < 65536; ++h) {
            const uint16_t hv = (uint16_t) h;
            float r = 0, g = 0;
            gl_get_type_traits(t)->to_float(&hv, &r, 1);
            to(&hv, &g, 1);
            one_bad += f32_bits(r) != f32_bits(g);
        }
        CHECK(one_bad == 0);
        // half -> float: all 65536 patterns, with a tail.
        std::vector<uint16_t> h(65536 + 7);
        for (size_t i = 0; i < h.size(); ++i) h[i] = (uint16_t) i;
        for (int64_t n : {(int64_t) h.size(), (int64_t) 5}) {
            std::vector<float> ref((size_t) n), got((size_t) n + 1, 1.5f);
            gl_get_type_traits(t)->to_float(h.data() + (n == 5 ? 0x7c00 : 0), ref.data(), n);
            to(h.data() + (n == 5 ? 0x7c00 : 0), got.data(), n);
            CHECK(got[(size_t) n] == 1.5f);
            int mismatches = 0;
            for (int64_t i = 0; i < n; ++i) mismatches += f32_bits(ref[(size_t) i]) != f32_bits(got[(size_t) i]);
            CHECK(mismatches == 0);
        }
    }
}

TEST_CASE("avx512: quantized to_float is bit-identical to the reference") {
    if (!have_avx512()) return;
    std::mt19937 rng(11);
    for (gl_type t : {GL_TYPE_Q8_0, GL_TYPE_Q4_0}) {
        const gl_to_float_fn to = gl_kernels_avx512[t].to_float;
        if (!to) continue;
        const std::string type_name = gl_type_name(t);
        CAPTURE(type_name);
        const gl_type_traits * tr = gl_get_type_traits(t);
        for (int64_t n : {32, 96, 224, 4096}) {
            CAPTURE(n);
            // Random bytes everywhere, scales included: zero, denormal, inf and NaN scales all occur.
            std::vector<uint8_t> x(gl_row_size(t, n));
            for (uint8_t & b : x) b = (uint8_t) rng();
            const uint16_t scales[] = {0x0000, 0x8000, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x7c01, 0x3c00};
            for (int64_t b = 0; b < n / 32 && b < 8; ++b) memcpy(x.data() + b * tr->type_size, &scales[b], 2);
            std::vector<float> ref((size_t) n), got((size_t) n);
            tr->to_float(x.data(), ref.data(), n);
            to(x.data(), got.data(), n);
            int mismatches = 0;
            for (int64_t i = 0; i < n; ++i) mismatches += f32_bits(ref[(size_t) i]) != f32_bits(got[(size_t) i]);
            CHECK(mismatches == 0);
        }
    }
}

TEST_CASE("avx512: axpy matches the reference") {
    if (!have_avx512()) return;
    std::mt19937 rng(3);
    for (gl_type t : {GL_TYPE_F32, GL_TYPE_F16, GL_TYPE_BF16}) {
        const gl_axpy_fn axpy = gl_kernels_avx512[t].axpy;
        if (!axpy) continue;
        const std::string type_name = gl_type_name(t);
        CAPTURE(type_name);
        for (int64_t n : sizes(t)) {
            CAPTURE(n);
            const std::vector<uint8_t> x = random_row(rng, t, n);
            const std::vector<float> y0 = normal_floats(rng, n + 1);
            std::vector<float> ref = y0, got = y0;
            const float a = 0.75f;
            gl_kernels_scalar[t].axpy(n, a, x.data(), ref.data());
            axpy(n, a, x.data(), got.data());
            std::vector<float> xf((size_t) n);
            gl_get_type_traits(t)->to_float(x.data(), xf.data(), n);
            int bad = 0;
            for (int64_t i = 0; i < n; ++i) {
                const double tol = 1e-6 * (std::fabs(a * xf[(size_t) i]) + std::fabs(y0[(size_t) i]));
                bad += !(std::fabs((double) got[(size_t) i] - ref[(size_t) i]) <= tol);
            }
            CHECK(bad == 0);
            CHECK(got[(size_t) n] == y0[(size_t) n]);  // untouched past the end
        }
    }
}

TEST_CASE("avx512: dot_f32, rms_norm, softmax and swiglu match the reference") {
    if (!have_avx512()) return;
    const gl_float_kernels & k = gl_float_avx512;
    const gl_float_kernels & ref = gl_float_scalar;
    std::mt19937 rng(17);
    const int64_t lens[] = {1, 3, 15, 16, 17, 64, 100, 2048, 5633};
    if (k.dot_f32) {
        for (int64_t n : lens) {
            CAPTURE(n);
            const std::vector<float> x = normal_floats(rng, n), y = normal_floats(rng, n);
            double mag = 0;
            for (int64_t i = 0; i < n; ++i) mag += std::fabs((double) x[(size_t) i] * y[(size_t) i]);
            CHECK(std::fabs((double) k.dot_f32(n, x.data(), y.data()) - ref.dot_f32(n, x.data(), y.data())) <= 2e-6 * mag);
        }
    }
    if (k.rms_norm) {
        for (int64_t n : lens) {
            CAPTURE(n);
            const std::vector<float> x = normal_floats(rng, n, 3.0f), w = normal_floats(rng, n);
            for (const float * wp : {w.data(), (const float *) nullptr}) {
                std::vector<float> a((size_t) n + 1, 9.0f), b((size_t) n + 1, 9.0f);
                ref.rms_norm(x.data(), wp, n, 1e-5f, a.data());
                k.rms_norm(x.data(), wp, n, 1e-5f, b.data());
                int bad = 0;
                for (int64_t i = 0; i < n; ++i) bad += !(std::fabs(a[(size_t) i] - b[(size_t) i]) <= 1e-5f * std::fabs(a[(size_t) i]) + 1e-30f);
                CHECK(bad == 0);
                CHECK(b[(size_t) n] == 9.0f);
            }
        }
    }
    if (k.softmax) {
        for (int64_t n : lens) {
            CAPTURE(n);
            std::vector<float> x = normal_floats(rng, n, 4.0f);
            if (n > 10) {
                x[2] = -std::numeric_limits<float>::infinity();  // masked positions
                x[5] = -1e30f;
                x[7] = x[8] - 95.0f;  // a probability in the denormal range
            }
            for (float scale : {1.0f, 0.125f}) {
                std::vector<float> a = x, b = x;
                a.push_back(7.0f);
                b.push_back(7.0f);
                ref.softmax(a.data(), n, scale);
                k.softmax(b.data(), n, scale);
                int bad = 0;
                for (int64_t i = 0; i < n; ++i) bad += !(std::fabs(a[(size_t) i] - b[(size_t) i]) <= 1e-6f * a[(size_t) i] + 1e-30f);
                CHECK(bad == 0);
                CHECK(b[(size_t) n] == 7.0f);
            }
        }
    }
    if (k.swiglu) {
        for (int64_t n : lens) {
            CAPTURE(n);
            std::vector<float> g = normal_floats(rng, n, 5.0f);
            const std::vector<float> u = normal_floats(rng, n);
            if (n > 10) {
                g[0] = 100.0f;   // e^-g underflows
                g[1] = -100.0f;  // e^-g overflows: silu -> -0
                g[2] = 0.0f;
                g[3] = -88.0f;
            }
            std::vector<float> a((size_t) n + 1, 3.0f), b((size_t) n + 1, 3.0f);
            ref.swiglu(g.data(), u.data(), n, a.data());
            k.swiglu(g.data(), u.data(), n, b.data());
            int bad = 0;
            for (int64_t i = 0; i < n; ++i) bad += !(std::fabs(a[(size_t) i] - b[(size_t) i]) <= 4e-7f * std::fabs(a[(size_t) i]) + 1e-37f);
            CHECK(bad == 0);
            CHECK(b[(size_t) n] == 3.0f);
        }
    }
}
