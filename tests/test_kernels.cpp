// SIMD kernels against the scalar reference, at every dispatch level this CPU supports (ggml-lite/cpu.h).
//
// What must be bit-identical: the activation quantizers (Q8_0, F16, BF16: the bytes decide which integer dot
// product runs) and every to_float. What may differ by rounding: dot products, gemm, axpy and the float ops, which
// sum in another order (vector lanes, FMA, float instead of double accumulators). Their tolerances are relative to
// the sum of the magnitudes of the terms, the scale of any summation error.
#include "tests/test_util.h"

#include "formats/model_file.h"
#include "ggml-lite/cpu.h"
#include "ggml-lite/ops.h"
#include "ggml-lite/types.h"
#include "model/llama.h"
#include "model/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <ios>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace quill;

namespace {

// Restores the dispatch level a test started with, also when a REQUIRE throws out of it.
struct LevelGuard {
    gl_cpu_level saved = gl_cpu_level_get();
    ~LevelGuard() { gl_cpu_level_set(saved); }
};

// The SIMD levels to check: every level above scalar that this CPU has.
std::vector<gl_cpu_level> simd_levels() {
    std::vector<gl_cpu_level> out;
    for (int l = GL_CPU_SCALAR + 1; l <= (int) gl_cpu_max_level(); ++l) out.push_back((gl_cpu_level) l);
    if (out.empty()) MESSAGE("this CPU has no SIMD dispatch level: only the scalar reference runs");
    return out;
}

const gl_type k_types[] = {GL_TYPE_F32, GL_TYPE_F16, GL_TYPE_BF16, GL_TYPE_Q8_0, GL_TYPE_Q4_0};

uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

std::vector<float> random_floats(std::mt19937 & rng, int64_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v((size_t) n);
    for (float & x : v) x = d(rng);
    return v;
}

// A row of n elements of type t in its storage format. Quantized rows come from the reference quantizer with some
// blocks' codes replaced by random bytes (full code range, including -128 for Q8_0 weights).
std::vector<uint8_t> random_row(std::mt19937 & rng, gl_type t, int64_t n) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    std::vector<float> f = random_floats(rng, n);
    std::vector<uint8_t> row(gl_row_size(t, n));
    tr->from_float(f.data(), row.data(), n);
    if (t == GL_TYPE_Q8_0 || t == GL_TYPE_Q4_0) {
        for (int64_t b = 0; b < n / tr->block_size; ++b) {
            if (rng() % 3 != 0) continue;
            uint8_t * blk = row.data() + b * tr->type_size;
            for (size_t j = 2; j < tr->type_size; ++j) blk[j] = (uint8_t) rng();
        }
    }
    return row;
}

// Activations for a weight of type t: floats quantized to its vec_dot_type by the reference quantizer.
std::vector<uint8_t> random_act(std::mt19937 & rng, gl_type t, int64_t n) {
    const gl_type vt = gl_get_type_traits(t)->vec_dot_type;
    std::vector<float> f = random_floats(rng, n, 2.0f);
    std::vector<uint8_t> row(gl_row_size(vt, n));
    gl_get_type_traits(vt)->from_float(f.data(), row.data(), n);
    return row;
}

// Σ |x_i y_i| of the widened rows: the scale of the rounding error of any summation order.
double sum_abs_products(gl_type t, const void * x, const void * y, int64_t n) {
    const gl_type vt = gl_get_type_traits(t)->vec_dot_type;
    std::vector<float> fx((size_t) n), fy((size_t) n);
    gl_get_type_traits(t)->to_float(x, fx.data(), n);
    gl_get_type_traits(vt)->to_float(y, fy.data(), n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs((double) fx[(size_t) i] * fy[(size_t) i]);
    return s;
}

// Sizes per type: whole blocks for quantized types (1, 3, 7, 129 blocks), any length for float types.
std::vector<int64_t> dot_sizes(gl_type t) {
    if (gl_get_type_traits(t)->block_size > 1) return {32, 96, 224, 129 * 32};
    return {1, 7, 8, 33, 129 * 32, 1001};
}

bool same_bits(const float * a, const float * b, int64_t n, int64_t * where) {
    for (int64_t i = 0; i < n; ++i) {
        if (f32_bits(a[i]) != f32_bits(b[i])) {
            *where = i;
            return false;
        }
    }
    return true;
}

}  // namespace

TEST_CASE("kernels: vec_dot matches the scalar reference at every level") {
    LevelGuard guard;
    std::mt19937 rng(1234);
    for (gl_cpu_level level : simd_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        for (gl_type t : k_types) {
            const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
            for (int64_t n : dot_sizes(t)) {
                CAPTURE(n);
                for (int rep = 0; rep < 4; ++rep) {
                    std::vector<uint8_t> x = random_row(rng, t, n), y = random_act(rng, t, n);
                    float ref = 0, got = 0;
                    gl_get_type_traits(t)->vec_dot(n, &ref, x.data(), y.data());
                    gl_kernels(t).vec_dot(n, &got, x.data(), y.data());
                    // float accumulators over ~n/32 partial sums: a few ulp of the magnitude sum, far below one term
                    const double tol = 1e-5 * sum_abs_products(t, x.data(), y.data(), n) + 1e-30;
                    CHECK(std::fabs((double) got - (double) ref) <= tol);
                }
            }
        }
    }
}

// With unit scales and small codes every partial sum is an exact integer in float: any order gives the same
// result, so a misplaced element cannot hide inside the tolerance.
TEST_CASE("kernels: quantized vec_dot is exact with unit scales") {
    LevelGuard guard;
    std::mt19937 rng(99);
    for (gl_cpu_level level : simd_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        for (gl_type t : {GL_TYPE_Q8_0, GL_TYPE_Q4_0}) {
            const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
            for (int64_t nb : {1, 2, 3, 7, 129}) {
                CAPTURE(nb);
                const int64_t n = nb * 32;
                std::vector<uint8_t> x(gl_row_size(t, n));
                std::vector<gl_block_q8_0> y((size_t) nb);
                const size_t bs = gl_get_type_traits(t)->type_size;
                for (int64_t b = 0; b < nb; ++b) {
                    uint8_t * blk = x.data() + b * bs;
                    const uint16_t one = 0x3c00;
                    memcpy(blk, &one, 2);
                    for (size_t j = 2; j < bs; ++j) blk[j] = t == GL_TYPE_Q8_0 ? (uint8_t) (int8_t) ((int) (rng() % 33) - 16) : (uint8_t) rng();
                    y[(size_t) b].d = one;
                    for (int j = 0; j < 32; ++j) y[(size_t) b].qs[j] = (int8_t) ((int) (rng() % 255) - 127);
                }
                float ref = 0, got = 0;
                gl_get_type_traits(t)->vec_dot(n, &ref, x.data(), y.data());
                gl_kernels(t).vec_dot(n, &got, x.data(), y.data());
                CHECK(got == ref);
            }
        }
    }
}

TEST_CASE("kernels: Q8_0 activation quantizer is byte-identical to the reference") {
    LevelGuard guard;
    std::mt19937 rng(7);
    std::vector<std::vector<float>> rows;
    for (int64_t n : {32, 64, 96, 4096}) rows.push_back(random_floats(rng, n, 3.0f));
    // amax 127 gives d = 1 exactly, so x.5 values are exact rounding ties (half away from zero)
    {
        std::vector<float> r(64);
        for (int j = 0; j < 64; ++j) r[(size_t) j] = (float) (j - 32) + 0.5f;
        r[0] = 127.0f;
        r[32] = -127.0f;
        rows.push_back(r);
        // d = 0.5 (amax 63.5): quarter values are ties
        std::vector<float> q(32);
        for (int j = 0; j < 32; ++j) q[(size_t) j] = (j - 16) * 0.25f;
        q[5] = -63.5f;
        rows.push_back(q);
    }
    rows.push_back(std::vector<float>(96, 0.0f));  // blocks of zeros: d = 0
    {
        std::vector<float> r(128);
        for (int j = 0; j < 32; ++j) r[(size_t) j] = -std::fabs(random_floats(rng, 1)[0]);      // negatives only
        for (int j = 32; j < 64; ++j) r[(size_t) j] = (j % 2 ? 1e30f : -3e38f) * (float) j / 64;  // huge
        for (int j = 64; j < 96; ++j) r[(size_t) j] = (float) (j - 80) * 1e-30f;                 // tiny
        r[70] = 1e-40f;                                                                            // subnormal
        r[71] = -3e-41f;
        for (int j = 96; j < 128; ++j) r[(size_t) j] = j == 100 ? -0.0f : (j == 101 ? 65504.0f : 0.0f);
        rows.push_back(r);
    }
    for (gl_cpu_level level : simd_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        for (const std::vector<float> & r : rows) {
            const int64_t n = (int64_t) r.size();
            CAPTURE(n);
            std::vector<uint8_t> ref(gl_row_size(GL_TYPE_Q8_0, n)), got(ref.size(), 0xcd);
            gl_get_type_traits(GL_TYPE_Q8_0)->from_float(r.data(), ref.data(), n);
            gl_kernels(GL_TYPE_Q8_0).quantize_act(r.data(), got.data(), n);
            CHECK(memcmp(ref.data(), got.data(), ref.size()) == 0);
        }
    }
}

// Float values for the F16/BF16 quantizers: random bit patterns (every class: NaNs with payloads, infinities,
// subnormals), exact ties of both formats, the overflow boundary, zeros of both signs.
static std::vector<float> conversion_inputs(std::mt19937 & rng) {
    std::vector<float> v;
    for (int i = 0; i < 200000; ++i) v.push_back(bits_f32((uint32_t) rng()));
    for (int i = 0; i < 20000; ++i) v.push_back(random_floats(rng, 1, 100.0f)[0]);
    for (uint32_t base : {0x3f800000u, 0x40490000u, 0x38800000u, 0x33800000u, 0x477fe000u, 0x00000001u, 0x7f7f0000u}) {
        for (uint32_t sgn : {0u, 0x80000000u}) {
            for (uint32_t off : {0x0fffu, 0x1000u, 0x1001u, 0x3000u, 0x7fffu, 0x8000u, 0x8001u, 0x18000u, 0x2000u, 0u}) {
                v.push_back(bits_f32(sgn | (base + off)));
            }
        }
    }
    for (float f : {0.0f, -0.0f, 65504.0f, 65519.0f, 65520.0f, -65520.0f, 5.9604645e-8f, 2.9802322e-8f, 8.940697e-8f, 1e-45f,
                    std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN(), bits_f32(0x7f800001u), bits_f32(0xffffffffu), bits_f32(0x7fc00001u)}) {
        v.push_back(f);
    }
    return v;
}

TEST_CASE("kernels: F16 and BF16 activation conversions are bit-identical to the reference") {
    LevelGuard guard;
    std::mt19937 rng(11);
    const std::vector<float> in = conversion_inputs(rng);
    for (gl_cpu_level level : simd_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        for (gl_type t : {GL_TYPE_F16, GL_TYPE_BF16}) {
            const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
            std::vector<uint16_t> ref(in.size()), got(in.size());
            gl_get_type_traits(t)->from_float(in.data(), ref.data(), (int64_t) in.size());
            gl_kernels(t).quantize_act(in.data(), got.data(), (int64_t) in.size());
            size_t bad = 0;
            for (size_t i = 0; i < in.size(); ++i) {
                if (ref[i] != got[i] && bad++ < 5) FAIL_CHECK("input bits " << std::hex << f32_bits(in[i]) << ": ref " << ref[i] << " got " << got[i]);
            }
            CHECK(bad == 0);
            // short rows and tails, at odd offsets
            for (int64_t n : {1, 3, 7, 8, 9, 15, 33}) {
                CAPTURE(n);
                std::vector<uint16_t> r2((size_t) n + 1, 0xabcd), g2((size_t) n + 1, 0xabcd);
                gl_get_type_traits(t)->from_float(in.data() + 5, r2.data(), n);
                gl_kernels(t).quantize_act(in.data() + 5, g2.data(), n);
                CHECK(r2 == g2);  // includes the guard element past the end
            }
        }
    }
}

TEST_CASE("kernels: to_float is bit-identical to the reference") {
    LevelGuard guard;
    std::mt19937 rng(5);
    // every fp16 / bf16 bit pattern; quantized rows of random bytes (scales of every class too)
    std::vector<uint16_t> all(65536);
    for (uint32_t i = 0; i < 65536; ++i) all[i] = (uint16_t) i;
    for (gl_cpu_level level : simd_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        for (gl_type t : k_types) {
            const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
            const gl_type_traits * tr = gl_get_type_traits(t);
            std::vector<std::vector<uint8_t>> inputs;
            if (t == GL_TYPE_F16 || t == GL_TYPE_BF16) {
                inputs.emplace_back((const uint8_t *) all.data(), (const uint8_t *) all.data() + all.size() * 2);
            }
            for (int64_t n : dot_sizes(t)) {
                std::vector<uint8_t> row(gl_row_size(t, n));
                for (uint8_t & b : row) b = (uint8_t) rng();
                inputs.push_back(row);
            }
            for (const std::vector<uint8_t> & row : inputs) {
                const int64_t n = (int64_t) (row.size() / tr->type_size) * tr->block_size;
                CAPTURE(n);
                std::vector<float> ref((size_t) n + 1, 7.0f), got((size_t) n + 1, 7.0f);
                tr->to_float(row.data(), ref.data(), n);
                gl_kernels(t).to_float(row.data(), got.data(), n);
                int64_t where = -1;
                const bool same = same_bits(ref.data(), got.data(), n + 1, &where);
                CHECK_MESSAGE(same, "first difference at " << where);
            }
        }
    }
}

TEST_CASE("kernels: gemm tiles match looping the scalar vec_dot, and write nothing else") {
    LevelGuard guard;
    std::mt19937 rng(42);
    const float guard_value = -12345.5f;
    for (gl_cpu_level level : simd_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        for (gl_type t : k_types) {
            const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
            const gl_type_traits * tr = gl_get_type_traits(t);
            const gl_type vt = tr->vec_dot_type;
            // quantized: 1, 3, 7 blocks, and 129 and 301 blocks (kernels that prepare the activations in chunks of
            // K get a chunk of one odd block at the end)
            const std::vector<int64_t> sizes = tr->block_size > 1 ? std::vector<int64_t>{32, 96, 224, 129 * 32, 301 * 32}
                                                                  : std::vector<int64_t>{1, 7, 33, 64, 1001};
            for (int64_t n : sizes) {
                CAPTURE(n);
                // rows with a gap between them (strides larger than a row) to check the strides are used
                const size_t w_stride = gl_row_size(t, n) + 2 * tr->type_size;
                const size_t a_stride = gl_row_size(vt, n) + 2 * gl_get_type_traits(vt)->type_size;
                const int64_t max_r = 16, max_t = 8;
                std::vector<uint8_t> w(w_stride * max_r), a(a_stride * max_t);
                for (int64_t r = 0; r < max_r; ++r) {
                    std::vector<uint8_t> row = random_row(rng, t, n);
                    memcpy(w.data() + r * w_stride, row.data(), row.size());
                }
                for (int64_t k = 0; k < max_t; ++k) {
                    std::vector<uint8_t> row = random_act(rng, t, n);
                    memcpy(a.data() + k * a_stride, row.data(), row.size());
                }
                for (int64_t nr : {1, 3, 4, 5, 16}) {
                    for (int64_t nt : {1, 2, 3, 4, 5, 6, 7, 8}) {
                        CAPTURE(nr);
                        CAPTURE(nt);
                        const int64_t ys = nr + 3;
                        std::vector<float> y((size_t) (ys * nt + 8), guard_value);
                        gl_kernels(t).gemm(n, nr, nt, w.data(), w_stride, a.data(), a_stride, y.data() + 4, ys);
                        int bad = 0;
                        for (int64_t i = 0; i < (int64_t) y.size(); ++i) {
                            const int64_t off = i - 4, tok = off / ys, r = off % ys;
                            const bool inside = off >= 0 && tok < nt && r < nr;
                            if (!inside) {
                                if (y[(size_t) i] != guard_value && bad++ < 3) FAIL_CHECK("wrote outside the tile at " << off);
                                continue;
                            }
                            const uint8_t * wr = w.data() + r * w_stride;
                            const uint8_t * ar = a.data() + tok * a_stride;
                            float ref = 0;
                            tr->vec_dot(n, &ref, wr, ar);
                            const double tol = 1e-5 * sum_abs_products(t, wr, ar, n) + 1e-30;
                            if (!(std::fabs((double) y[(size_t) i] - ref) <= tol) && bad++ < 3)
                                FAIL_CHECK("row " << r << " token " << tok << ": " << y[(size_t) i] << " vs " << ref);
                        }
                        CHECK(bad == 0);
                    }
                }
            }
        }
    }
}

TEST_CASE("kernels: axpy matches the reference") {
    LevelGuard guard;
    std::mt19937 rng(3);
    for (gl_cpu_level level : simd_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        for (gl_type t : {GL_TYPE_F32, GL_TYPE_F16, GL_TYPE_BF16}) {
            const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
            for (int64_t n : {1, 7, 8, 9, 33, 1001}) {
                CAPTURE(n);
                std::vector<uint8_t> x = random_row(rng, t, n);
                std::vector<float> y0 = random_floats(rng, n + 1);
                std::vector<float> ref = y0, got = y0;
                const float a = 0.37f;
                gl_kernels_scalar[t].axpy(n, a, x.data(), ref.data());
                gl_kernels(t).axpy(n, a, x.data(), got.data());
                std::vector<float> fx((size_t) n);
                gl_get_type_traits(t)->to_float(x.data(), fx.data(), n);
                for (int64_t i = 0; i < n; ++i) {
                    // one fused rounding instead of two: within an ulp of the terms
                    const double tol = 2.5e-7 * (std::fabs(y0[(size_t) i]) + std::fabs(a * fx[(size_t) i])) + 1e-30;
                    CHECK(std::fabs((double) got[(size_t) i] - ref[(size_t) i]) <= tol);
                }
                CHECK(f32_bits(got[(size_t) n]) == f32_bits(y0[(size_t) n]));  // nothing past the end
            }
        }
    }
}

TEST_CASE("kernels: float ops (dot_f32, rms_norm, softmax, swiglu) match the reference") {
    LevelGuard guard;
    std::mt19937 rng(8);
    const float inf = std::numeric_limits<float>::infinity();
    for (gl_cpu_level level : simd_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        const gl_float_kernels & f = gl_float_ops();
        for (int64_t n : {1, 2, 7, 8, 9, 33, 100, 4096}) {
            CAPTURE(n);
            std::vector<float> x = random_floats(rng, n), w = random_floats(rng, n);
            // dot
            double sabs = 0;
            for (int64_t i = 0; i < n; ++i) sabs += std::fabs((double) x[(size_t) i] * w[(size_t) i]);
            CHECK(std::fabs((double) f.dot_f32(n, x.data(), w.data()) - gl_float_scalar.dot_f32(n, x.data(), w.data())) <= 1e-5 * sabs + 1e-30);
            // rms_norm, with and without weight
            for (const float * wt : {(const float *) w.data(), (const float *) nullptr}) {
                std::vector<float> ref((size_t) n + 1, 3.0f), got((size_t) n + 1, 3.0f);
                gl_float_scalar.rms_norm(x.data(), wt, n, 1e-5f, ref.data());
                f.rms_norm(x.data(), wt, n, 1e-5f, got.data());
                for (int64_t i = 0; i < n; ++i) CHECK(got[(size_t) i] == doctest::Approx(ref[(size_t) i]).epsilon(2e-6));
                CHECK(got[(size_t) n] == 3.0f);
            }
            // swiglu over a wide range of gates (e^-g overflows and underflows at the ends)
            std::vector<float> g = random_floats(rng, n, 20.0f);
            if (n > 4) { g[0] = 100.0f; g[1] = -100.0f; g[2] = -1000.0f; g[3] = 0.0f; }
            std::vector<float> ref((size_t) n + 1, 3.0f), got((size_t) n + 1, 3.0f);
            gl_float_scalar.swiglu(g.data(), x.data(), n, ref.data());
            f.swiglu(g.data(), x.data(), n, got.data());
            for (int64_t i = 0; i < n; ++i) {
                CAPTURE(g[(size_t) i]);
                CHECK(std::fabs(got[(size_t) i] - ref[(size_t) i]) <= 1e-6 * std::fabs(ref[(size_t) i]) + 1e-37);
            }
            CHECK(got[(size_t) n] == 3.0f);
            // softmax: plain, scaled, large inputs, -inf entries (masked positions)
            for (float scale : {1.0f, 0.125f, 30.0f}) {
                CAPTURE(scale);
                std::vector<float> s = random_floats(rng, n, 10.0f);
                if (n > 3) { s[1] = 1000.0f; s[2] = -inf; s[3] = 999.0f; }
                std::vector<float> r1 = s, r2 = s;
                r1.push_back(3.0f);
                r2.push_back(3.0f);
                gl_float_scalar.softmax(r1.data(), n, scale);
                f.softmax(r2.data(), n, scale);
                double total = 0;
                for (int64_t i = 0; i < n; ++i) {
                    CHECK(std::fabs(r2[(size_t) i] - r1[(size_t) i]) <= 2e-6 * r1[(size_t) i] + 1e-44);
                    total += r2[(size_t) i];
                }
                CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
                CHECK(r2[(size_t) n] == 3.0f);
            }
        }
        // The exponential across its whole range, through softmax of {0, v}: e^v / (1 + e^v), down into the
        // subnormal results and up to where the other entry vanishes.
        int bad = 0;
        for (float v = -110.0f; v <= 110.0f; v += 0.0371f) {
            float r1[2] = {0.0f, v}, r2[2] = {0.0f, v};
            gl_float_scalar.softmax(r1, 2, 1.0f);
            f.softmax(r2, 2, 1.0f);
            for (int k = 0; k < 2; ++k) {
                if (!(std::fabs(r2[k] - r1[k]) <= 1e-6 * r1[k] + 3e-45) && bad++ < 5) FAIL_CHECK("v = " << v << ": " << r2[k] << " vs " << r1[k]);
            }
        }
        CHECK(bad == 0);
    }
}

namespace {

// Runs gl_mul_mat for one shape at the active level.
std::vector<float> run_mul_mat(const gl_tensor & w, const std::vector<float> & x, int64_t n_tok) {
    std::vector<uint8_t> scratch(gl_mul_mat_scratch_size(w, n_tok) + 1);
    std::vector<float> y((size_t) (w.ne1 * n_tok));
    gl_mul_mat(w, x.data(), n_tok, y.data(), scratch.data());
    return y;
}

}  // namespace

TEST_CASE("kernels: gl_mul_mat and gl_attention match the scalar level") {
    LevelGuard guard;
    std::mt19937 rng(77);
    struct Shape { int64_t ne0, ne1, n_tok; };
    const Shape shapes[] = {{32, 1, 1}, {32, 17, 3}, {64, 16, 1}, {96, 33, 5}, {256, 100, 9}, {128, 45, 64}, {512, 300, 2}, {4128, 20, 6}, {9632, 17, 1}};
    for (gl_type t : k_types) {
        const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
        for (const Shape & s : shapes) {
            CAPTURE(s.ne0);
            CAPTURE(s.ne1);
            CAPTURE(s.n_tok);
            std::vector<float> wf = random_floats(rng, s.ne0 * s.ne1);
            std::vector<uint8_t> wq(gl_row_size(t, s.ne0) * (size_t) s.ne1);
            gl_get_type_traits(t)->from_float(wf.data(), wq.data(), s.ne0 * s.ne1);
            gl_tensor w = gl_tensor_make(t, s.ne0, s.ne1, wq.data());
            std::vector<float> x = random_floats(rng, s.ne0 * s.n_tok);
            REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
            const std::vector<float> ref = run_mul_mat(w, x, s.n_tok);
            // error scale of each output: Σ |w||x| (dequantized weights, float activations)
            std::vector<float> wd((size_t) (s.ne0 * s.ne1));
            gl_get_type_traits(t)->to_float(wq.data(), wd.data(), s.ne0 * s.ne1);
            for (gl_cpu_level level : simd_levels()) {
                REQUIRE(gl_cpu_level_set(level));
                const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
                const std::vector<float> got = run_mul_mat(w, x, s.n_tok);
                int bad = 0;
                for (int64_t k = 0; k < s.n_tok; ++k) {
                    for (int64_t r = 0; r < s.ne1; ++r) {
                        double sabs = 0;
                        for (int64_t i = 0; i < s.ne0; ++i) sabs += std::fabs((double) wd[(size_t) (r * s.ne0 + i)] * x[(size_t) (k * s.ne0 + i)]);
                        const size_t at = (size_t) (k * s.ne1 + r);
                        if (!(std::fabs(got[at] - ref[at]) <= 2e-5 * sabs + 1e-30) && bad++ < 3)
                            FAIL_CHECK("token " << k << " row " << r << ": " << got[at] << " vs " << ref[at]);
                    }
                }
                CHECK(bad == 0);
            }
        }
    }

    // Attention over F16 and F32 caches, grouped heads, one position and many, a head size that is not a multiple
    // of 8, cache rows with padding.
    struct AShape { int64_t n_head, n_head_kv, head_dim, n_kv; };
    const AShape ashapes[] = {{1, 1, 8, 1}, {4, 2, 64, 7}, {6, 3, 36, 100}, {8, 8, 128, 33}, {2, 1, 5, 3}};
    for (gl_type kv : {GL_TYPE_F16, GL_TYPE_F32}) {
        const std::string kv_name = gl_type_name(kv);
        CAPTURE(kv_name);
        for (const AShape & s : ashapes) {
            CAPTURE(s.head_dim);
            CAPTURE(s.n_kv);
            const int64_t kv_dim = s.n_head_kv * s.head_dim;
            const size_t stride = gl_row_size(kv, kv_dim) + 16;
            std::vector<uint8_t> kc(stride * (size_t) s.n_kv), vc(stride * (size_t) s.n_kv);
            for (int64_t j = 0; j < s.n_kv; ++j) {
                std::vector<float> kf = random_floats(rng, kv_dim), vf = random_floats(rng, kv_dim);
                gl_get_type_traits(kv)->from_float(kf.data(), kc.data() + j * stride, kv_dim);
                gl_get_type_traits(kv)->from_float(vf.data(), vc.data() + j * stride, kv_dim);
            }
            std::vector<float> q = random_floats(rng, s.n_head * s.head_dim, 2.0f);
            gl_kv_view kview{kv, kc.data(), stride}, vview{kv, vc.data(), stride};
            const float scale = 1.0f / std::sqrt((float) s.head_dim);
            std::vector<float> scratch((size_t) (s.n_kv + s.head_dim));
            std::vector<float> ref((size_t) (s.n_head * s.head_dim)), got(ref.size());
            REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
            gl_attention(q.data(), s.n_head, s.n_head_kv, s.head_dim, kview, vview, s.n_kv, scale, ref.data(), scratch.data());
            for (gl_cpu_level level : simd_levels()) {
                REQUIRE(gl_cpu_level_set(level));
                const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
                gl_attention(q.data(), s.n_head, s.n_head_kv, s.head_dim, kview, vview, s.n_kv, scale, got.data(), scratch.data());
                // With an F16 cache the softmax weights are rounded to fp16 before the weighted sum (as ggml does):
                // a weight that lands on the other side of an fp16 rounding boundary moves by 2^-11 relative, so
                // the output may differ by about 1e-3 of Σ|v| there. With F32 the differences are float rounding.
                const double tol = kv == GL_TYPE_F16 ? 1e-3 : 1e-5;
                for (size_t i = 0; i < ref.size(); ++i) CHECK(std::fabs(got[i] - ref[i]) <= tol * 4.0);
            }
        }
    }
}

namespace {

// Greedy decoding (argmax) of n tokens after "Once upon a time" on stories260K, as test_golden.cpp does it.
std::string greedy_text(const ModelFile & mf, int n) {
    Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    LlamaModel model(mf);
    ContextParams cp;
    cp.n_ctx = 256;
    Context ctx(model, cp);
    std::vector<int32_t> tokens = tok.encode("Once upon a time", true);
    Batch b;
    for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], (int32_t) i, 0, i + 1 == tokens.size());
    ctx.decode(b);
    std::string text = tok.decode(std::vector<int32_t>(tokens.begin() + 1, tokens.end()));
    for (int i = 0; i < n; ++i) {
        const float * logits = ctx.logits(ctx.n_logits() - 1);
        int32_t best = 0;
        for (int32_t v = 1; v < tok.n_vocab(); ++v) {
            if (logits[v] > logits[best]) best = v;
        }
        text += tok.token_to_piece(best);
        tokens.push_back(best);
        b.clear();
        b.add(best, (int32_t) tokens.size() - 1, 0, true);
        ctx.decode(b);
    }
    return text;
}

}  // namespace

// At every level the greedy text must equal the scalar level's (exactly: it does on these 100 tokens).
//
// How much margin that has is checked by decoding both levels in lockstep on the scalar level's tokens: at every
// step the argmax must agree, and the logits must agree within a tolerance that depends on what rounds where:
//  - F32 weights, F32 cache: only summation order and FMA differ: logits agree to ~1e-5 (tolerance 1e-4).
//  - an F16 cache: q and the softmax weights are rounded to fp16 (as ggml does); a value that lands on the other
//    side of a rounding boundary moves by 2^-11 relative, and that carries through the layers and positions:
//    ~0.015 measured (tolerance 0.1).
//  - Q4_0 weights: activations are quantized to Q8_0 (8 bits per block); one element rounding the other way moves
//    by a whole quantum: ~0.3 measured (tolerance 1). Text still matches because the smallest top-2 gap (0.02) is
//    not at a step where the logits moved much; where the gap is within twice the difference, a flip would be a
//    legitimate near-tie, and the test names the step.
TEST_CASE("kernels: greedy text of stories260K is the same at every level (Q4_0, F32)") {
    REQUIRE_SHARED();
    LevelGuard guard;
    for (std::string type : {"Q4_0", "F32"}) {
        CAPTURE(type);
        ModelFile mf = load_gguf(shared_path(("golden/stories260K/stories260K-" + type + ".gguf").c_str()));
        REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
        const std::string ref = greedy_text(mf, 100);
        for (gl_cpu_level level : simd_levels()) {
            const std::string level_name = gl_cpu_level_name(level);
            CAPTURE(level_name);
            REQUIRE(gl_cpu_level_set(level));
            CHECK(greedy_text(mf, 100) == ref);
        }
    }
}

TEST_CASE("kernels: stories260K logits at every level stay within tolerance of the scalar level, step by step") {
    REQUIRE_SHARED();
    LevelGuard guard;
    struct Case { const char * type; gl_type kv; float tol; };
    for (const Case & c : {Case{"F32", GL_TYPE_F32, 1e-4f}, Case{"F32", GL_TYPE_F16, 0.1f}, Case{"Q4_0", GL_TYPE_F16, 1.0f}}) {
        const std::string type = c.type, kv_name = gl_type_name(c.kv);
        CAPTURE(type);
        CAPTURE(kv_name);
        ModelFile mf = load_gguf(shared_path(("golden/stories260K/stories260K-" + type + ".gguf").c_str()));
        Tokenizer tok = Tokenizer::from_metadata(mf.meta);
        LlamaModel model(mf);
        ContextParams cp;
        cp.n_ctx = 256;
        cp.kv_type = c.kv;
        for (gl_cpu_level level : simd_levels()) {
            const std::string level_name = gl_cpu_level_name(level);
            CAPTURE(level_name);
            Context cs(model, cp), cl(model, cp);
            std::vector<int32_t> tokens = tok.encode("Once upon a time", true);
            Batch b;
            for (size_t i = 0; i < tokens.size(); ++i) b.add(tokens[i], (int32_t) i, 0, i + 1 == tokens.size());
            float max_diff = 0, min_gap = INFINITY;
            for (int step = 0; step < 100; ++step) {
                CAPTURE(step);
                REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
                cs.decode(b);
                REQUIRE(gl_cpu_level_set(level));
                cl.decode(b);
                const float * ls = cs.logits(cs.n_logits() - 1);
                const float * ll = cl.logits(cl.n_logits() - 1);
                int32_t best = 0, best_l = 0;
                float diff = 0;
                for (int32_t v = 0; v < tok.n_vocab(); ++v) {
                    diff = std::max(diff, std::fabs(ls[v] - ll[v]));
                    if (ls[v] > ls[best]) best = v;
                    if (ll[v] > ll[best_l]) best_l = v;
                }
                float second = -INFINITY;
                for (int32_t v = 0; v < tok.n_vocab(); ++v) {
                    if (v != best) second = std::max(second, ls[v]);
                }
                const float gap = ls[best] - second;
                if (gap > 2 * diff) CHECK(best_l == best);  // otherwise a near-tie: either token is right
                max_diff = std::max(max_diff, diff);
                min_gap = std::min(min_gap, gap);
                tokens.push_back(best);
                b.clear();
                b.add(best, (int32_t) tokens.size() - 1, 0, true);
            }
            MESSAGE(type << " weights, " << kv_name << " cache, " << level_name << ": largest logit difference " << max_diff
                         << ", smallest top-2 gap " << min_gap);
            CHECK(max_diff <= c.tol);
        }
    }
}
