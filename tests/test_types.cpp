// ggml-lite types: fp16/bf16 conversions, every type's round trip and dot product (looping over the traits
// table), Q8_0/Q4_0 known answers from ggml's reference quantizers, and shape/size/name validation.
#include "ggml-lite/types.h"
#include "tests/test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// Every type with self-contained rows (the codebook types, whose rows need their tensor, are tested in test_vq.cpp).
std::vector<gl_type> all_types() {
    std::vector<gl_type> v;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (!gl_get_type_traits((gl_type) t)->vq) v.push_back((gl_type) t);
    }
    return v;
}

// ---- error budgets ---------------------------------------------------------------------------------------------
//
// Stated per type name; a type in the traits table without a budget here fails "types: every type has a budget".
//   float types: |to_float(from_float(x)) - x| <= rel * |x|, or <= abs_floor where the format is subnormal.
//       f32: exact (bit for bit). f16: half an ulp, 2^-11 relative, 2^-25 absolute below 2^-14.
//       bf16: half an ulp, 2^-8 relative.
//   block types: symmetric ones have a step d = amax_block / levels (q8_0: 127; q4_0: 8, signed); min/max
//       ("asym") ones d = (max(x, 0) - min(x, 0)) / levels. Every element is within
//       err_steps * d + (levels + 1) * |d - fp16(d)| of x (the second term: the step is stored as fp16).
//       q8_0: half a step. q4_0: one step (the value opposite the extreme can clamp from code 16 to 15).
//       qB_gG (GPTQ's min/max grid, levels 2^B - 1): half a step.
//       Over a whole tensor, RMSE <= rmse_steps * max|x| / levels: q8_0 RMSE <= max|x|/127/2,
//       q4_0 RMSE <= max|x|/8/2; qB_gG, whose step spans up to 2 max|x| / levels, 0.75 * max|x| / levels.
//   stable: quantizing the dequantized values reproduces the same bytes. Not so for the min/max grid: when fp16
//       rounds the step up, the largest value can take code 2^B - 2, and refitting the dequantized group shrinks
//       the step.
struct Budget {
    const char * name;
    bool   exact;
    double rel, abs_floor;  // float types
    double levels;          // block types (levels == 0: a float type)
    bool   asym;
    double err_steps, rmse_steps;
    bool   stable;
    bool   per_row = false;  // one grid for the whole row (per-row types), not one per block
};

const Budget k_budgets[] = {
    {"f32", true, 0, 0, 0, false, 0, 0, true},
    {"f16", false, 1.0 / 2048, 1.0 / (1 << 25), 0, false, 0, 0, true},
    {"bf16", false, 1.0 / 256, 0, 0, false, 0, 0, true},
    {"q8_0", false, 0, 0, 127, false, 0.5, 0.5, true},
    {"q4_0", false, 0, 0, 8, false, 1.0, 0.5, true},
    {"q4_g128", false, 0, 0, 15, true, 0.5, 0.75, false},
    {"q4_g64", false, 0, 0, 15, true, 0.5, 0.75, false},
    {"q4_g32", false, 0, 0, 15, true, 0.5, 0.75, false},
    {"q3_g128", false, 0, 0, 7, true, 0.5, 0.75, false},
    {"q3_g64", false, 0, 0, 7, true, 0.5, 0.75, false},
    {"q3_g32", false, 0, 0, 7, true, 0.5, 0.75, false},
    {"q2_g128", false, 0, 0, 3, true, 0.5, 0.75, false},
    {"q2_g64", false, 0, 0, 3, true, 0.5, 0.75, false},
    {"q2_g32", false, 0, 0, 3, true, 0.5, 0.75, false},
    // per-row types: GPTQ's min/max grid over the whole row (a8_row: over 255 steps, fp32 scale)
    {"a8_row", false, 0, 0, 255, true, 0.5, 0.75, false, true},
    {"q4_row", false, 0, 0, 15, true, 0.5, 0.75, false, true},
    {"q4_row_a8", false, 0, 0, 15, true, 0.5, 0.75, false, true},
    {"q8_row", false, 0, 0, 255, true, 0.5, 0.75, false, true},
    {"q8_row_a8", false, 0, 0, 255, true, 0.5, 0.75, false, true},
    {"q3_row", false, 0, 0, 7, true, 0.5, 0.75, false, true},
    {"q3_row_a8", false, 0, 0, 7, true, 0.5, 0.75, false, true},
};

const Budget * budget_of(gl_type t) {
    for (const Budget & b : k_budgets) {
        if (strcmp(b.name, gl_type_name(t)) == 0) return &b;
    }
    return nullptr;
}

double fp16_round_err(double d) {
    const float f = (float) d;
    return std::fabs((double) gl_fp16_to_fp32(gl_fp32_to_fp16(f)) - (double) f);
}

// Largest allowed |error| of every element of x after a round trip through type t.
std::vector<double> elem_bounds(gl_type t, const std::vector<float> & x) {
    const Budget * b = budget_of(t);
    const gl_type_traits * tr = gl_get_type_traits(t);
    std::vector<double> out(x.size());
    if (b->levels == 0) {
        for (size_t i = 0; i < x.size(); ++i) out[i] = b->exact ? 0.0 : std::max(b->rel * std::fabs((double) x[i]), b->abs_floor);
        return out;
    }
    const size_t bs = b->per_row ? x.size() : (size_t) tr->block_size;
    for (size_t i0 = 0; i0 < x.size(); i0 += bs) {
        double amax = 0, lo = 0, hi = 0;
        for (size_t j = 0; j < bs; ++j) {
            amax = std::max(amax, std::fabs((double) x[i0 + j]));
            lo = std::min(lo, (double) x[i0 + j]);
            hi = std::max(hi, (double) x[i0 + j]);
        }
        const double d = (b->asym ? hi - lo : amax) / b->levels;
        // 1e-6 * amax: slack for the float arithmetic of the quantizer (x * (1/d) is not exactly x/d).
        const double bound = b->err_steps * d + (b->levels + 1) * fp16_round_err(d) + 1e-6 * amax;
        for (size_t j = 0; j < bs; ++j) out[i0 + j] = bound;
    }
    return out;
}

std::vector<uint8_t> quantize(gl_type t, const std::vector<float> & x) {
    std::vector<uint8_t> q(gl_row_size(t, (int64_t) x.size()));
    gl_get_type_traits(t)->from_float(x.data(), q.data(), (int64_t) x.size());
    return q;
}

std::vector<float> dequantize(gl_type t, const std::vector<uint8_t> & q, size_t n) {
    std::vector<float> y(n);
    gl_get_type_traits(t)->to_float(q.data(), y.data(), (int64_t) n);
    return y;
}

// Test data. Scales stay inside fp16's range (f16 is a target type) and above f32's subnormals.
enum class Dist { Uniform, Normal, Outliers, Large, Tiny, Positive, Sparse };
const Dist k_dists[] = {Dist::Uniform, Dist::Normal, Dist::Outliers, Dist::Large, Dist::Tiny, Dist::Positive, Dist::Sparse};
const char * dist_name(Dist d) {
    static const char * names[] = {"uniform", "normal", "outliers", "large", "tiny", "positive", "sparse"};
    return names[(int) d];
}

std::vector<float> make_data(Dist dist, size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f), u01(0.0f, 1.0f);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x(n);
    for (size_t i = 0; i < n; ++i) {
        switch (dist) {
            case Dist::Uniform: x[i] = u(rng); break;
            case Dist::Normal: x[i] = g(rng); break;
            case Dist::Outliers: x[i] = g(rng) * (u01(rng) < 0.02f ? 50.0f : 1.0f); break;
            case Dist::Large: x[i] = 1000.0f * u(rng); break;
            case Dist::Tiny: x[i] = 1e-3f * g(rng); break;
            case Dist::Positive: x[i] = u01(rng); break;
            case Dist::Sparse: x[i] = u01(rng) < 0.9f ? 0.0f : g(rng); break;
        }
    }
    return x;
}

// Element counts: one block, a few blocks, an odd number, many.
std::vector<int64_t> sizes_for(gl_type t) {
    const int64_t bs = gl_get_type_traits(t)->block_size;
    return {bs, 2 * bs, 7 * bs, 33 * bs, 32 * 64};
}

bool same_float(float a, float b) {
    if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
    return f32_bits(a) == f32_bits(b);
}

}  // namespace

// ---- the traits table ------------------------------------------------------------------------------------------

TEST_CASE("types: the traits table is complete and consistent") {
    for (gl_type t : all_types()) {
        const gl_type_traits * tr = gl_get_type_traits(t);
        REQUIRE(tr != nullptr);
        const std::string type = tr->name;
        CAPTURE(type);
        CHECK(gl_type_valid(t));
        CHECK(std::string(gl_type_name(t)) == tr->name);
        for (const char * p = tr->name; *p; ++p) CHECK(!(*p >= 'A' && *p <= 'Z'));
        CHECK(tr->block_size >= 1);
        CHECK(tr->type_size >= 1);
        CHECK(tr->is_quantized == (tr->block_size > 1));
        CHECK((tr->to_float != nullptr));
        CHECK((tr->from_float != nullptr));
        CHECK((tr->vec_dot != nullptr));
        const gl_type_traits * vt = gl_get_type_traits(tr->vec_dot_type);
        REQUIRE(vt != nullptr);
        // The activation format's rows must line up with the weight's blocks.
        CHECK(tr->block_size % vt->block_size == 0);
        CHECK(gl_row_size(t, tr->block_size * 3) == tr->row_header + 3 * tr->type_size);
    }
    CHECK(gl_get_type_traits(GL_TYPE_COUNT) == nullptr);
    CHECK(gl_get_type_traits((gl_type) 99) == nullptr);
    CHECK(!gl_type_valid(GL_TYPE_COUNT));
    CHECK(!gl_type_valid(0xffffffffu));
    CHECK(std::string(gl_type_name((gl_type) 99)) == "invalid");
    // Stored in files: the values never change.
    CHECK(GL_TYPE_F32 == 0);
    CHECK(GL_TYPE_F16 == 1);
    CHECK(GL_TYPE_BF16 == 2);
    CHECK(GL_TYPE_Q8_0 == 3);
    CHECK(GL_TYPE_Q4_0 == 4);
}

TEST_CASE("types: every type has a stated error budget") {
    for (gl_type t : all_types()) {
        const std::string type = gl_type_name(t);
        CAPTURE(type);
        const Budget * b = budget_of(t);
        REQUIRE(b != nullptr);
        CHECK((b->levels > 0) == gl_get_type_traits(t)->is_quantized);
    }
}

// ---- fp16 ------------------------------------------------------------------------------------------------------

TEST_CASE("types: fp16 -> fp32 table equals the bit-level reference for all 65536 values") {
    size_t nan_count = 0;
    for (uint32_t h = 0; h < 65536; ++h) {
        const float a = gl_fp16_to_fp32((uint16_t) h), b = gl_fp16_to_fp32_ref((uint16_t) h);
        if (!same_float(a, b)) {
            CAPTURE(h);
            FAIL_CHECK("table and reference differ");
        }
        if (std::isnan(b)) ++nan_count;
    }
    CHECK(nan_count == 2 * 1023);  // exponent 31 with a non-zero mantissa, both signs
    // A few values by hand.
    CHECK(gl_fp16_to_fp32(0x3c00) == 1.0f);
    CHECK(gl_fp16_to_fp32(0xc000) == -2.0f);
    CHECK(gl_fp16_to_fp32(0x7bff) == 65504.0f);
    CHECK(gl_fp16_to_fp32(0x0400) == std::ldexp(1.0f, -14));  // smallest normal
    CHECK(gl_fp16_to_fp32(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
    CHECK(gl_fp16_to_fp32(0x03ff) == std::ldexp(1023.0f, -24));
    CHECK(gl_fp16_to_fp32(0x7c00) == INFINITY);
    CHECK(gl_fp16_to_fp32(0xfc00) == -INFINITY);
    CHECK(f32_bits(gl_fp16_to_fp32(0x8000)) == 0x80000000u);  // -0
    CHECK(std::isnan(gl_fp16_to_fp32(0x7e00)));
    CHECK(std::isnan(gl_fp16_to_fp32(0xfc01)));
}

TEST_CASE("types: fp32 -> fp16 round-trips every fp16 value; NaN stays NaN") {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = gl_fp16_to_fp32((uint16_t) h);
        const uint16_t back = gl_fp32_to_fp16(f);
        if (std::isnan(f)) {
            if (!((back & 0x7c00) == 0x7c00 && (back & 0x3ff) != 0)) {
                CAPTURE(h);
                FAIL_CHECK("NaN did not stay NaN");
            }
            CHECK((back & 0x8000) == (h & 0x8000));
        } else if (back != h) {
            CAPTURE(h);
            CAPTURE(back);
            FAIL_CHECK("fp16 value does not round-trip");
        }
    }
    // NaNs whose payload is only in the low bits (would become inf if truncated), both signs.
    for (uint32_t bits : {0x7f800001u, 0xff800001u, 0x7fc00000u, 0x7fffffffu, 0x7f801000u}) {
        CAPTURE(bits);
        const uint16_t h = gl_fp32_to_fp16(bits_f32(bits));
        CHECK((h & 0x7c00) == 0x7c00);
        CHECK((h & 0x3ff) != 0);
    }
}

TEST_CASE("types: fp32 -> fp16 rounds to nearest, ties to even, on every halfway point") {
    // Between every pair of adjacent finite fp16 values (subnormals included), the midpoint goes to the even
    // code, and the floats just below and just above go down and up.
    for (uint32_t h = 0; h < 0x7bff; ++h) {
        const double lo = gl_fp16_to_fp32((uint16_t) h), hi = gl_fp16_to_fp32((uint16_t) (h + 1));
        const float mid = (float) ((lo + hi) / 2);  // exact: 12 significant bits
        REQUIRE((double) mid == (lo + hi) / 2);
        const uint16_t even = (h & 1) ? (uint16_t) (h + 1) : (uint16_t) h;
        const uint16_t got_mid = gl_fp32_to_fp16(mid);
        const uint16_t got_below = gl_fp32_to_fp16(std::nextafter(mid, 0.0f));
        const uint16_t got_above = gl_fp32_to_fp16(std::nextafter(mid, INFINITY));
        const uint16_t got_neg = gl_fp32_to_fp16(-mid);
        if (got_mid != even || got_below != h || got_above != h + 1 || got_neg != (even | 0x8000)) {
            CAPTURE(h);
            CAPTURE(got_mid);
            CAPTURE(got_below);
            CAPTURE(got_above);
            FAIL_CHECK("fp16 rounding of a halfway case is wrong");
        }
    }
    CHECK(gl_fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);                         // tie, 1.0 is even
    CHECK(gl_fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)) == 0x3c02);                     // tie, up to even
    // Random floats in range: the result is the nearer neighbour.
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> e(-26.0f, 16.0f);
    for (int i = 0; i < 20000; ++i) {
        const float f = std::exp2(e(rng)) * (rng() & 1 ? 1.0f : -1.0f);
        if (std::fabs(f) >= 65504.0f) continue;
        const uint16_t h = gl_fp32_to_fp16(f);
        const double v = gl_fp16_to_fp32(h);
        const double err = std::fabs(v - f);
        for (int step : {-1, 1}) {
            const uint32_t mag = (h & 0x7fff) + step;
            if ((h & 0x7fff) == 0 && step < 0) continue;
            if (mag >= 0x7c00) continue;
            const double other = gl_fp16_to_fp32((uint16_t) ((h & 0x8000) | mag));
            if (std::fabs(other - f) < err) {
                CAPTURE(f);
                FAIL_CHECK("fp16 conversion did not pick the nearest value");
            }
        }
    }
}

TEST_CASE("types: fp32 -> fp16 overflow, infinities and subnormals") {
    CHECK(gl_fp32_to_fp16(65504.0f) == 0x7bff);
    CHECK(gl_fp32_to_fp16(std::nextafter(65520.0f, 0.0f)) == 0x7bff);  // just below the midpoint to 65536
    CHECK(gl_fp32_to_fp16(65520.0f) == 0x7c00);                        // the midpoint ties to even: inf
    CHECK(gl_fp32_to_fp16(-65520.0f) == 0xfc00);
    CHECK(gl_fp32_to_fp16(1e10f) == 0x7c00);
    CHECK(gl_fp32_to_fp16(3.4e38f) == 0x7c00);
    CHECK(gl_fp32_to_fp16(INFINITY) == 0x7c00);
    CHECK(gl_fp32_to_fp16(-INFINITY) == 0xfc00);
    // Subnormals: 2^-24 is the smallest; 2^-25 is the tie between 0 and it and goes to 0 (even).
    CHECK(gl_fp32_to_fp16(std::ldexp(1.0f, -24)) == 0x0001);
    CHECK(gl_fp32_to_fp16(std::ldexp(1.0f, -25)) == 0x0000);
    CHECK(gl_fp32_to_fp16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)) == 0x0001);
    CHECK(gl_fp32_to_fp16(std::ldexp(3.0f, -25)) == 0x0002);  // 1.5 units: tie to even 2
    CHECK(gl_fp32_to_fp16(std::ldexp(5.0f, -25)) == 0x0002);  // 2.5 units: tie to even 2
    CHECK(gl_fp32_to_fp16(-std::ldexp(1.0f, -24)) == 0x8001);
    CHECK(gl_fp32_to_fp16(1e-10f) == 0x0000);
    CHECK(gl_fp32_to_fp16(-1e-10f) == 0x8000);  // sign kept
    CHECK(gl_fp32_to_fp16(-0.0f) == 0x8000);
    CHECK(gl_fp32_to_fp16(std::ldexp(1.0f, -14)) == 0x0400);                              // smallest normal
    CHECK(gl_fp32_to_fp16(std::ldexp(1023.5f, -24)) == 0x0400);                           // rounds up into it
    CHECK(gl_fp32_to_fp16(std::nextafter(std::ldexp(1023.5f, -24), 0.0f)) == 0x03ff);
    CHECK(gl_fp32_to_fp16(std::ldexp(1.0f, -140)) == 0x0000);  // fp32 subnormal
}

// ---- bf16 ------------------------------------------------------------------------------------------------------

TEST_CASE("types: bf16 round trip, round to nearest even, NaN stays NaN") {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = gl_bf16_to_fp32((uint16_t) h);
        CHECK_MESSAGE(f32_bits(f) == h << 16, h);
        const uint16_t back = gl_fp32_to_bf16(f);
        const bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f) != 0;
        if (nan) {
            if (!std::isnan(gl_bf16_to_fp32(back))) FAIL_CHECK("bf16 NaN did not stay NaN: " << h);
        } else if (back != h) {
            FAIL_CHECK("bf16 value does not round-trip: " << h);
        }
        if (nan || h == 0x7f7f || h == 0xff7f) continue;
        // Halfway to the next bf16 value: ties to even; one bit below rounds down, one above rounds up.
        const uint16_t even = (h & 1) ? (uint16_t) (h + 1) : (uint16_t) h;
        if ((h & 0x7fff) == 0x7f80) continue;  // inf: no next value
        const uint16_t got_mid = gl_fp32_to_bf16(bits_f32((h << 16) | 0x8000));
        const uint16_t got_below = gl_fp32_to_bf16(bits_f32((h << 16) | 0x7fff));
        const uint16_t got_above = gl_fp32_to_bf16(bits_f32((h << 16) | 0x8001));
        if (got_mid != even || got_below != h || got_above != (uint16_t) (h + 1)) FAIL_CHECK("bf16 rounding is wrong at " << h);
    }
    // The largest finite value's midpoint to the next (inf) ties to even: inf, as IEEE does.
    CHECK(gl_fp32_to_bf16(bits_f32(0x7f7f8000u)) == 0x7f80);
    CHECK(gl_fp32_to_bf16(bits_f32(0x7f7f7fffu)) == 0x7f7f);
    CHECK(gl_fp32_to_bf16(INFINITY) == 0x7f80);
    CHECK(gl_fp32_to_bf16(-INFINITY) == 0xff80);
    for (uint32_t bits : {0x7f800001u, 0xff800001u, 0x7fc00000u, 0x7fffffffu, 0x7f80ffffu}) {
        const uint16_t h = gl_fp32_to_bf16(bits_f32(bits));
        CHECK_MESSAGE(std::isnan(gl_bf16_to_fp32(h)), bits);
    }
    CHECK(gl_fp32_to_bf16(1.0f) == 0x3f80);
    CHECK(gl_fp32_to_bf16(-2.5f) == 0xc020);
}

// ---- every type: round trip ------------------------------------------------------------------------------------

TEST_CASE("types: from_float -> to_float stays within each type's budget (every type, several distributions)") {
    uint32_t seed = 100;
    for (gl_type t : all_types()) {
        const Budget * b = budget_of(t);
        REQUIRE(b != nullptr);
        for (Dist dist : k_dists) {
            for (int64_t n : sizes_for(t)) {
                const std::string type = gl_type_name(t);
                CAPTURE(type);
                const std::string distribution = dist_name(dist);
                CAPTURE(distribution);
                CAPTURE(n);
                const std::vector<float> x = make_data(dist, (size_t) n, seed++);
                const std::vector<uint8_t> q = quantize(t, x);
                CHECK(q.size() == gl_row_size(t, n));
                const std::vector<float> y = dequantize(t, q, (size_t) n);
                const std::vector<double> bound = elem_bounds(t, x);
                double se = 0, amax = 0;
                size_t bad = 0;
                for (size_t i = 0; i < (size_t) n; ++i) {
                    const double err = std::fabs((double) y[i] - (double) x[i]);
                    if (!std::isfinite(y[i]) || err > bound[i]) ++bad;
                    se += err * err;
                    amax = std::max(amax, std::fabs((double) x[i]));
                }
                CHECK(bad == 0);
                if (b->exact) CHECK(memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0);
                if (b->levels > 0) {
                    const double rmse = std::sqrt(se / (double) n);
                    CHECK(rmse <= b->rmse_steps * amax / b->levels);
                }
                // Quantizing the dequantized values again reproduces the same bytes (the grid is stable).
                if (b->stable) CHECK(quantize(t, y) == q);
            }
        }
    }
}

TEST_CASE("types: zeros, constants and single extremes quantize without NaN for every type") {
    for (gl_type t : all_types()) {
        const std::string type = gl_type_name(t);
        CAPTURE(type);
        const size_t n = (size_t) gl_get_type_traits(t)->block_size * 2;
        for (float c : {0.0f, -0.0f, 1.0f, -3.5f, 1e-30f}) {
            std::vector<float> x(n, c);
            x[n - 1] = c * 2;  // second block: a different maximum
            const std::vector<float> y = dequantize(t, quantize(t, x), n);
            const std::vector<double> bound = elem_bounds(t, x);
            for (size_t i = 0; i < n; ++i) {
                CHECK(std::isfinite(y[i]));
                CHECK(std::fabs((double) y[i] - (double) x[i]) <= bound[i] + 1e-30);
            }
        }
    }
}

// ---- Q8_0 / Q4_0 known answers (ggml's quantize_row_q8_0_ref / quantize_row_q4_0_ref, worked by hand) ---------

namespace {
gl_block_q8_0 q8_block(const std::vector<float> & x) {
    REQUIRE(x.size() == GL_QK8_0);
    gl_block_q8_0 b;
    gl_get_type_traits(GL_TYPE_Q8_0)->from_float(x.data(), &b, GL_QK8_0);
    return b;
}
gl_block_q4_0 q4_block(const std::vector<float> & x) {
    REQUIRE(x.size() == GL_QK4_0);
    gl_block_q4_0 b;
    gl_get_type_traits(GL_TYPE_Q4_0)->from_float(x.data(), &b, GL_QK4_0);
    return b;
}
}  // namespace

TEST_CASE("types: Q8_0 quantizer is bit-exact with ggml on hand-computed blocks") {
    SUBCASE("0..31: d = 31/127 -> fp16 0x33D0, q = round(j * 127/31)") {
        std::vector<float> x(32);
        for (int j = 0; j < 32; ++j) x[j] = (float) j;
        const gl_block_q8_0 b = q8_block(x);
        CHECK(b.d == 0x33d0);  // 31/127 = 0.244094 -> 2^-3 * (1 + 976/1024) = 0.244140625
        const int8_t want[32] = {0, 4, 8, 12, 16, 20, 25, 29, 33, 37, 41, 45, 49, 53, 57, 61,
                                 66, 70, 74, 78, 82, 86, 90, 94, 98, 102, 107, 111, 115, 119, 123, 127};
        for (int j = 0; j < 32; ++j) CHECK_MESSAGE(b.qs[j] == want[j], j);
        std::vector<float> y(32);
        gl_get_type_traits(GL_TYPE_Q8_0)->to_float(&b, y.data(), 32);
        CHECK(y[31] == 127 * 0.244140625f);
        CHECK(y[1] == 4 * 0.244140625f);
    }
    SUBCASE("2j-40 (-40..22): the largest magnitude is negative and maps to -127") {
        std::vector<float> x(32);
        for (int j = 0; j < 32; ++j) x[j] = (float) (2 * j - 40);
        const gl_block_q8_0 b = q8_block(x);
        CHECK(b.d == 0x350a);  // 40/127 = 0.314961 -> 2^-2 * (1 + 266/1024)
        const int8_t want[32] = {-127, -121, -114, -108, -102, -95, -89, -83, -76, -70, -64, -57, -51, -44, -38, -32,
                                 -25, -19, -13, -6, 0, 6, 13, 19, 25, 32, 38, 44, 51, 57, 64, 70};
        for (int j = 0; j < 32; ++j) CHECK_MESSAGE(b.qs[j] == want[j], j);
    }
    SUBCASE("ties round half away from zero (roundf), not to even") {
        std::vector<float> x(32, 0.0f);
        x[0] = 127.0f;  // d = 1 exactly, 1/d = 1
        x[1] = 2.5f, x[2] = -2.5f, x[3] = 0.5f, x[4] = -0.5f, x[5] = 1.5f, x[6] = -1.5f, x[7] = -127.0f;
        const gl_block_q8_0 b = q8_block(x);
        CHECK(b.d == 0x3c00);
        CHECK(b.qs[0] == 127);
        CHECK(b.qs[1] == 3);
        CHECK(b.qs[2] == -3);
        CHECK(b.qs[3] == 1);
        CHECK(b.qs[4] == -1);
        CHECK(b.qs[5] == 2);
        CHECK(b.qs[6] == -2);
        CHECK(b.qs[7] == -127);
        CHECK(b.qs[8] == 0);
    }
    SUBCASE("all zero: d = 0, codes 0, no NaN") {
        const gl_block_q8_0 b = q8_block(std::vector<float>(32, 0.0f));
        CHECK(b.d == 0x0000);
        for (int j = 0; j < 32; ++j) CHECK(b.qs[j] == 0);
        std::vector<float> y(32, 1.0f);
        gl_get_type_traits(GL_TYPE_Q8_0)->to_float(&b, y.data(), 32);
        for (float v : y) CHECK(v == 0.0f);
    }
    SUBCASE("two blocks are quantized independently, laid out back to back (34 bytes each)") {
        std::vector<float> x(64, 0.0f);
        for (int j = 0; j < 32; ++j) x[j] = (float) j;
        x[32 + 5] = -127.0f;
        std::vector<uint8_t> q(68);
        gl_get_type_traits(GL_TYPE_Q8_0)->from_float(x.data(), q.data(), 64);
        CHECK(q[0] == 0xd0);  // d little-endian
        CHECK(q[1] == 0x33);
        CHECK((int8_t) q[2 + 31] == 127);
        CHECK(q[34] == 0x00);
        CHECK(q[35] == 0x3c);  // second block d = 1.0
        CHECK((int8_t) q[36 + 5] == -127);
    }
}

TEST_CASE("types: Q4_0 quantizer is bit-exact with ggml on hand-computed blocks") {
    SUBCASE("j-24 (-24..7): the largest magnitude is negative, d = -24/-8 = +3") {
        std::vector<float> x(32);
        for (int j = 0; j < 32; ++j) x[j] = (float) (j - 24);
        const gl_block_q4_0 b = q4_block(x);
        CHECK(b.d == 0x4200);  // 3.0
        // code = trunc(x/3 + 8.5): low nibbles j = 0..15, high nibbles j = 16..31.
        const uint8_t want[16] = {0x50, 0x60, 0x61, 0x61, 0x71, 0x72, 0x72, 0x82, 0x83, 0x83, 0x93, 0x94, 0x94, 0xa4, 0xa5, 0xa5};
        for (int j = 0; j < 16; ++j) CHECK_MESSAGE(b.qs[j] == want[j], j);
        std::vector<float> y(32);
        gl_get_type_traits(GL_TYPE_Q4_0)->to_float(&b, y.data(), 32);
        CHECK(y[0] == -24.0f);  // the extreme is exact: code 0 -> -8 * d
        CHECK(y[24] == 0.0f);   // code 8
        CHECK(y[31] == 6.0f);   // code 10
    }
    SUBCASE("0..31: the largest magnitude is positive, d = 31/-8 = -3.875") {
        std::vector<float> x(32);
        for (int j = 0; j < 32; ++j) x[j] = (float) j;
        const gl_block_q4_0 b = q4_block(x);
        CHECK(b.d == 0xc3c0);  // -3.875
        const uint8_t want[16] = {0x48, 0x48, 0x37, 0x37, 0x37, 0x37, 0x26, 0x26, 0x26, 0x26, 0x15, 0x15, 0x15, 0x15, 0x04, 0x04};
        for (int j = 0; j < 16; ++j) CHECK_MESSAGE(b.qs[j] == want[j], j);
        std::vector<float> y(32);
        gl_get_type_traits(GL_TYPE_Q4_0)->to_float(&b, y.data(), 32);
        CHECK(y[31] == 31.0f);
        CHECK(y[0] == 0.0f);
    }
    SUBCASE("the value opposite the extreme clamps to code 15 (not 16)") {
        std::vector<float> x(32, 0.0f);
        x[0] = 8.0f;   // first of the two largest magnitudes wins: d = 8/-8 = -1
        x[1] = -8.0f;  // -8 * -1 + 8.5 = 16.5 -> 16 -> clamped to 15
        const gl_block_q4_0 b = q4_block(x);
        CHECK(b.d == 0xbc00);
        CHECK(b.qs[0] == 0x80);  // code 0 | code 8 << 4
        CHECK(b.qs[1] == 0x8f);  // code 15 | code 8 << 4
        for (int j = 2; j < 16; ++j) CHECK(b.qs[j] == 0x88);
        // Tie on magnitude, other order: the negative comes first, d = +1.
        std::swap(x[0], x[1]);
        const gl_block_q4_0 b2 = q4_block(x);
        CHECK(b2.d == 0x3c00);
        CHECK(b2.qs[0] == 0x80);
        CHECK(b2.qs[1] == 0x8f);
    }
    SUBCASE("all zero: d = -0 (0/-8, fp16 0x8000), codes 8, dequantizes to zeros without NaN") {
        const gl_block_q4_0 b = q4_block(std::vector<float>(32, 0.0f));
        CHECK(b.d == 0x8000);
        for (int j = 0; j < 16; ++j) CHECK(b.qs[j] == 0x88);
        std::vector<float> y(32, 1.0f);
        gl_get_type_traits(GL_TYPE_Q4_0)->to_float(&b, y.data(), 32);
        for (float v : y) CHECK(v == 0.0f);
    }
}

// ---- every type: dot product -----------------------------------------------------------------------------------

TEST_CASE("types: vec_dot of every type against a double dot of the dequantized weights and float activations") {
    uint32_t seed = 5000;
    for (gl_type t : all_types()) {
        const gl_type_traits * tr = gl_get_type_traits(t);
        const gl_type vt = tr->vec_dot_type;
        const gl_type_traits * vtr = gl_get_type_traits(vt);
        std::vector<int64_t> ns = {tr->block_size, 3 * tr->block_size, 7 * tr->block_size, 33 * tr->block_size, 32 * 128};
        for (int64_t n : ns) {
            for (Dist dist : {Dist::Uniform, Dist::Normal, Dist::Outliers, Dist::Positive}) {
                const std::string type = gl_type_name(t);
                CAPTURE(type);
                CAPTURE(n);
                const std::string distribution = dist_name(dist);
                CAPTURE(distribution);
                const std::vector<float> w = make_data(dist, (size_t) n, seed++);
                const std::vector<float> a = make_data(Dist::Normal, (size_t) n, seed++);
                const std::vector<uint8_t> wq = quantize(t, w);
                const std::vector<uint8_t> aq = quantize(vt, a);
                const std::vector<float> wd = dequantize(t, wq, (size_t) n);
                const std::vector<float> ad = dequantize(vt, aq, (size_t) n);
                float s = NAN;
                tr->vec_dot(n, &s, wq.data(), aq.data());
                REQUIRE(std::isfinite(s));

                // 1. The kernel's arithmetic: against the exact dot of both dequantized operands.
                double exact = 0, mag = 0;
                for (int64_t i = 0; i < n; ++i) {
                    exact += (double) wd[i] * (double) ad[i];
                    mag += std::fabs((double) wd[i] * (double) ad[i]);
                }
                CHECK(std::fabs((double) s - exact) <= 2e-6 * mag * std::max(1.0, std::sqrt((double) n / vtr->block_size)) + 1e-30);

                // 2. Against float activations: the activation format's round-trip budget bounds the difference
                //    (plus the kernel's float arithmetic, as above).
                double ref = 0, tol = 0, mag2 = 0;
                const std::vector<double> abound = elem_bounds(vt, a);
                for (int64_t i = 0; i < n; ++i) {
                    ref += (double) wd[i] * (double) a[i];
                    tol += std::fabs((double) wd[i]) * abound[i];
                    mag2 += std::fabs((double) wd[i] * (double) a[i]);
                }
                tol += 2e-5 * mag2;
                CHECK(std::fabs((double) s - ref) <= tol);
            }
        }
    }
}

// ---- sizes and names -------------------------------------------------------------------------------------------

TEST_CASE("types: gl_nbytes_checked accepts valid shapes with the exact size and rejects bad ones") {
    for (gl_type t : all_types()) {
        const gl_type_traits * tr = gl_get_type_traits(t);
        const std::string type = tr->name;
        CAPTURE(type);
        const int64_t bs = tr->block_size;
        const size_t ts = tr->type_size, h = tr->row_header;  // h: per-row types' header, once per row
        size_t out = 12345;

        // Valid: 1..4 dims, the exact size.
        const int64_t a1[] = {bs};
        REQUIRE(gl_nbytes_checked(t, a1, 1, &out));
        CHECK(out == h + ts);
        const int64_t a2[] = {4096, 11008};
        REQUIRE(gl_nbytes_checked(t, a2, 2, &out));
        CHECK(out == (h + (size_t) (4096 / bs) * ts) * 11008);
        CHECK(out == gl_row_size(t, 4096) * 11008);
        const int64_t a4[] = {bs * 5, 3, 2, 7};
        REQUIRE(gl_nbytes_checked(t, a4, 4, &out));
        CHECK(out == (h + 5 * ts) * 3 * 2 * 7);
        const int64_t a3[] = {32 * bs, 1, 1};
        REQUIRE(gl_nbytes_checked(t, a3, 3, &out));
        CHECK(out == h + 32 * ts);

        // Zero or negative dimensions.
        for (int64_t bad : {(int64_t) 0, (int64_t) -1, (int64_t) -32, INT64_MIN}) {
            CAPTURE(bad);
            const int64_t b0[] = {bad, 4};
            CHECK(!gl_nbytes_checked(t, b0, 2, &out));
            const int64_t b1[] = {32, bad};
            CHECK(!gl_nbytes_checked(t, b1, 2, &out));
            const int64_t b3[] = {32, 2, 2, bad};
            CHECK(!gl_nbytes_checked(t, b3, 4, &out));
        }
        // Rows that are not a whole number of blocks.
        if (bs > 1) {
            for (int64_t ne0 : {bs - 1, bs + 1, 3 * bs / 2, (int64_t) 1}) {
                const int64_t b[] = {ne0, 8};
                CHECK(!gl_nbytes_checked(t, b, 2, &out));
            }
        }
        // Dimension counts outside 1..4.
        const int64_t five[] = {bs, 1, 1, 1, 1};
        CHECK(!gl_nbytes_checked(t, five, 5, &out));
        CHECK(!gl_nbytes_checked(t, five, 0, &out));
        CHECK(!gl_nbytes_checked(t, five, -1, &out));
        // Overflowing products, and single dims beyond any real tensor.
        const int64_t o2[] = {(int64_t) 1 << 40, (int64_t) 1 << 40};
        CHECK(!gl_nbytes_checked(t, o2, 2, &out));
        const int64_t o4[] = {(int64_t) 1 << 20, (int64_t) 1 << 20, (int64_t) 1 << 20, (int64_t) 1 << 20};
        CHECK(!gl_nbytes_checked(t, o4, 4, &out));
        const int64_t o1[] = {(int64_t) 1 << 60};
        CHECK(!gl_nbytes_checked(t, o1, 1, &out));
        const int64_t omax[] = {INT64_MAX - (INT64_MAX % bs), 2};
        CHECK(!gl_nbytes_checked(t, omax, 2, &out));
        const int64_t wrap[] = {bs * ((int64_t) 1 << 32), (int64_t) 1 << 32};  // 2^64 * ts wraps a 64-bit product
        CHECK(!gl_nbytes_checked(t, wrap, 2, &out));
    }
    // Hand-computed sizes of a 4096 x 4096 matrix.
    const int64_t sq[] = {4096, 4096};
    size_t out = 0;
    REQUIRE(gl_nbytes_checked(GL_TYPE_F32, sq, 2, &out));
    CHECK(out == 67108864u);
    REQUIRE(gl_nbytes_checked(GL_TYPE_F16, sq, 2, &out));
    CHECK(out == 33554432u);
    REQUIRE(gl_nbytes_checked(GL_TYPE_BF16, sq, 2, &out));
    CHECK(out == 33554432u);
    REQUIRE(gl_nbytes_checked(GL_TYPE_Q8_0, sq, 2, &out));
    CHECK(out == 17825792u);  // 128 blocks * 34 bytes * 4096 rows
    REQUIRE(gl_nbytes_checked(GL_TYPE_Q4_0, sq, 2, &out));
    CHECK(out == 9437184u);  // 128 blocks * 18 bytes * 4096 rows
    // An unknown type.
    CHECK(!gl_nbytes_checked((gl_type) 99, sq, 2, &out));
    CHECK(!gl_nbytes_checked(GL_TYPE_COUNT, sq, 2, &out));
}

TEST_CASE("types: gl_type_from_name round-trips every name, any case, and rejects unknown names") {
    for (gl_type t : all_types()) {
        const std::string name = gl_type_name(t);
        CAPTURE(name);
        gl_type got = (gl_type) 77;
        REQUIRE(gl_type_from_name(name.c_str(), &got));
        CHECK(got == t);
        std::string upper = name, mixed = name;
        for (char & c : upper) c = (char) toupper((unsigned char) c);
        for (size_t i = 0; i < mixed.size(); i += 2) mixed[i] = (char) toupper((unsigned char) mixed[i]);
        got = (gl_type) 77;
        REQUIRE(gl_type_from_name(upper.c_str(), &got));
        CHECK(got == t);
        got = (gl_type) 77;
        REQUIRE(gl_type_from_name(mixed.c_str(), &got));
        CHECK(got == t);
        // Prefixes, suffixes and padding are not the name.
        gl_type untouched = (gl_type) 77;
        CHECK(!gl_type_from_name((name + " ").c_str(), &untouched));
        CHECK(!gl_type_from_name((" " + name).c_str(), &untouched));
        CHECK(!gl_type_from_name((name + "x").c_str(), &untouched));
        CHECK(!gl_type_from_name(name.substr(0, name.size() - 1).c_str(), &untouched));
        CHECK(untouched == (gl_type) 77);
    }
    gl_type got = (gl_type) 77;
    for (const char * bad : {"", "q4_1", "q4_k", "Q4_K", "fp16", "float", "int8", "q8", "q80", "f64", "invalid"}) {
        const std::string bad_name = bad;
        CAPTURE(bad_name);
        CHECK(!gl_type_from_name(bad, &got));
    }
    CHECK(got == (gl_type) 77);
}
