// SIMD kernels of the uniform integer types q<b>_g<g> (ggml-lite/cpu/intq_avx2.cpp) against the scalar reference,
// at every dispatch level this CPU supports. Dot products and gemm may differ by summation order (tolerance relative
// to Σ |terms|); to_float must be bit-identical.
#include "tests/test_util.h"

#include "ggml-lite/cpu.h"
#include "ggml-lite/ops.h"
#include "ggml-lite/types.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

struct IntqLevelGuard {
    gl_cpu_level saved = gl_cpu_level_get();
    ~IntqLevelGuard() { gl_cpu_level_set(saved); }
};

std::vector<gl_cpu_level> intq_simd_levels() {
    std::vector<gl_cpu_level> out;
    for (int l = GL_CPU_SCALAR + 1; l <= (int) gl_cpu_max_level(); ++l) out.push_back((gl_cpu_level) l);
    if (out.empty()) MESSAGE("this CPU has no SIMD dispatch level: only the scalar reference runs");
    return out;
}

// The uniform integer types, from the registry.
std::vector<gl_type> intq_types() {
    std::vector<gl_type> out;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t)
        if (gl_get_type_traits((gl_type) t)->intq) out.push_back((gl_type) t);
    return out;
}

std::vector<float> intq_random_floats(std::mt19937 & rng, int64_t n, float scale) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v((size_t) n);
    for (float & x : v) x = d(rng);
    return v;
}

// A row from the reference quantizer with about a third of its blocks' zero points and code bytes made random.
std::vector<uint8_t> intq_random_row(std::mt19937 & rng, gl_type t, int64_t n) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    int bits = 0, group = 0;
    REQUIRE(gl_intq_info(t, &bits, &group));
    std::vector<float> f = intq_random_floats(rng, n, 1.0f);
    std::vector<uint8_t> row(gl_row_size(t, n));
    tr->from_float(f.data(), row.data(), n);
    for (int64_t b = 0; b < n / tr->block_size; ++b) {
        if (rng() % 3 != 0) continue;
        uint8_t * blk = row.data() + b * tr->type_size;
        blk[2] = (uint8_t) (rng() % (1u << bits));
        for (size_t j = 3; j < tr->type_size; ++j) blk[j] = (uint8_t) rng();
    }
    return row;
}

// Q8_0 activations of n elements from the scalar level's quantizer.
std::vector<uint8_t> intq_random_act(std::mt19937 & rng, int64_t n) {
    std::vector<float> f = intq_random_floats(rng, n, 2.0f);
    std::vector<uint8_t> row(gl_row_size(GL_TYPE_Q8_0, n));
    REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
    gl_kernels(GL_TYPE_Q8_0).quantize_act(f.data(), row.data(), n);
    return row;
}

double intq_sum_abs(gl_type t, const void * x, const void * y, int64_t n) {
    std::vector<float> fx((size_t) n), fy((size_t) n);
    gl_get_type_traits(t)->to_float(x, fx.data(), n);
    gl_get_type_traits(GL_TYPE_Q8_0)->to_float(y, fy.data(), n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs((double) fx[(size_t) i] * fy[(size_t) i]);
    return s;
}

}  // namespace

TEST_CASE("kernels intq: vec_dot and to_float match the scalar reference at every level") {
    IntqLevelGuard guard;
    std::mt19937 rng(1234);
    for (gl_type t : intq_types()) {
        const std::string type_name = gl_type_name(t);
        CAPTURE(type_name);
        const int64_t g = gl_get_type_traits(t)->block_size;
        for (int64_t m : {1, 2, 3, 7}) {
            const int64_t n = g * m;
            CAPTURE(n);
            for (int rep = 0; rep < 8; ++rep) {
                const std::vector<uint8_t> x = intq_random_row(rng, t, n);
                const std::vector<uint8_t> y = intq_random_act(rng, n);
                REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
                float ref = 0;
                gl_kernels(t).vec_dot(n, &ref, x.data(), y.data());
                std::vector<float> fref((size_t) n);
                gl_kernels(t).to_float(x.data(), fref.data(), n);
                const double sabs = intq_sum_abs(t, x.data(), y.data(), n);
                for (gl_cpu_level level : intq_simd_levels()) {
                    REQUIRE(gl_cpu_level_set(level));
                    const std::string level_name = gl_cpu_level_name(level);
                    CAPTURE(level_name);
                    // the SIMD entries are in the table (not the scalar fallback)
                    const bool simd_entry = gl_kernels(t).vec_dot != gl_get_type_traits(t)->vec_dot;
                    CHECK(simd_entry);
                    float got = 0;
                    gl_kernels(t).vec_dot(n, &got, x.data(), y.data());
                    CHECK(std::fabs((double) got - (double) ref) <= 1e-5 * sabs + 1e-30);
                    std::vector<float> fgot((size_t) n);
                    gl_kernels(t).to_float(x.data(), fgot.data(), n);
                    CHECK(memcmp(fgot.data(), fref.data(), (size_t) n * sizeof(float)) == 0);
                }
            }
        }
    }
}

TEST_CASE("kernels intq: gemm tiles match the scalar vec_dot, and write nothing else") {
    IntqLevelGuard guard;
    std::mt19937 rng(99);
    for (gl_type t : intq_types()) {
        const std::string type_name = gl_type_name(t);
        CAPTURE(type_name);
        const int64_t g = gl_get_type_traits(t)->block_size;
        for (int64_t m : {1, 2, 3, 7}) {
            const int64_t n = g * m;
            CAPTURE(n);
            const int64_t max_r = 17, max_t = 5;
            const size_t ws = gl_row_size(t, n), as = gl_row_size(GL_TYPE_Q8_0, n);
            std::vector<uint8_t> w, a;
            for (int64_t r = 0; r < max_r; ++r) {
                const std::vector<uint8_t> row = intq_random_row(rng, t, n);
                w.insert(w.end(), row.begin(), row.end());
            }
            for (int64_t k = 0; k < max_t; ++k) {
                const std::vector<uint8_t> row = intq_random_act(rng, n);
                a.insert(a.end(), row.begin(), row.end());
            }
            REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
            std::vector<float> ref((size_t) (max_r * max_t)), sabs((size_t) (max_r * max_t));
            for (int64_t k = 0; k < max_t; ++k) {
                for (int64_t r = 0; r < max_r; ++r) {
                    gl_get_type_traits(t)->vec_dot(n, &ref[(size_t) (k * max_r + r)], w.data() + r * ws, a.data() + k * as);
                    sabs[(size_t) (k * max_r + r)] = (float) intq_sum_abs(t, w.data() + r * ws, a.data() + k * as, n);
                }
            }
            for (gl_cpu_level level : intq_simd_levels()) {
                REQUIRE(gl_cpu_level_set(level));
                const std::string level_name = gl_cpu_level_name(level);
                CAPTURE(level_name);
                for (int64_t nr = 1; nr <= max_r; ++nr) {
                    for (int64_t nt = 1; nt <= max_t; ++nt) {
                        const int64_t ys = nr + 3;  // a gap after each token's outputs must stay untouched
                        std::vector<float> y((size_t) (ys * nt), -12345.0f);
                        gl_kernels(t).gemm(n, nr, nt, w.data(), ws, a.data(), as, y.data(), ys);
                        int bad = 0;
                        for (int64_t k = 0; k < nt; ++k) {
                            for (int64_t r = 0; r < ys; ++r) {
                                const float v = y[(size_t) (k * ys + r)];
                                if (r >= nr) {
                                    if (v != -12345.0f && bad++ < 3) FAIL_CHECK("wrote outside the tile at token " << k << " col " << r);
                                    continue;
                                }
                                const size_t at = (size_t) (k * max_r + r);
                                if (!(std::fabs((double) v - (double) ref[at]) <= 1e-5 * (double) sabs[at] + 1e-30) && bad++ < 3)
                                    FAIL_CHECK("nr " << nr << " nt " << nt << " token " << k << " row " << r << ": " << v << " vs " << ref[at]);
                            }
                        }
                        CHECK(bad == 0);
                    }
                }
            }
        }
    }
}

TEST_CASE("kernels intq: gl_mul_mat matches the scalar level") {
    IntqLevelGuard guard;
    std::mt19937 rng(4242);
    const int64_t ne0 = 256, ne1 = 37;
    for (gl_type t : intq_types()) {
        const std::string type_name = gl_type_name(t);
        CAPTURE(type_name);
        std::vector<uint8_t> wq;
        for (int64_t r = 0; r < ne1; ++r) {
            const std::vector<uint8_t> row = intq_random_row(rng, t, ne0);
            wq.insert(wq.end(), row.begin(), row.end());
        }
        gl_tensor w = gl_tensor_make(t, ne0, ne1, wq.data());
        std::vector<float> wd((size_t) (ne0 * ne1));
        gl_get_type_traits(t)->to_float(wq.data(), wd.data(), ne0 * ne1);
        for (int64_t n_tok : {1, 3, 8}) {
            CAPTURE(n_tok);
            std::vector<float> x = intq_random_floats(rng, ne0 * n_tok, 1.0f);
            std::vector<uint8_t> scratch(gl_mul_mat_scratch_size(w, n_tok) + 1);
            REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
            std::vector<float> ref((size_t) (ne1 * n_tok));
            gl_mul_mat(w, x.data(), n_tok, ref.data(), scratch.data());
            for (gl_cpu_level level : intq_simd_levels()) {
                REQUIRE(gl_cpu_level_set(level));
                const std::string level_name = gl_cpu_level_name(level);
                CAPTURE(level_name);
                std::vector<float> got((size_t) (ne1 * n_tok));
                gl_mul_mat(w, x.data(), n_tok, got.data(), scratch.data());
                int bad = 0;
                for (int64_t k = 0; k < n_tok; ++k) {
                    for (int64_t r = 0; r < ne1; ++r) {
                        double sabs = 0;
                        for (int64_t i = 0; i < ne0; ++i) sabs += std::fabs((double) wd[(size_t) (r * ne0 + i)] * x[(size_t) (k * ne0 + i)]);
                        const size_t at = (size_t) (k * ne1 + r);
                        if (!(std::fabs(got[at] - ref[at]) <= 2e-5 * sabs + 1e-30) && bad++ < 3)
                            FAIL_CHECK("token " << k << " row " << r << ": " << got[at] << " vs " << ref[at]);
                    }
                }
                CHECK(bad == 0);
            }
        }
    }
}
