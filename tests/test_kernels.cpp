// The ops built on the kernels (gl_mul_mat, gl_attention) and whole models, at every dispatch level this CPU
// supports, against the scalar level. The kernels themselves are checked one by one, for every type of the
// registry, by the harness in tests/test_kernel_harness.cpp.
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

// Every type with row kernels, from the registry (codebook types: tests/test_vq.cpp).
std::vector<gl_type> row_types() {
    std::vector<gl_type> out;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t)
        if (!gl_get_type_traits((gl_type) t)->vq) out.push_back((gl_type) t);
    return out;
}

std::vector<float> random_floats(std::mt19937 & rng, int64_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v((size_t) n);
    for (float & x : v) x = d(rng);
    return v;
}

}  // namespace

// The per-kernel checks (vec_dot, gemm, quantize_act, to_float, axpy, float ops at every level, for every type of
// the registry) are the harness in tests/test_kernel_harness.cpp. This file checks the ops built on them.

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
    for (gl_type t : row_types()) {
        const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
        for (const Shape & s : shapes) {
            if (s.ne0 % gl_get_type_traits(t)->block_size != 0) continue;  // rows of whole blocks only
            CAPTURE(s.ne0);
            CAPTURE(s.ne1);
            CAPTURE(s.n_tok);
            std::vector<float> wf = random_floats(rng, s.ne0 * s.ne1);
            std::vector<uint8_t> wq(gl_row_size(t, s.ne0) * (size_t) s.ne1);
            for (int64_t r = 0; r < s.ne1; ++r)  // row by row: per-row types have a header per row
                gl_get_type_traits(t)->from_float(wf.data() + r * s.ne0, wq.data() + (size_t) r * gl_row_size(t, s.ne0), s.ne0);
            gl_tensor w = gl_tensor_make(t, s.ne0, s.ne1, wq.data());
            std::vector<float> x = random_floats(rng, s.ne0 * s.n_tok);
            REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
            const std::vector<float> ref = run_mul_mat(w, x, s.n_tok);
            // error scale of each output: Σ |w||x| (dequantized weights, float activations)
            std::vector<float> wd((size_t) (s.ne0 * s.ne1));
            for (int64_t r = 0; r < s.ne1; ++r)
                gl_get_type_traits(t)->to_float(wq.data() + (size_t) r * gl_row_size(t, s.ne0), wd.data() + r * s.ne0, s.ne0);
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
