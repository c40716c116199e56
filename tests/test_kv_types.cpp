// KV-cache types (ggml-lite/kv.h): the registry, row writes bit-exact with ggml's quantizers, the attention kernels of
// every type at every dispatch level this CPU has against the scalar reference, the head-size rule of quantized
// types, and the quality of q8_0/q4_0 caches on a real model (KL-divergence against the f16 cache, llama.cpp's batch
// semantics).
#include "tests/test_util.h"

#include "formats/model_file.h"
#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"
#include "ggml-lite/kv.h"
#include "ggml-lite/ops.h"
#include "model/kv_cache.h"
#include "model/llama.h"
#include "model/synthetic.h"
#include "model/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace quill;

namespace {

struct LevelGuard {
    gl_cpu_level saved = gl_cpu_level_get();
    ~LevelGuard() { gl_cpu_level_set(saved); }
};

// Every dispatch level this CPU has, scalar first.
std::vector<gl_cpu_level> all_levels() {
    std::vector<gl_cpu_level> out;
    for (int l = GL_CPU_SCALAR; l <= (int) gl_cpu_max_level(); ++l) out.push_back((gl_cpu_level) l);
    return out;
}

std::vector<gl_type> kv_types() {
    std::vector<gl_type> out;
    for (int i = 0; i < gl_kv_type_count(); ++i) out.push_back(gl_kv_type_at(i)->type);
    return out;
}

std::vector<float> randn(std::mt19937 & rng, int64_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v((size_t) n);
    for (float & x : v) x = d(rng);
    return v;
}

// A head size every type of the pair accepts.
bool head_ok(gl_type t, int64_t head_dim) { return gl_kv_supports(t, head_dim, nullptr, 0); }

// n_kv rows of kv_dim values of type t written with the reference quantizer, rows `stride` bytes apart (stride may
// exceed the row: padding filled with 0xAB that must never be read as values).
std::vector<uint8_t> make_rows(std::mt19937 & rng, gl_type t, int64_t kv_dim, int64_t n_kv, size_t stride, std::vector<float> * deq) {
    std::vector<uint8_t> rows(stride * (size_t) n_kv, 0xAB);
    deq->assign((size_t) (kv_dim * n_kv), 0.0f);
    for (int64_t j = 0; j < n_kv; ++j) {
        std::vector<float> f = randn(rng, kv_dim);
        // Some outliers, so blocks get different scales.
        if (j % 3 == 0) f[(size_t) (j % kv_dim)] *= 6.0f;
        gl_get_type_traits(t)->from_float(f.data(), rows.data() + (size_t) j * stride, kv_dim);
        gl_get_type_traits(t)->to_float(rows.data() + (size_t) j * stride, deq->data() + j * kv_dim, kv_dim);
    }
    return rows;
}

}  // namespace

TEST_CASE("kv types: the registry names f32, f16, bf16, q8_0, q4_0 and nothing else") {
    CHECK(gl_kv_type_names(", ") == "f32, f16, bf16, q8_0, q4_0");
    for (gl_type t : kv_types()) {
        const gl_kv_type_traits * e = gl_kv_get(t);
        REQUIRE(e);
        CHECK(std::string(e->name) == gl_type_name(t));
        gl_type back;
        REQUIRE(gl_kv_type_from_name(e->name, &back));
        CHECK(back == t);
        CHECK(gl_kv_row_size(t, 256) == gl_row_size(t, 256));
    }
    gl_type t;
    CHECK(!gl_kv_type_from_name("q4_g128", &t));
    CHECK(!gl_kv_type_from_name("q5_0", &t));
    CHECK(gl_kv_get(GL_TYPE_Q4_G128) == nullptr);
    // Bytes of a 32-value head: f32 128, f16/bf16 64, q8_0 34, q4_0 18.
    CHECK(gl_kv_row_size(GL_TYPE_Q8_0, 32) == 34);
    CHECK(gl_kv_row_size(GL_TYPE_Q4_0, 32) == 18);
    CHECK(gl_kv_row_size(GL_TYPE_F16, 32) == 64);
}

TEST_CASE("kv types: a head size that is not a multiple of 32 is refused for q8_0/q4_0 with one clear line") {
    char why[256] = "";
    CHECK(gl_kv_supports(GL_TYPE_F16, 8, why, sizeof(why)));
    CHECK(gl_kv_supports(GL_TYPE_Q8_0, 64, why, sizeof(why)));
    for (gl_type t : {GL_TYPE_Q8_0, GL_TYPE_Q4_0}) {
        for (int64_t hd : {8, 36, 48, 100}) {
            CHECK(!gl_kv_supports(t, hd, why, sizeof(why)));
            CHECK(std::string(why).find("multiple of 32") != std::string::npos);
            KvCache kv;
            try {
                kv.init(2, 2, hd, 16, 1, t);
                FAIL("init accepted head_dim " << hd);
            } catch (const Error & e) {
                const std::string msg = e.what();
                CHECK(msg.find(gl_type_name(t)) != std::string::npos);
                CHECK(msg.find("multiple of 32") != std::string::npos);
                CHECK(msg.find('\n') == std::string::npos);
            }
        }
    }
    KvCache kv;
    CHECK_THROWS_AS(kv.init(1, 1, 32, 4, 1, GL_TYPE_Q4_G128), Error);
}

TEST_CASE("kv types: stories260K (head size 8) with --kv-type q8_0 is an error naming the head size, not a crash") {
    REQUIRE_SHARED();
    const std::string model = shared_path("golden/stories260K/stories260K-F32.gguf");
    std::string out;
    const int rc = run_command(quill_binary() + " run -m " + model + " -p Once -n 4 --temp 0 --kv-type q8_0 2>&1", &out);
    CHECK(rc != 0);
    CHECK(out.find("multiple of 32") != std::string::npos);
    CHECK(out.find("is 8") != std::string::npos);
    const int rc2 = run_command(quill_binary() + " run -m " + model + " -p Once -n 4 --kv-type q5_1 2>&1", &out);
    CHECK(rc2 != 0);
    CHECK(out.find("q4_0") != std::string::npos);  // the error lists the registry's names
}

TEST_CASE("kv types: row writes are ggml's quantizers bit for bit, at every level, through KvCache::write") {
    LevelGuard guard;
    std::mt19937 rng(4242);
    struct Shape { int64_t n_head_kv, head_dim; };
    const Shape shapes[] = {{1, 32}, {4, 32}, {2, 64}, {3, 96}, {8, 128}, {1, 256}};
    for (gl_cpu_level level : all_levels()) {
        REQUIRE(gl_cpu_level_set(level));
        const std::string level_name = gl_cpu_level_name(level);
        CAPTURE(level_name);
        for (gl_type t : kv_types()) {
            const std::string type = gl_type_name(t);
            CAPTURE(type);
            for (const Shape & s : shapes) {
                const int64_t kv_dim = s.n_head_kv * s.head_dim;
                CAPTURE(kv_dim);
                std::vector<float> x = randn(rng, kv_dim, 3.0f);
                x[0] = 0.0f;  // an all-zero block below must give d = 0
                std::vector<float> zeros((size_t) kv_dim, 0.0f);
                for (const std::vector<float> * src : {&x, &zeros}) {
                    std::vector<uint8_t> want(gl_row_size(t, kv_dim)), got(want.size() + 16, 0xCD);
                    gl_get_type_traits(t)->from_float(src->data(), want.data(), kv_dim);
                    gl_kv_write(t, src->data(), got.data(), kv_dim);
                    CHECK(memcmp(want.data(), got.data(), want.size()) == 0);
                    for (size_t i = want.size(); i < got.size(); ++i) CHECK(got[i] == 0xCD);  // guard bytes
                }
                // Through the cache: rows land where the views read them, keys and values apart.
                KvCache kv;
                kv.init(3, s.n_head_kv, s.head_dim, 5, 2, t);
                std::vector<float> v = randn(rng, kv_dim);
                kv.write(2, 1, 4, x.data(), v.data());
                std::vector<uint8_t> wk(gl_row_size(t, kv_dim)), wv(wk.size());
                gl_get_type_traits(t)->from_float(x.data(), wk.data(), kv_dim);
                gl_get_type_traits(t)->from_float(v.data(), wv.data(), kv_dim);
                const gl_kv_view kview = kv.k_view(2, 1), vview = kv.v_view(2, 1);
                CHECK(kview.stride == wk.size());
                CHECK(memcmp((const uint8_t *) kview.data + 4 * kview.stride, wk.data(), wk.size()) == 0);
                CHECK(memcmp((const uint8_t *) vview.data + 4 * vview.stride, wv.data(), wv.size()) == 0);
                CHECK(kv.bytes_per_token() == 2 * 3 * wk.size());
            }
        }
    }
}

TEST_CASE("kv types: q·k and p·v kernels match the scalar reference at every level (odd n_kv, padded rows)") {
    LevelGuard guard;
    std::mt19937 rng(99);
    for (gl_type t : kv_types()) {
        const gl_kv_type_traits * e = gl_kv_get(t);
        const std::string type = e->name;
        CAPTURE(type);
        for (int64_t head_dim : {32, 64, 96, 128, 256}) {
            for (int64_t n_kv : {1, 2, 3, 17, 101}) {
                CAPTURE(head_dim);
                CAPTURE(n_kv);
                const int64_t kv_dim = 2 * head_dim;  // two heads: read the second one
                const size_t stride = gl_row_size(t, kv_dim) + 6;
                std::vector<float> deq;
                const std::vector<uint8_t> rows = make_rows(rng, t, kv_dim, n_kv, stride, &deq);
                const uint8_t * head1 = rows.data() + gl_row_size(t, head_dim);
                const std::vector<float> q = randn(rng, head_dim);
                std::vector<uint8_t> qc(gl_row_size(e->q_type, head_dim));
                gl_get_type_traits(e->q_type)->from_float(q.data(), qc.data(), head_dim);
                std::vector<float> p = randn(rng, n_kv);
                for (float & x : p) x = std::fabs(x) / (float) n_kv;
                const std::vector<float> p_copy = p;
                const std::vector<float> out0 = randn(rng, head_dim);  // accumulates onto what is there
                const size_t G = 8;
                std::vector<float> s_ref((size_t) n_kv), o_ref(out0);
                REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
                gl_kv_kernels_get(t).qk(head_dim, n_kv, qc.data(), head1, stride, s_ref.data());
                gl_kv_kernels_get(t).pv(head_dim, n_kv, p.data(), head1, stride, o_ref.data());
                // The reference itself against plain float arithmetic on the dequantized rows.
                std::vector<float> qd((size_t) head_dim);
                gl_get_type_traits(e->q_type)->to_float(qc.data(), qd.data(), head_dim);
                for (int64_t j = 0; j < n_kv; ++j) {
                    double dot = 0, mag = 0;
                    for (int64_t d = 0; d < head_dim; ++d) {
                        const double kd = deq[(size_t) (j * kv_dim + head_dim + d)];
                        dot += qd[(size_t) d] * kd;
                        mag += std::fabs(qd[(size_t) d] * kd);
                    }
                    CHECK(std::fabs(s_ref[(size_t) j] - dot) <= 1e-5 * mag + 1e-30);
                }
                for (int64_t d = 0; d < head_dim; ++d) {
                    double acc = out0[(size_t) d], mag = std::fabs(out0[(size_t) d]);
                    for (int64_t j = 0; j < n_kv; ++j) {
                        float pj = p[(size_t) j];
                        if (e->p_type == GL_TYPE_F16) pj = gl_fp16_to_fp32(gl_fp32_to_fp16(pj));
                        if (e->p_type == GL_TYPE_BF16) pj = gl_bf16_to_fp32(gl_fp32_to_bf16(pj));
                        const double vd = deq[(size_t) (j * kv_dim + head_dim + d)];
                        acc += pj * vd;
                        mag += std::fabs(pj * vd);
                    }
                    CHECK(std::fabs(o_ref[(size_t) d] - acc) <= 1e-5 * mag + 1e-30);
                }
                for (gl_cpu_level level : all_levels()) {
                    if (level == GL_CPU_SCALAR) continue;
                    REQUIRE(gl_cpu_level_set(level));
                    const std::string level_name = gl_cpu_level_name(level);
                    CAPTURE(level_name);
                    std::vector<float> s_got((size_t) n_kv + G, -7.0f), o_got(out0);
                    o_got.resize((size_t) head_dim + G, -7.0f);
                    gl_kv_kernels_get(t).qk(head_dim, n_kv, qc.data(), head1, stride, s_got.data());
                    gl_kv_kernels_get(t).pv(head_dim, n_kv, p.data(), head1, stride, o_got.data());
                    CHECK(p == p_copy);
                    for (size_t i = 0; i < G; ++i) {
                        CHECK(s_got[(size_t) n_kv + i] == -7.0f);
                        CHECK(o_got[(size_t) head_dim + i] == -7.0f);
                    }
                    int bad = 0;
                    for (int64_t j = 0; j < n_kv; ++j) {
                        if (!(std::fabs(s_got[(size_t) j] - s_ref[(size_t) j]) <= 1e-5 * (1 + std::fabs(s_ref[(size_t) j]))) && bad++ < 3)
                            FAIL_CHECK("score " << j << ": " << s_got[(size_t) j] << " vs " << s_ref[(size_t) j]);
                    }
                    for (int64_t d = 0; d < head_dim; ++d) {
                        if (!(std::fabs(o_got[(size_t) d] - o_ref[(size_t) d]) <= 1e-5 * (1 + std::fabs(o_ref[(size_t) d]))) && bad++ < 3)
                            FAIL_CHECK("out " << d << ": " << o_got[(size_t) d] << " vs " << o_ref[(size_t) d]);
                    }
                    CHECK(bad == 0);
                }
            }
        }
    }
}

TEST_CASE("kv types: gl_attention over every pair of KV types and every level matches the scalar reference (GQA, odd n_kv)") {
    LevelGuard guard;
    std::mt19937 rng(2024);
    struct AShape { int64_t n_head, n_head_kv, head_dim, n_kv; };
    const AShape shapes[] = {{1, 1, 32, 1}, {4, 2, 64, 7}, {8, 1, 32, 33}, {6, 3, 96, 101}, {8, 8, 128, 19}, {4, 4, 8, 5}, {2, 1, 36, 3}};
    std::vector<std::pair<gl_type, gl_type>> pairs;
    for (gl_type t : kv_types()) pairs.push_back({t, t});
    pairs.push_back({GL_TYPE_Q8_0, GL_TYPE_F16});
    pairs.push_back({GL_TYPE_F16, GL_TYPE_Q4_0});
    pairs.push_back({GL_TYPE_Q4_0, GL_TYPE_Q8_0});
    for (const auto & kvp : pairs) {
        const gl_type kt = kvp.first, vt = kvp.second;
        const std::string k_type = gl_type_name(kt), v_type = gl_type_name(vt);
        CAPTURE(k_type);
        CAPTURE(v_type);
        for (const AShape & s : shapes) {
            if (!head_ok(kt, s.head_dim) || !head_ok(vt, s.head_dim)) continue;
            CAPTURE(s.n_head);
            CAPTURE(s.n_head_kv);
            CAPTURE(s.head_dim);
            CAPTURE(s.n_kv);
            const int64_t kv_dim = s.n_head_kv * s.head_dim;
            const size_t kstride = gl_row_size(kt, kv_dim) + 10, vstride = gl_row_size(vt, kv_dim) + 4;
            std::vector<float> kd, vd;
            const std::vector<uint8_t> krows = make_rows(rng, kt, kv_dim, s.n_kv, kstride, &kd);
            const std::vector<uint8_t> vrows = make_rows(rng, vt, kv_dim, s.n_kv, vstride, &vd);
            const std::vector<float> q = randn(rng, s.n_head * s.head_dim, 1.5f);
            const gl_kv_view K{kt, krows.data(), kstride}, V{vt, vrows.data(), vstride};
            const float scale = 1.0f / std::sqrt((float) s.head_dim);
            std::vector<float> scratch((size_t) (s.n_kv + s.head_dim)), ref((size_t) (s.n_head * s.head_dim));
            REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
            gl_attention(q.data(), s.n_head, s.n_head_kv, s.head_dim, K, V, s.n_kv, scale, ref.data(), scratch.data());

            // The scalar result against double-precision attention over the dequantized rows, with q converted
            // the way the key type takes it and the probabilities rounded the way the value type takes them.
            const gl_kv_type_traits * ke = gl_kv_get(kt);
            const gl_kv_type_traits * ve = gl_kv_get(vt);
            const int64_t group = s.n_head / s.n_head_kv;
            double max_v = 0;
            for (float x : vd) max_v = std::max(max_v, (double) std::fabs(x));
            for (int64_t h = 0; h < s.n_head; ++h) {
                const int64_t kvh = h / group;
                std::vector<uint8_t> qc(gl_row_size(ke->q_type, s.head_dim));
                std::vector<float> qd((size_t) s.head_dim);
                gl_get_type_traits(ke->q_type)->from_float(q.data() + h * s.head_dim, qc.data(), s.head_dim);
                gl_get_type_traits(ke->q_type)->to_float(qc.data(), qd.data(), s.head_dim);
                std::vector<double> sc((size_t) s.n_kv);
                double mx = -INFINITY, sum = 0;
                for (int64_t j = 0; j < s.n_kv; ++j) {
                    double dot = 0;
                    for (int64_t d = 0; d < s.head_dim; ++d) dot += (double) qd[(size_t) d] * kd[(size_t) (j * kv_dim + kvh * s.head_dim + d)];
                    sc[(size_t) j] = dot * scale;
                    mx = std::max(mx, sc[(size_t) j]);
                }
                for (double & x : sc) sum += x = std::exp(x - mx);
                const double tol = (ve->p_type == GL_TYPE_F32 ? 1e-4 : ve->p_type == GL_TYPE_F16 ? 4e-3 : 2e-2) * std::max(1.0, max_v);
                for (int64_t d = 0; d < s.head_dim; ++d) {
                    double o = 0;
                    for (int64_t j = 0; j < s.n_kv; ++j) o += sc[(size_t) j] / sum * vd[(size_t) (j * kv_dim + kvh * s.head_dim + d)];
                    CHECK(std::fabs(ref[(size_t) (h * s.head_dim + d)] - o) <= tol);
                }
            }

            for (gl_cpu_level level : all_levels()) {
                if (level == GL_CPU_SCALAR) continue;
                REQUIRE(gl_cpu_level_set(level));
                const std::string level_name = gl_cpu_level_name(level);
                CAPTURE(level_name);
                std::vector<float> got(ref.size() + 8, -3.0f);
                gl_attention(q.data(), s.n_head, s.n_head_kv, s.head_dim, K, V, s.n_kv, scale, got.data(), scratch.data());
                for (size_t i = ref.size(); i < got.size(); ++i) CHECK(got[i] == -3.0f);
                // Float values: a probability that rounds (f16/bf16) to the other neighbour moves the output by up to
                // 2^-11 / 2^-8 of |v|; otherwise only summation order and FMA differ.
                const double tol = (ve->p_type == GL_TYPE_F32 ? 2e-5 : ve->p_type == GL_TYPE_F16 ? 2e-3 : 1e-2) * std::max(1.0, max_v);
                int bad = 0;
                for (size_t i = 0; i < ref.size(); ++i) {
                    if (!(std::fabs(got[i] - ref[i]) <= tol) && bad++ < 3) FAIL_CHECK("out " << i << ": " << got[i] << " vs " << ref[i]);
                }
                CHECK(bad == 0);
            }
        }
    }
}

TEST_CASE("kv types: gl_attention_batch (prompt batches) equals gl_attention per token, every level, windows and GQA") {
    // A batch of consecutive tokens of one sequence, all the query heads of one KV head at a time: the same function as
    // gl_attention for each token over its own rows [lo, hi) (causal, or a sliding window), up to summation order.
    LevelGuard guard;
    std::mt19937 rng(77);
    struct BShape { int64_t n_head, n_head_kv, head_dim, n_tok, first_pos, window; };
    const BShape shapes[] = {{8, 1, 64, 9, 0, 0}, {4, 2, 32, 13, 5, 0}, {6, 3, 96, 5, 17, 0}, {2, 2, 128, 21, 0, 7}, {8, 2, 16, 40, 3, 0},
                             {3, 1, 48, 1, 70, 0}};
    CHECK_FALSE(gl_attention_batch_ok(GL_TYPE_Q8_0, GL_TYPE_F16, 64));  // quantized keys take q8_0 queries: per token only
    CHECK_FALSE(gl_attention_batch_ok(GL_TYPE_F16, GL_TYPE_F16, 8));     // head_dim not a multiple of 16
    CHECK(gl_attention_batch_ok(GL_TYPE_F16, GL_TYPE_Q4_0, 64));
    const std::pair<gl_type, gl_type> pairs[] = {{GL_TYPE_F32, GL_TYPE_F32}, {GL_TYPE_F16, GL_TYPE_F16}, {GL_TYPE_BF16, GL_TYPE_BF16},
                                                 {GL_TYPE_F16, GL_TYPE_Q8_0}, {GL_TYPE_F16, GL_TYPE_Q4_0}};
    for (const auto & kvp : pairs) {
        const gl_type kt = kvp.first, vt = kvp.second;
        const std::string k_type = gl_type_name(kt), v_type = gl_type_name(vt);
        CAPTURE(k_type);
        CAPTURE(v_type);
        for (const BShape & s : shapes) {
            if (!head_ok(vt, s.head_dim)) continue;
            CAPTURE(s.n_head);
            CAPTURE(s.n_head_kv);
            CAPTURE(s.head_dim);
            CAPTURE(s.n_tok);
            CAPTURE(s.window);
            const int64_t kv_dim = s.n_head_kv * s.head_dim, q_dim = s.n_head * s.head_dim, n_rows = s.first_pos + s.n_tok;
            const int64_t group = s.n_head / s.n_head_kv;
            const size_t kstride = gl_row_size(kt, kv_dim) + 6, vstride = gl_row_size(vt, kv_dim) + 2;
            std::vector<float> kd, vd;
            const std::vector<uint8_t> krows = make_rows(rng, kt, kv_dim, n_rows, kstride, &kd);
            const std::vector<uint8_t> vrows = make_rows(rng, vt, kv_dim, n_rows, vstride, &vd);
            const std::vector<float> q = randn(rng, s.n_tok * q_dim, 1.5f);
            const gl_kv_view K{kt, krows.data(), kstride}, V{vt, vrows.data(), vstride};
            const float scale = 1.0f / std::sqrt((float) s.head_dim);
            std::vector<int64_t> lo((size_t) s.n_tok), hi((size_t) s.n_tok);
            for (int64_t t = 0; t < s.n_tok; ++t) {
                hi[(size_t) t] = s.first_pos + t + 1;
                lo[(size_t) t] = s.window > 0 ? std::max<int64_t>(0, hi[(size_t) t] - s.window) : 0;
            }
            double max_v = 0;
            for (float x : vd) max_v = std::max(max_v, (double) std::fabs(x));
            for (gl_cpu_level level : all_levels()) {
                REQUIRE(gl_cpu_level_set(level));
                const std::string level_name = gl_cpu_level_name(level);
                CAPTURE(level_name);
                std::vector<float> ref((size_t) (s.n_tok * q_dim)), got((size_t) (s.n_tok * q_dim) + 8, -3.0f);
                std::vector<float> scratch((size_t) (n_rows + s.head_dim));
                for (int64_t t = 0; t < s.n_tok; ++t) {
                    const int64_t a = lo[(size_t) t];
                    const gl_kv_view Kt{kt, krows.data() + (size_t) a * kstride, kstride}, Vt{vt, vrows.data() + (size_t) a * vstride, vstride};
                    gl_attention(q.data() + t * q_dim, s.n_head, s.n_head_kv, s.head_dim, Kt, Vt, hi[(size_t) t] - a, scale,
                                 ref.data() + t * q_dim, scratch.data());
                }
                std::vector<float> bscratch(gl_attention_batch_scratch(n_rows, s.head_dim, s.n_tok * group) + 1, -5.0f);
                for (int64_t h = 0; h < s.n_head_kv; ++h) {
                    const int64_t off = h * group * s.head_dim;
                    gl_attention_batch(q.data() + off, q_dim, s.n_tok, group, s.head_dim, h, K, V, lo.data(), hi.data(), scale, got.data() + off,
                                       q_dim, bscratch.data());
                }
                CHECK(bscratch.back() == -5.0f);  // the stated scratch is enough
                for (size_t i = ref.size(); i < got.size(); ++i) CHECK(got[i] == -3.0f);
                // summation order only (and the f16/bf16 rounding of a probability landing on the other neighbour)
                const gl_kv_type_traits * ve = gl_kv_get(vt);
                const double tol = (ve->p_type == GL_TYPE_F32 ? 2e-5 : ve->p_type == GL_TYPE_F16 ? 2e-3 : 1e-2) * std::max(1.0, max_v);
                int bad = 0;
                for (size_t i = 0; i < ref.size(); ++i) {
                    if (!(std::fabs(got[i] - ref[i]) <= tol) && bad++ < 3) FAIL_CHECK("out " << i << ": " << got[i] << " vs " << ref[i]);
                }
                CHECK(bad == 0);
            }
        }
    }
}

// ---- quality on a real model ------------------------------------------------------------------------------------

namespace {

// KL(p || q) of two logit rows, in double.
double kld_rows(const float * base, const float * x, int64_t n) {
    const double mb = *std::max_element(base, base + n), mx = *std::max_element(x, x + n);
    double sb = 0, sx = 0;
    for (int64_t i = 0; i < n; ++i) sb += std::exp(base[i] - mb), sx += std::exp(x[i] - mx);
    double k = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double lp = base[i] - mb - std::log(sb), lq = x[i] - mx - std::log(sx);
        k += std::exp(lp) * (lp - lq);
    }
    return std::max(k, 0.0);
}

// llama.cpp's F32 GGUF of stories4M (../shared/golden); false (a SKIP message, or a failure under CI) when absent.
bool load_stories4m_f32(ModelFile * mf) {
    const std::string path = shared_path("golden/stories4M/stories4M-F32.gguf");
    std::ifstream probe(path);
    if (!probe) {
        if (ci_mode()) FAIL("missing " << path);
        MESSAGE("SKIP: " << path << " not found");
        return false;
    }
    *mf = load_model(path, {});
    return true;
}

}  // namespace

TEST_CASE("kv types: q8_0 and q4_0 caches on stories4M stay close to the f16 cache (KLD, llama.cpp's batch semantics)") {
    REQUIRE_SHARED();
    ModelFile mf;
    if (!load_stories4m_f32(&mf)) return;
    Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    LlamaModel model(mf);
    std::ifstream in(shared_path("data/text/tinystories-valid-head.txt"));
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    const std::vector<int32_t> tokens = tok.encode(ss.str(), true);
    // llama.cpp's perplexity: chunks of 128 tokens, each decoded as one batch from an empty cache (so every token's
    // K/V are written, quantized, before any attention reads them), first token BOS, positions 64..126 scored.
    const int64_t n_ctx = 128, n_chunks = 12, n_vocab = model.hp.n_vocab;
    REQUIRE((int64_t) tokens.size() >= n_ctx * n_chunks);
    ContextParams cp;
    cp.n_ctx = (int32_t) n_ctx;
    cp.n_batch = (int32_t) n_ctx;
    std::map<std::string, std::unique_ptr<Context>> ctxs;
    for (const char * name : {"f16", "q8_0", "q4_0"}) {
        REQUIRE(gl_kv_type_from_name(name, &cp.kv_type));
        ctxs[name].reset(new Context(model, cp));
    }
    std::map<std::string, double> kld_sum, kld_max;
    std::map<std::string, int64_t> same_top;
    int64_t n_scored = 0;
    std::vector<float> base((size_t) (n_ctx * n_vocab));
    Batch b;
    for (int64_t c = 0; c < n_chunks; ++c) {
        b.clear();
        for (int64_t j = 0; j < n_ctx; ++j) b.add(j == 0 ? tok.bos() : tokens[(size_t) (c * n_ctx + j)], (int32_t) j, 0, true);
        ctxs["f16"]->clear_seq(0);
        ctxs["f16"]->decode(b);
        std::copy(ctxs["f16"]->logits(0), ctxs["f16"]->logits(0) + n_ctx * n_vocab, base.begin());
        for (const char * name : {"q8_0", "q4_0"}) {
            Context & ctx = *ctxs[name];
            ctx.clear_seq(0);
            ctx.decode(b);
            for (int64_t i = n_ctx / 2; i < n_ctx - 1; ++i) {
                const float * pb = &base[(size_t) (i * n_vocab)];
                const float * pq = ctx.logits((size_t) i);
                const double k = kld_rows(pb, pq, n_vocab);
                kld_sum[name] += k;
                kld_max[name] = std::max(kld_max[name], k);
                same_top[name] += std::max_element(pb, pb + n_vocab) - pb == std::max_element(pq, pq + n_vocab) - pq;
            }
        }
        n_scored += n_ctx - 1 - n_ctx / 2;
    }
    const double q8 = kld_sum["q8_0"] / (double) n_scored, q4 = kld_sum["q4_0"] / (double) n_scored;
    MESSAGE("stories4M, " << n_chunks << " chunks of 128: mean KLD vs the f16 cache: q8_0 " << q8 << " (max " << kld_max["q8_0"]
                          << "), q4_0 " << q4 << " (max " << kld_max["q4_0"] << "); llama.cpp over 500 chunks: 0.000019, 0.00387");
    // llama.cpp over 500 chunks: q8_0 0.000019, q4_0 0.00387. A broken kernel (wrong nibble order, scale, head
    // offset) gives KLDs of 0.1 and more; an unquantized cache gives 0.
    CHECK(q8 > 1e-7);
    CHECK(q8 < 6e-5);
    CHECK(q4 > 1e-3);
    CHECK(q4 < 8e-3);
    CHECK(q4 > 20 * q8);
    CHECK((double) same_top["q8_0"] / (double) n_scored > 0.99);
    CHECK((double) same_top["q4_0"] / (double) n_scored > 0.93);
}

TEST_CASE("kv types: a prompt decoded as one batch (batched attention) gives the logits of decoding it token by token") {
    // stories4M has 32-wide heads, so a batch of >= 8 positions takes gl_attention_batch and single tokens take
    // gl_attention: the two paths' logits must agree to rounding, for f32 and f16 caches, a prompt split across
    // two batches (the second continuing from the cache) included.
    REQUIRE_SHARED();
    ModelFile mf;
    if (!load_stories4m_f32(&mf)) return;
    Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    LlamaModel model(mf);
    REQUIRE(gl_attention_batch_ok(GL_TYPE_F16, GL_TYPE_F16, model.hp.head_dim));
    const std::vector<int32_t> prompt = tok.encode("Once upon a time, there was a little girl named Lily. She loved to play in the park with her dog.", true);
    const int64_t n = (int64_t) prompt.size(), n_vocab = model.hp.n_vocab;
    REQUIRE(n >= 20);
    for (const char * kv_name : {"f32", "f16"}) {
        CAPTURE(kv_name);
        ContextParams cp;
        cp.n_ctx = 64;
        cp.n_batch = 64;
        REQUIRE(gl_kv_type_from_name(kv_name, &cp.kv_type));
        Context one(model, cp), split(model, cp), steps(model, cp);
        Batch b;
        for (int64_t i = 0; i < n; ++i) b.add(prompt[(size_t) i], (int32_t) i, 0, true);
        one.decode(b);
        b.clear();
        for (int64_t i = 0; i < 10; ++i) b.add(prompt[(size_t) i], (int32_t) i, 0, false);
        split.decode(b);
        b.clear();
        for (int64_t i = 10; i < n; ++i) b.add(prompt[(size_t) i], (int32_t) i, 0, true);
        split.decode(b);
        double worst = 0, worst_split = 0;
        for (int64_t i = 0; i < n; ++i) {
            b.clear();
            b.add(prompt[(size_t) i], (int32_t) i, 0, true);
            steps.decode(b);
            const float * a = one.logits((size_t) i), * c = steps.logits(0);
            double mx = 0;
            for (int64_t v = 0; v < n_vocab; ++v) mx = std::max(mx, (double) std::fabs(c[v]));
            for (int64_t v = 0; v < n_vocab; ++v) worst = std::max(worst, std::fabs((double) a[v] - c[v]) / mx);
            if (i >= 10) {
                const float * s = split.logits((size_t) (i - 10));
                for (int64_t v = 0; v < n_vocab; ++v) worst_split = std::max(worst_split, std::fabs((double) s[v] - c[v]) / mx);
            }
        }
        MESSAGE(std::string(kv_name) << " cache: largest logit difference batch vs token by token " << worst << ", split batch " << worst_split
                        << " (of the row's largest |logit|)");
        CHECK(worst < 2e-3);
        CHECK(worst_split < 2e-3);
    }
}

TEST_CASE("Context::truncate_seq keeps a prefix of the cache: continuing after it equals a run that never had the rest") {
    ModelFile mf = make_synthetic_model("stories260k", GL_TYPE_Q8_0, 21);
    LlamaModel model(mf);
    const int64_t V = model.hp.n_vocab;
    ContextParams cp;
    cp.n_ctx = 32;
    auto tok = [&](int i) { return (int32_t) ((i * 53 + 7) % V); };
    auto logits_after = [&](int keep, int first, bool truncate) {  // tokens 0..first-1, keep `keep` of them, then 3 more
        Context ctx(model, cp);
        Batch b;
        for (int i = 0; i < first; ++i) b.add(tok(i), i, 0, false);
        ctx.decode(b);
        if (truncate) ctx.truncate_seq(0, keep);
        const int at = truncate ? keep : first;
        CHECK(ctx.seq_len(0) == at);
        b.clear();
        for (int i = 0; i < 3; ++i) b.add(tok(100 + i), at + i, 0, true);
        ctx.decode(b);
        CHECK(ctx.seq_len(0) == at + 3);
        return std::vector<float>(ctx.logits(0), ctx.logits(0) + 3 * V);
    };
    const std::vector<float> cut = logits_after(5, 10, true), fresh = logits_after(5, 5, false), whole = logits_after(10, 10, false);
    double diff = 0, diff_whole = 0, mag = 0;
    for (size_t i = 0; i < cut.size(); ++i) {
        diff = std::max(diff, (double) std::fabs(cut[i] - fresh[i]));
        diff_whole = std::max(diff_whole, (double) std::fabs(cut[i] - whole[i]));
        mag = std::max(mag, (double) std::fabs(fresh[i]));
    }
    MESSAGE("truncated vs fresh: max |logit difference| " << diff << ", vs the untruncated run " << diff_whole << " (max |logit| " << mag << ")");
    CHECK(diff <= 1e-4 * std::max(1.0, mag));
    CHECK(diff_whole > 100 * diff + 1e-3);  // the forgotten positions did matter
    // A prefix longer than the cache changes nothing; bad sequences and lengths are errors, not UB.
    Context ctx(model, cp);
    Batch b;
    for (int i = 0; i < 4; ++i) b.add(tok(i), i, 0, false);
    ctx.decode(b);
    ctx.truncate_seq(0, 9);
    CHECK(ctx.seq_len(0) == 4);
    CHECK_THROWS_AS(ctx.truncate_seq(1, 0), Error);
    CHECK_THROWS_AS(ctx.truncate_seq(0, -1), Error);
    CHECK(ctx.seq_len(0) == 4);
}
