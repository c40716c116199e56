// Quantization: the uniform integer types (q<b>_g<g>), the per-block float forward and Hessians, GPTQ against RTN,
// `quill quantize` end to end on stories260K, and perplexity's --kld-base.
#include "tests/test_util.h"
#include "tests/test_quant_util.h"

#include "formats/gguf_writer.h"
#include "formats/model_file.h"
#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"
#include "ggml-lite/ops.h"
#include "model/block_forward.h"
#include "model/llama.h"
#include "model/sampling.h"
#include "model/synthetic.h"
#include "model/tokenizer.h"
#include "quantize/calibration.h"
#include "quantize/gptq.h"
#include "quantize/quantize.h"
#include "quantize/rtn.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

using namespace quill;
using namespace quill_test;

namespace {

std::vector<gl_type> intq_types() {
    std::vector<gl_type> v;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (gl_intq_info((gl_type) t, nullptr, nullptr)) v.push_back((gl_type) t);
    }
    return v;
}

std::vector<float> randn(size_t n, uint32_t seed, float scale = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> g(0.0f, scale);
    std::vector<float> x(n);
    for (float & v : x) v = g(rng);
    return x;
}

std::string read_file(const std::string & path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

// ---- the types -----------------------------------------------------------------------------------------------------

TEST_CASE("intq: nine types in the table, sizes b + 24/g bits per weight, names round-trip") {
    const std::vector<gl_type> ts = intq_types();
    CHECK(ts.size() == 9);
    for (gl_type t : ts) {
        int b = 0, g = 0;
        REQUIRE(gl_intq_info(t, &b, &g));
        CAPTURE(gl_type_name(t));
        const gl_type_traits * tr = gl_get_type_traits(t);
        CHECK(tr->block_size == g);
        CHECK(tr->type_size == (size_t) (3 + g * b / 8));
        CHECK(tr->is_quantized);
        CHECK(tr->vec_dot_type == GL_TYPE_Q8_0);
        CHECK(gl_intq_type(b, g) == t);
        gl_type back;
        REQUIRE(gl_type_from_name(tr->name, &back));
        CHECK(back == t);
        CHECK(std::string(tr->name) == "q" + std::to_string(b) + "_g" + std::to_string(g));
        size_t nb = 0;
        const int64_t ne[2] = {2 * g, 3};
        REQUIRE(gl_nbytes_checked(t, ne, 2, &nb));
        CHECK(nb == 6 * tr->type_size);
        const int64_t bad[2] = {g / 2, 3};  // not a whole number of groups
        CHECK_FALSE(gl_nbytes_checked(t, bad, 2, &nb));
    }
    CHECK(gl_intq_type(5, 128) == GL_TYPE_COUNT);
    CHECK(gl_intq_type(4, 256) == GL_TYPE_COUNT);
    CHECK_FALSE(gl_intq_info(GL_TYPE_Q4_0, nullptr, nullptr));
}

// Budget: every value is within half a step (d/2) of its input, plus what rounding the scale to fp16 can add at the
// ends of the range ((2^b − 1)·|scale − d|), plus float rounding; the RMSE over many groups is at most d/√12 · 1.15
// (uniform rounding error); a group's 0 is exact.
TEST_CASE("intq: from_float -> to_float within each type's error budget (several distributions)") {
    for (gl_type t : intq_types()) {
        int b = 0, g = 0;
        gl_intq_info(t, &b, &g);
        const int maxq = (1 << b) - 1;
        const gl_type_traits * tr = gl_get_type_traits(t);
        for (int dist = 0; dist < 4; ++dist) {
            CAPTURE(gl_type_name(t));
            CAPTURE(dist);
            const int64_t n = 64 * g;
            std::vector<float> x = randn((size_t) n, 100 + dist + 7 * (uint32_t) t, 0.05f);
            if (dist == 1) for (float & v : x) v = std::fabs(v);                // all >= 0: the range still includes 0
            if (dist == 2) for (size_t i = 0; i < x.size(); i += 17) x[i] *= 40;  // outliers
            if (dist == 3) for (size_t i = 0; i < (size_t) g; ++i) x[i] = 0.0f;   // an all-zero group
            std::vector<uint8_t> q(gl_row_size(t, n));
            tr->from_float(x.data(), q.data(), n);
            std::vector<float> y((size_t) n);
            tr->to_float(q.data(), y.data(), n);
            std::vector<uint8_t> codes((size_t) n);
            std::vector<gl_intq_params> grids((size_t) (n / g));
            gl_intq_unpack_row(t, n, q.data(), codes.data(), grids.data());
            double se = 0, d_sum = 0;
            for (int64_t gi = 0; gi < n / g; ++gi) {
                float lo = 0, hi = 0;
                for (int j = 0; j < g; ++j) lo = std::min(lo, x[(size_t) (gi * g + j)]), hi = std::max(hi, x[(size_t) (gi * g + j)]);
                const double scale = ((double) hi - lo) / maxq, d = grids[(size_t) gi].d;
                CHECK(d >= 0);
                const double budget = 0.5 * d + maxq * std::fabs(scale - d) + 1e-6 * (hi - lo) + 1e-12;
                for (int j = 0; j < g; ++j) {
                    const size_t i = (size_t) (gi * g + j);
                    const double e = std::fabs((double) y[i] - (double) x[i]);
                    if (e > budget) FAIL_CHECK("element " << i << ": |" << y[i] << " - " << x[i] << "| > " << budget);
                    se += e * e;
                    if (x[i] == 0.0f) CHECK(y[i] == 0.0f);
                }
                d_sum += d;
            }
            const double rmse = std::sqrt(se / (double) n), d_mean = d_sum / (double) (n / g);
            CHECK(rmse <= d_mean / std::sqrt(12.0) * 1.15 + 1e-9);
        }
    }
}

TEST_CASE("intq: from_float equals fit + code + pack, and unpack inverts pack") {
    for (gl_type t : intq_types()) {
        CAPTURE(gl_type_name(t));
        int b = 0, g = 0;
        gl_intq_info(t, &b, &g);
        const int64_t n = 4 * g;
        const std::vector<float> x = randn((size_t) n, 7 + (uint32_t) t);
        std::vector<uint8_t> ref(gl_row_size(t, n)), packed(ref.size());
        gl_get_type_traits(t)->from_float(x.data(), ref.data(), n);
        std::vector<uint8_t> codes((size_t) n);
        std::vector<gl_intq_params> grids((size_t) (n / g));
        for (int64_t gi = 0; gi < n / g; ++gi) {
            grids[(size_t) gi] = gl_intq_fit(&x[(size_t) (gi * g)], g, b);
            for (int j = 0; j < g; ++j) codes[(size_t) (gi * g + j)] = (uint8_t) gl_intq_code(x[(size_t) (gi * g + j)], grids[(size_t) gi], b);
        }
        gl_intq_pack_row(t, n, codes.data(), grids.data(), packed.data());
        CHECK(packed == ref);
        std::vector<uint8_t> codes2((size_t) n);
        std::vector<gl_intq_params> grids2((size_t) (n / g));
        gl_intq_unpack_row(t, n, packed.data(), codes2.data(), grids2.data());
        CHECK(codes2 == codes);
        std::vector<float> y((size_t) n);
        gl_get_type_traits(t)->to_float(packed.data(), y.data(), n);
        for (int64_t i = 0; i < n; ++i) {
            CHECK(grids2[(size_t) (i / g)].d16 == grids[(size_t) (i / g)].d16);
            CHECK(grids2[(size_t) (i / g)].z == grids[(size_t) (i / g)].z);
            // gl_intq_value is bit for bit what to_float gives: GPTQ's error feedback sees exactly the stored weight.
            CHECK(gl_intq_value(codes[(size_t) i], grids[(size_t) (i / g)]) == y[(size_t) i]);
        }
        // Every code value is reachable and packs at its place (a ramp of codes through the bit layout).
        for (int64_t i = 0; i < n; ++i) codes[(size_t) i] = (uint8_t) ((i * 7 + i / 5) % (1 << b));
        gl_intq_pack_row(t, n, codes.data(), grids.data(), packed.data());
        gl_intq_unpack_row(t, n, packed.data(), codes2.data(), grids2.data());
        CHECK(codes2 == codes);
    }
}

TEST_CASE("intq: the bit layout is the documented one (q4: nibbles j, j+16; q2: bit pairs j+8k; q3: + a high-bit word)") {
    uint8_t c[32];
    for (int i = 0; i < 32; ++i) c[i] = (uint8_t) i;
    gl_intq_params gp;
    gp.d16 = gl_fp32_to_fp16(0.5f);
    gp.d = 0.5f;
    gp.z = 3;
    {
        uint8_t c4[32];
        for (int i = 0; i < 32; ++i) c4[i] = (uint8_t) (i % 16);
        gl_block_intq<4, 32> blk;
        gl_intq_pack_row(GL_TYPE_Q4_G32, 32, c4, &gp, &blk);
        CHECK((blk.d[0] | (blk.d[1] << 8)) == gp.d16);
        CHECK(blk.z == 3);
        for (int j = 0; j < 16; ++j) CHECK(blk.qs[j] == (uint8_t) ((c4[j] & 15) | (c4[j + 16] << 4)));
    }
    {
        uint8_t c2[32];
        for (int i = 0; i < 32; ++i) c2[i] = (uint8_t) (i % 4 == 0 ? 3 : i % 3);
        gl_block_intq<2, 32> blk;
        gl_intq_pack_row(GL_TYPE_Q2_G32, 32, c2, &gp, &blk);
        for (int j = 0; j < 8; ++j)
            CHECK(blk.qs[j] == (uint8_t) (c2[j] | (c2[j + 8] << 2) | (c2[j + 16] << 4) | (c2[j + 24] << 6)));
    }
    {
        uint8_t c3[32];
        for (int i = 0; i < 32; ++i) c3[i] = (uint8_t) ((i * 5) % 8);
        gl_block_intq<3, 32> blk;
        gl_intq_pack_row(GL_TYPE_Q3_G32, 32, c3, &gp, &blk);
        uint32_t h = 0;
        for (int k = 0; k < 4; ++k) h |= (uint32_t) blk.qs[8 + k] << (8 * k);
        for (int i = 0; i < 32; ++i) {
            const int lo = (blk.qs[i % 8] >> (2 * (i / 8))) & 3;
            CHECK((lo | (((h >> i) & 1) << 2)) == c3[i]);
        }
    }
    (void) c;
}

TEST_CASE("intq: scalar vec_dot equals the double dot of dequantized weights and Q8_0-dequantized activations") {
    const gl_type_traits * q8 = gl_get_type_traits(GL_TYPE_Q8_0);
    for (gl_type t : intq_types()) {
        CAPTURE(gl_type_name(t));
        int b = 0, g = 0;
        gl_intq_info(t, &b, &g);
        const gl_type_traits * tr = gl_get_type_traits(t);
        for (int64_t n : {(int64_t) g, (int64_t) 2 * g, (int64_t) 12 * g}) {
            CAPTURE(n);
            const std::vector<float> w = randn((size_t) n, 11 + (uint32_t) n + (uint32_t) t, 0.1f);
            const std::vector<float> a = randn((size_t) n, 99 + (uint32_t) n);
            std::vector<uint8_t> wq(gl_row_size(t, n)), aq(gl_row_size(GL_TYPE_Q8_0, n));
            tr->from_float(w.data(), wq.data(), n);
            q8->from_float(a.data(), aq.data(), n);
            std::vector<float> wd((size_t) n), ad((size_t) n);
            tr->to_float(wq.data(), wd.data(), n);
            q8->to_float(aq.data(), ad.data(), n);
            double ref = 0, mag = 0;
            for (int64_t i = 0; i < n; ++i) {
                ref += (double) wd[(size_t) i] * (double) ad[(size_t) i];
                mag += std::fabs((double) wd[(size_t) i] * (double) ad[(size_t) i]);
            }
            float got = 0;
            tr->vec_dot(n, &got, wq.data(), aq.data());
            CHECK(std::fabs((double) got - ref) <= 1e-5 * mag + 1e-7);
            // The kernel the active CPU level resolved (scalar unless a SIMD table fills it) agrees.
            float got2 = 0;
            gl_kernels(t).vec_dot(n, &got2, wq.data(), aq.data());
            CHECK(std::fabs((double) got2 - ref) <= 1e-5 * mag + 1e-7);
        }
        // gl_mul_mat runs them: several rows and tokens.
        const int64_t ne0 = 2 * g, ne1 = 5, nt = 3;
        const std::vector<float> w = randn((size_t) (ne0 * ne1), 5), x = randn((size_t) (ne0 * nt), 6);
        std::vector<uint8_t> wq(gl_row_size(t, ne0) * ne1);
        for (int64_t r = 0; r < ne1; ++r) tr->from_float(&w[(size_t) (r * ne0)], wq.data() + r * gl_row_size(t, ne0), ne0);
        const gl_tensor wt = gl_tensor_make(t, ne0, ne1, wq.data());
        std::vector<uint8_t> scratch(gl_mul_mat_scratch_size(wt, nt));
        std::vector<float> y((size_t) (ne1 * nt));
        gl_mul_mat(wt, x.data(), nt, y.data(), scratch.data());
        std::vector<uint8_t> xq(gl_row_size(GL_TYPE_Q8_0, ne0));
        for (int64_t tk = 0; tk < nt; ++tk) {
            q8->from_float(&x[(size_t) (tk * ne0)], xq.data(), ne0);
            for (int64_t r = 0; r < ne1; ++r) {
                float s = 0;
                tr->vec_dot(ne0, &s, wq.data() + r * gl_row_size(t, ne0), xq.data());
                CHECK(y[(size_t) (tk * ne1 + r)] == doctest::Approx(s).epsilon(1e-5));
            }
        }
    }
}

TEST_CASE("intq: GGUF export refuses the new types with an error naming the type") {
    ModelFile m = make_synthetic_model("stories260k", GL_TYPE_F32, 1);
    const TensorData & q = m.get("blk.0.attn_q.weight");
    std::vector<uint8_t> buf(gl_row_size(GL_TYPE_Q4_G64, q.ne[0]) * (size_t) q.ne[1]);
    for (int64_t r = 0; r < q.ne[1]; ++r)
        gl_get_type_traits(GL_TYPE_Q4_G64)->from_float((const float *) q.data + r * q.ne[0], buf.data() + r * gl_row_size(GL_TYPE_Q4_G64, q.ne[0]), q.ne[0]);
    ModelFile o;
    o.meta = m.meta;
    o.add_owned("blk.0.attn_q.weight", GL_TYPE_Q4_G64, q.ne, buf.data(), buf.size());
    std::string dir = make_temp_dir();
    try {
        save_gguf(dir + "/x.gguf", o);
        FAIL("save_gguf accepted q4_g64");
    } catch (const Error & e) {
        CHECK(std::string(e.what()).find("q4_g64") != std::string::npos);
    }
    rmdir(dir.c_str());
}

// ---- block forward and Hessians ------------------------------------------------------------------------------------------

TEST_CASE("block_forward: the calibration pass (widened blocks, one sequence at a time) equals Context::decode's logits (f32 weights and KV)") {
    ModelFile mf = make_synthetic_model("stories260k", GL_TYPE_F32, 5);
    LlamaModel model(mf);
    const LlamaHparams & hp = model.hp;
    const int64_t L = 24, E = hp.n_embd, V = hp.n_vocab;
    std::vector<int32_t> toks;
    for (int64_t i = 0; i < 2 * L; ++i) toks.push_back((int32_t) ((i * 37 + 11) % V));
    // Two sequences through the float blocks.
    std::vector<float> x((size_t) (2 * L * E));
    for (int64_t t = 0; t < 2 * L; ++t) model.embed(toks[(size_t) t], &x[(size_t) (t * E)]);
    for (int64_t l = 0; l < hp.n_layer; ++l) block_forward(hp, block_weights_f32(model, l).layer(), x.data(), 2, L, BlockRecorder(), true);
    ContextParams cp;
    cp.n_ctx = (int32_t) L;
    cp.kv_type = GL_TYPE_F32;
    cp.n_seq = 2;
    Context ctx(model, cp);
    Batch b;
    for (int64_t t = 0; t < 2 * L; ++t) b.add(toks[(size_t) t], (int32_t) (t % L), (int32_t) (t / L), true);
    ctx.decode(b);
    std::vector<float> xn((size_t) E), logits((size_t) V);
    double max_err = 0, max_mag = 0;
    for (int64_t t = 0; t < 2 * L; ++t) {
        gl_rms_norm(&x[(size_t) (t * E)], model.output_norm, E, hp.eps, xn.data());
        gl_mul_mat(model.output, xn.data(), 1, logits.data(), nullptr);
        for (int64_t v = 0; v < V; ++v) {
            max_err = std::max(max_err, (double) std::fabs(logits[(size_t) v] - ctx.logits((size_t) t)[v]));
            max_mag = std::max(max_mag, (double) std::fabs(logits[(size_t) v]));
        }
    }
    MESSAGE("block_forward vs decode: max |logit difference| " << max_err << " (max |logit| " << max_mag << ")");
    CHECK(max_err <= 1e-4 * std::max(1.0, max_mag));
}

TEST_CASE("gl_gemm_nt_f32: matches a double loop on odd shapes, overwrite and accumulate") {
    for (auto sh : {std::vector<int64_t>{1, 1, 1}, {5, 7, 3}, {13, 9, 33}, {70, 66, 130}, {3, 200, 1100}}) {
        const int64_t m = sh[0], n = sh[1], k = sh[2];
        const std::vector<float> A = randn((size_t) (m * k), 1), B = randn((size_t) (n * k), 2);
        std::vector<float> C((size_t) (m * n), 1.0f);
        gl_gemm_nt_f32(m, n, k, A.data(), k, B.data(), k, C.data(), n, true);
        std::vector<float> C2((size_t) (m * n), 5.0f);
        gl_gemm_nt_f32(m, n, k, A.data(), k, B.data(), k, C2.data(), n, false);
        for (int64_t i = 0; i < m; ++i) {
            for (int64_t j = 0; j < n; ++j) {
                double s = 0, mag = 0;
                for (int64_t l = 0; l < k; ++l) s += (double) A[(size_t) (i * k + l)] * B[(size_t) (j * k + l)], mag += std::fabs((double) A[(size_t) (i * k + l)] * B[(size_t) (j * k + l)]);
                CHECK(std::fabs(C2[(size_t) (i * n + j)] - s) <= 1e-5 * (mag + 1));
                CHECK(std::fabs(C[(size_t) (i * n + j)] - (s + 1.0)) <= 1e-5 * (mag + 2));
            }
        }
    }
}

TEST_CASE("calibration: Hessians are 2/N_seq · Σ x·xᵀ of each linear input; q/k/v and gate/up share theirs") {
    ModelFile mf = make_synthetic_model("stories260k", GL_TYPE_F32, 9);
    LlamaModel model(mf);
    const LlamaHparams & hp = model.hp;
    const int64_t L = 16, S = 3, E = hp.n_embd;
    std::vector<float> x = randn((size_t) (S * L * E), 4);
    const std::vector<float> x0 = x;
    const BlockWeightsF32 w = block_weights_f32(model, 2);
    BlockHessians hs;
    collect_block_hessians(hp, w.layer(), x.data(), S, L, hs);
    CHECK(x == x0);  // a recording pass leaves the activations alone
    // Record the inputs directly and build each H in double.
    std::vector<std::vector<float>> rows((size_t) LinearInput::COUNT);
    std::vector<float> xc = x0;
    block_forward(hp, w.layer(), xc.data(), S, L,
                  [&](LinearInput which, const float * xin, int64_t n, int64_t dim) { rows[(size_t) which].insert(rows[(size_t) which].end(), xin, xin + n * dim); },
                  false);
    for (int k = 0; k < (int) LinearInput::COUNT; ++k) {
        CAPTURE(linear_input_name((LinearInput) k));
        const int64_t D = linear_input_dim(hp, (LinearInput) k);
        REQUIRE(hs.h[k].dim() == D);
        REQUIRE((int64_t) rows[(size_t) k].size() == S * L * D);
        const float * H = hs.h[k].data();
        double max_err = 0, max_mag = 0;
        for (int64_t i = 0; i < D; ++i) {
            for (int64_t j = 0; j < D; ++j) {
                double s = 0;
                for (int64_t t = 0; t < S * L; ++t) s += (double) rows[(size_t) k][(size_t) (t * D + i)] * rows[(size_t) k][(size_t) (t * D + j)];
                s *= 2.0 / (double) S;
                max_err = std::max(max_err, std::fabs(s - H[i * D + j]));
                max_mag = std::max(max_mag, std::fabs(s));
                CHECK(H[i * D + j] == H[j * D + i]);
            }
        }
        CHECK(max_err <= 1e-5 * max_mag);
    }
}

// ---- GPTQ ------------------------------------------------------------------------------------------------------------------

TEST_CASE("gptq: U is the upper Cholesky factor of the damped H⁻¹ (with and without a permutation)") {
    const int64_t C = 150;  // more than one 64-column Cholesky panel, not a multiple of it
    const std::vector<float> H = correlated_hessian(C, 400, 3);
    std::vector<int64_t> perm((size_t) C);
    for (int64_t i = 0; i < C; ++i) perm[(size_t) i] = (i * 37) % C;
    for (bool permuted : {false, true}) {
        CAPTURE(permuted);
        const HinvFactor f = gptq_hinv_factor(H.data(), C, 0.01, permuted ? perm.data() : nullptr);
        CHECK(f.retries == 0);
        // (Uᵀ·U)·(H_perm + damp·I) = I
        auto P = [&](int64_t i) { return permuted ? perm[(size_t) i] : i; };
        double max_err = 0;
        for (int64_t i = 0; i < C; ++i) {
            for (int64_t j = 0; j < i; ++j) CHECK(f.U[(size_t) (i * C + j)] == 0.0f);
            CHECK(f.U[(size_t) (i * C + i)] > 0.0f);
        }
        std::vector<double> hinv((size_t) (C * C), 0.0);
        for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) {
                double s = 0;
                for (int64_t k = 0; k <= std::min(i, j); ++k) s += (double) f.U[(size_t) (k * C + i)] * f.U[(size_t) (k * C + j)];
                hinv[(size_t) (i * C + j)] = s;
            }
        for (int64_t i = 0; i < C; ++i)
            for (int64_t j = 0; j < C; ++j) {
                double s = 0;
                for (int64_t k = 0; k < C; ++k) s += hinv[(size_t) (i * C + k)] * ((double) H[(size_t) (P(k) * C + P(j))] + (k == j ? f.damp : 0.0));
                max_err = std::max(max_err, std::fabs(s - (i == j ? 1.0 : 0.0)));
            }
        CHECK(max_err < 1e-3);
    }
}

TEST_CASE("gptq: beats RTN on the Hessian-weighted error tr((W−Q)·H·(W−Q)ᵀ), every bit width, with and without act-order") {
    const int64_t R = 48, C = 256;
    const std::vector<float> H = correlated_hessian(C, 600, 21);
    const std::vector<float> W0 = randn((size_t) (R * C), 22, 0.02f);
    for (int bits : {2, 3, 4}) {
        for (int group : {32, 128}) {
            CAPTURE(bits);
            CAPTURE(group);
            std::vector<float> Wr = W0, Wg = W0, Wa = W0;
            IntQuantLayer qr, qg, qa;
            rtn_quantize(Wr.data(), R, C, bits, group, &qr);
            GptqParams gp;
            gp.bits = bits;
            gp.group = group;
            GptqStats st;
            gptq_quantize(Wg.data(), R, C, H.data(), gp, &qg, &st);
            gp.act_order = true;
            gptq_quantize(Wa.data(), R, C, H.data(), gp, &qa, nullptr);
            const double er = hessian_weighted_error(W0.data(), Wr.data(), R, C, H.data());
            const double eg = hessian_weighted_error(W0.data(), Wg.data(), R, C, H.data());
            const double ea = hessian_weighted_error(W0.data(), Wa.data(), R, C, H.data());
            MESSAGE("int" << bits << " g" << group << ": RTN " << er << ", GPTQ " << eg << " (" << eg / er << "x), act-order " << ea << " (" << ea / er << "x)");
            CHECK(eg < 0.8 * er);
            CHECK(ea < 0.8 * er);
            // W now holds exactly what the codes and grids decode to, and the packed type decodes to it too.
            const gl_type t = gl_intq_type(bits, group);
            const std::vector<uint8_t> packed = pack_layer(qg, t);
            std::vector<float> back((size_t) C);
            for (int64_t r = 0; r < R; ++r) {
                gl_get_type_traits(t)->to_float(packed.data() + r * gl_row_size(t, C), back.data(), C);
                CHECK(std::memcmp(back.data(), &Wg[(size_t) (r * C)], sizeof(float) * (size_t) C) == 0);
                for (int64_t c = 0; c < C; ++c) CHECK(qa.value(r, c) == Wa[(size_t) (r * C + c)]);
            }
        }
    }
}

TEST_CASE("gptq: the lazy block size changes nothing but rounding; dead columns become zero; a partial last group works") {
    const int64_t R = 20, C = 172;  // stories260K's ffn_down shape: groups of 128 and 44
    std::vector<float> H = correlated_hessian(C, 500, 5);
    for (int64_t j : {3, 100}) {  // dead inputs
        for (int64_t i = 0; i < C; ++i) H[(size_t) (i * C + j)] = H[(size_t) (j * C + i)] = 0.0f;
    }
    const std::vector<float> W0 = randn((size_t) (R * C), 6, 0.05f);
    GptqParams gp;
    gp.bits = 3;
    gp.group = 128;
    std::vector<float> W1 = W0, W2 = W0;
    IntQuantLayer q1, q2;
    GptqStats st;
    gptq_quantize(W1.data(), R, C, H.data(), gp, &q1, &st);
    CHECK(st.dead == 2);
    CHECK(q1.n_groups() == 2);
    gp.block = 32;  // raised to a multiple of the group: the same
    gptq_quantize(W2.data(), R, C, H.data(), gp, &q2, nullptr);
    CHECK(W1 == W2);
    gp.group = 32;
    gp.block = 128;
    IntQuantLayer q3, q4;
    std::vector<float> W3 = W0, W4 = W0;
    gptq_quantize(W3.data(), R, C, H.data(), gp, &q3, nullptr);
    gp.block = 32;
    gptq_quantize(W4.data(), R, C, H.data(), gp, &q4, nullptr);
    size_t same = 0;
    for (size_t i = 0; i < q3.codes.size(); ++i) same += q3.codes[i] == q4.codes[i];
    CHECK(same >= q3.codes.size() * 99 / 100);
    for (int64_t r = 0; r < R; ++r) {
        CHECK(W1[(size_t) (r * C + 3)] == 0.0f);
        CHECK(W1[(size_t) (r * C + 100)] == 0.0f);
    }
    // Stored as f16 (172 is not a multiple of 32): the values survive to within fp16 rounding.
    gl_type t;
    int g = 0;
    t = intq_layer_type(3, 128, C, &g);
    CHECK(t == GL_TYPE_F16);
    CHECK(g == 128);
    CHECK(intq_layer_type(4, 128, 64, &g) == GL_TYPE_Q4_G64);
    CHECK(g == 64);
    CHECK(intq_layer_type(2, 128, 96, &g) == GL_TYPE_Q2_G32);
    CHECK(intq_layer_type(4, 128, 2048, &g) == GL_TYPE_Q4_G128);
    const std::vector<uint8_t> f16 = pack_layer(q1, GL_TYPE_F16);
    for (int64_t i = 0; i < R * C; ++i) CHECK(gl_fp16_to_fp32(((const uint16_t *) f16.data())[i]) == doctest::Approx(W1[(size_t) i]).epsilon(1e-3));
}

// ---- end to end --------------------------------------------------------------------------------------------------------------

TEST_CASE("quantize: in-process on a synthetic model: one block of float weights at a time, RTN bytes = the type's from_float") {
    // Memory bound, by accounting: the quantizer widens one block's weights at a time and releases them before the
    // next (quantize_model's `resident` counter); Hessians are per block and released with it; the only other
    // buffers are the calibration activations (tokens × n_embd) and one tensor's packed bytes.
    std::string dir = make_temp_dir();
    ModelFile mf = make_synthetic_model("stories260k", GL_TYPE_F32, 4);
    const std::string in = dir + "/in.quill", text = dir + "/calib.txt", out = dir + "/out.quill", out2 = dir + "/rtn.quill";
    save_quill(in, mf);
    {
        std::ofstream f(text);
        for (int i = 0; i < 400; ++i) f << "Once upon a time there was a little dog named Max " << i << ". He liked to run in the park.\n";
    }
    QuantizeParams p;
    p.input = in;
    p.output = out;
    p.method = "gptq";
    p.bits = 3;
    p.calib_file = text;
    p.calib_tokens = 1024;
    p.seq_len = 128;
    p.keep = default_keep_rules();
    p.progress = false;
    const QuantizeReport r = quantize_model(p);
    LlamaModel model(mf);
    size_t all_linear = 0;
    for (int64_t l = 0; l < model.hp.n_layer; ++l) all_linear += block_weights_f32(model, l).n_floats();
    CHECK(r.peak_weight_floats == r.max_block_floats);
    CHECK(r.max_block_floats * (size_t) model.hp.n_layer == all_linear);
    CHECK(r.calib_tokens == 1024);
    CHECK(r.calib_xxh3 == quill_checksum(read_file(text).data(), read_file(text).size()));
    const int64_t E = model.hp.n_embd, F = model.hp.n_ff;
    CHECK(r.peak_hessian_bytes == sizeof(float) * (size_t) (E * E * 2 + E * E + F * F));  // q_dim = n_embd here
    CHECK(r.activation_bytes == sizeof(float) * (size_t) (1024 * E));
    CHECK(r.bpw_linear() > 3.0);
    CHECK(r.bpw_linear() < 8.0);

    ModelFile q = load_quill(out);  // checksums verified
    CHECK(q.get("blk.0.attn_q.weight").type == GL_TYPE_Q3_G64);
    CHECK(q.get("blk.4.ffn_down.weight").type == GL_TYPE_F16);
    CHECK(q.get("token_embd.weight").type == GL_TYPE_Q8_0);
    CHECK(q.get("blk.0.attn_norm.weight").type == GL_TYPE_F32);
    CHECK(q.meta.get_str("quill.quantize.method", "") == "gptq");
    CHECK(q.meta.get_int("quill.quantize.calib.tokens", 0) == 1024);

    // RTN needs no calibration, and its bytes are exactly the type's reference quantizer.
    p.method = "rtn";
    p.output = out2;
    p.calib_file.clear();
    p.keep = parse_keep_rules("token_embd.weight=f16");
    quantize_model(p);
    ModelFile rq = load_quill(out2);
    CHECK(rq.get("token_embd.weight").type == GL_TYPE_F16);
    const TensorData & src = mf.get("blk.1.ffn_up.weight");
    const TensorData & dst = rq.get("blk.1.ffn_up.weight");
    REQUIRE(dst.type == GL_TYPE_Q3_G64);
    std::vector<uint8_t> ref(dst.nbytes);
    for (int64_t row = 0; row < src.ne[1]; ++row)
        gl_get_type_traits(dst.type)->from_float((const float *) src.data + row * src.ne[0], ref.data() + row * gl_row_size(dst.type, src.ne[0]), src.ne[0]);
    CHECK(std::memcmp(ref.data(), dst.data, dst.nbytes) == 0);
    for (const std::string & f : {in, text, out, out2}) std::remove(f.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("quantize: bad options are one clear error each") {
    std::string log;
    const std::string q = quill_binary() + " quantize ";
    CHECK(run_command(q + "-m x.bin -o y.quill --bits 5", &log) == 1);
    CHECK(log.find("--bits") != std::string::npos);
    CHECK(run_command(q + "-m x.bin -o y.quill --method foo", &log) == 1);
    CHECK(log.find("unknown method 'foo'") != std::string::npos);
    CHECK(run_command(q + "-m x.bin -o y.quill --keep token_embd.weight", &log) == 1);
    CHECK(log.find("NAME=TYPE") != std::string::npos);
    CHECK(run_command(q + "--help", &log) == 0);
    CHECK(log.find("rtn ") != std::string::npos);
    CHECK(log.find("gptq ") != std::string::npos);
    ModelFile mf = make_synthetic_model("stories260k", GL_TYPE_F32, 4);
    std::string dir = make_temp_dir();
    save_quill(dir + "/in.quill", mf);
    CHECK(run_command(q + "-m " + dir + "/in.quill -o " + dir + "/o.quill --method gptq", &log) == 1);
    CHECK(log.find("--calib") != std::string::npos);
    std::remove((dir + "/in.quill").c_str());
    rmdir(dir.c_str());
}

TEST_CASE("quantize: stories260K GPTQ int4 end to end: loads with checksums, generates text, PPL near f32's, KLD small") {
    REQUIRE_SHARED();
    std::string dir = make_temp_dir();
    const std::string bin = shared_path("models/stories260K/stories260K.bin"), tok = shared_path("models/stories260K/tok512.bin");
    const std::string calib = shared_path("data/text/tinystories-train-head2MiB.txt"), valid = shared_path("data/text/tinystories-valid-head.txt");
    const std::string out = dir + "/s-gptq4.quill";
    std::string log;
    int rc = run_command(quill_binary() + " quantize -m " + bin + " --tokenizer " + tok + " --method gptq --bits 4 --calib " + calib +
                             " --calib-tokens 8192 -t 1 -o " + out,
                         &log);
    REQUIRE_MESSAGE(rc == 0, log);
    CHECK(log.find("[ 35/35] blk.4.ffn_down.weight") != std::string::npos);  // a progress line per layer
    CHECK(log.find("ETA") != std::string::npos);

    ModelFile mf = load_quill(out);  // verifies every checksum
    CHECK(mf.meta.get_str("quill.quantize.calib.xxh3", "") ==
          strfmt("%016llx", (unsigned long long) quill_checksum(read_file(calib).data(), read_file(calib).size())));
    CHECK(mf.meta.get_int("quill.quantize.calib.tokens", 0) == 8192);
    CHECK(mf.get("blk.2.ffn_gate.weight").type == GL_TYPE_Q4_G64);
    CHECK(mf.get("blk.2.ffn_down.weight").type == GL_TYPE_F16);

    // Greedy generation: a story, in ASCII words.
    {
        const std::string text = greedy_story(mf);
        MESSAGE("gptq int4: Once upon a time" << text);
        size_t letters = 0, spaces = 0;
        for (char c : text) letters += isalpha((unsigned char) c) ? 1 : 0, spaces += c == ' ';
        CHECK(letters > 60);
        CHECK(spaces > 10);
    }

    // Perplexity on 12 chunks of 128, with the KL-divergence against the f32 original.
    rc = run_command(quill_binary() + " perplexity -m " + out + " --kld-base " + bin + " --tokenizer " + tok + " -f " + valid +
                         " -c 128 --chunks 12 -t 1",
                     &log);
    REQUIRE_MESSAGE(rc == 0, log);
    const double ppl = parse_after(log, "Final estimate: PPL = ");
    const double base = parse_after(log, "base PPL = ");
    const double kld = parse_after(log, "Mean KLD: ");
    const double k99 = parse_after(log, "99.0% KLD: ");
    MESSAGE("stories260K gptq int4: PPL " << ppl << " vs f32 " << base << ", mean KLD " << kld << ", 99% KLD " << k99);
    CHECK(std::isfinite(ppl));
    CHECK(ppl < 1.15 * base);
    CHECK(kld > 0.0);
    CHECK(kld < 0.15);
    CHECK(k99 >= kld);
    std::remove(out.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("quantize: stories260K LRQ W4A8 end to end: per-row int4 with int8 activations, loads, generates text, beats RTN per-channel") {
    REQUIRE_SHARED();
    std::string dir = make_temp_dir();
    const std::string bin = shared_path("models/stories260K/stories260K.bin"), tok = shared_path("models/stories260K/tok512.bin");
    const std::string calib = shared_path("data/text/tinystories-train-head2MiB.txt"), valid = shared_path("data/text/tinystories-valid-head.txt");
    const std::string lrq = dir + "/s-lrq4a8.quill", rtn = dir + "/s-rtn4a8.quill";
    std::string log;
    int rc = run_command(quill_binary() + " quantize -m " + bin + " --tokenizer " + tok + " --method lrq --bits 4 --act token --calib " + calib +
                             " --calib-tokens 4096 --seq-len 128 --lrq-iters 40 -t 2 -o " + lrq,
                         &log);
    REQUIRE_MESSAGE(rc == 0, log);
    CHECK(log.find("block 4: lrq fit, 40 steps") != std::string::npos);
    rc = run_command(quill_binary() + " quantize -m " + bin + " --tokenizer " + tok + " --method rtn --bits 4 --per-channel --act token -t 2 -o " + rtn, &log);
    REQUIRE_MESSAGE(rc == 0, log);

    ModelFile mf = load_quill(lrq);
    CHECK(mf.meta.get_str("quill.quantize.method", "") == "lrq");
    CHECK(mf.meta.get_str("quill.quantize.act", "") == "token");
    CHECK(mf.get("blk.2.ffn_gate.weight").type == GL_TYPE_Q4_ROW_A8);  // the activation scheme is the tensor's type
    CHECK(mf.get("blk.2.attn_q.weight").type == GL_TYPE_Q4_ROW_A8);
    CHECK(mf.get("blk.2.ffn_down.weight").type == GL_TYPE_F16);  // rows of 172: not whole blocks of 32
    {
        const std::string text = greedy_story(mf);
        MESSAGE("lrq W4A8: Once upon a time" << text);
        size_t letters = 0, spaces = 0;
        for (char c : text) letters += isalpha((unsigned char) c) ? 1 : 0, spaces += c == ' ';
        CHECK(letters > 60);
        CHECK(spaces > 10);
    }
    double kld[2];
    for (int i = 0; i < 2; ++i) {
        rc = run_command(quill_binary() + " perplexity -m " + (i ? rtn : lrq) + " --kld-base " + bin + " --tokenizer " + tok + " -f " + valid +
                             " -c 128 --chunks 12 -t 1",
                         &log);
        REQUIRE_MESSAGE(rc == 0, log);
        kld[i] = parse_after(log, "Mean KLD: ");
    }
    MESSAGE("stories260K W4A8 per-channel: mean KLD lrq " << kld[0] << ", rtn " << kld[1]);
    CHECK(kld[0] > 0.0);
    CHECK(kld[0] < kld[1]);
    std::remove(lrq.c_str());
    std::remove(rtn.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("quantize: stories260K W8A8 with static per-tensor activations (--act tensor) and W3 per-channel: stored, loaded, used") {
    REQUIRE_SHARED();
    std::string dir = make_temp_dir();
    const std::string bin = shared_path("models/stories260K/stories260K.bin"), tok = shared_path("models/stories260K/tok512.bin");
    const std::string calib = shared_path("data/text/tinystories-train-head2MiB.txt"), valid = shared_path("data/text/tinystories-valid-head.txt");
    const std::string st = dir + "/s-rtn8s.quill", tk = dir + "/s-rtn8a8.quill", w3 = dir + "/s-rtn3.quill";
    std::string log;
    int rc = run_command(quill_binary() + " quantize -m " + bin + " --tokenizer " + tok + " --method rtn --bits 8 --per-channel --act tensor --calib " +
                             calib + " --calib-tokens 4096 --seq-len 128 -t 2 -o " + st,
                         &log);
    REQUIRE_MESSAGE(rc == 0, log);
    CHECK(log.find("block 4: static activation grids: attn_qkv s ") != std::string::npos);
    rc = run_command(quill_binary() + " quantize -m " + bin + " --tokenizer " + tok + " --method rtn --bits 8 --per-channel --act token -t 2 -o " + tk, &log);
    REQUIRE_MESSAGE(rc == 0, log);
    rc = run_command(quill_binary() + " quantize -m " + bin + " --tokenizer " + tok + " --method rtn --bits 3 --per-channel -t 2 -o " + w3, &log);
    REQUIRE_MESSAGE(rc == 0, log);

    ModelFile mf = load_quill(st);
    CHECK(mf.meta.get_str("quill.quantize.act", "") == "tensor");
    CHECK(mf.get("blk.1.attn_q.weight").type == GL_TYPE_Q8_ROW_A8);
    CHECK(mf.find("blk.1.ffn_down.input_scale") == nullptr);  // ffn_down (rows of 172) stays f16: float activations
    float grid[3][2];
    const char * qkv[3] = {"blk.1.attn_q.input_scale", "blk.1.attn_k.input_scale", "blk.1.attn_v.input_scale"};
    for (int i = 0; i < 3; ++i) {
        const TensorData & t = mf.get(qkv[i]);
        REQUIRE(t.type == GL_TYPE_F32);
        REQUIRE(t.n_elements() == 2);
        memcpy(grid[i], t.data, sizeof grid[i]);
        CHECK(grid[i][0] > 0.0f);
        CHECK(grid[i][1] == std::floor(grid[i][1]));
        CHECK(grid[i][1] >= -128.0f);
        CHECK(grid[i][1] <= 127.0f);
    }
    CHECK(memcmp(grid[0], grid[1], sizeof grid[0]) == 0);  // one grid per linear input: q, k and v share theirs
    CHECK(memcmp(grid[0], grid[2], sizeof grid[0]) == 0);
    float go[2];
    memcpy(go, mf.get("blk.1.attn_output.input_scale").data, sizeof go);
    CHECK(go[0] != grid[0][0]);
    {
        const LlamaModel m(mf, false);
        CHECK(m.layers[1].wq.act_s == grid[0][0]);
        CHECK(m.layers[1].wq.act_z == (int32_t) grid[0][1]);
        CHECK(m.layers[1].wo.act_s == go[0]);
        CHECK(m.layers[1].w_down.act_s == 0.0f);
    }
    // a bad grid is one clear error naming the tensor, never a crash
    const float bads[4][2] = {{NAN, 0.0f}, {0.0f, 0.0f}, {0.1f, 128.0f}, {0.1f, 0.5f}};
    for (const auto & bad : bads) {
        ModelFile m2 = load_quill(st);
        for (TensorData & t : m2.tensors)
            if (t.name == "blk.2.attn_output.input_scale") t.data = (const uint8_t *) bad;
        CHECK_THROWS_WITH_AS(LlamaModel(m2, false), doctest::Contains("blk.2.attn_output.input_scale"), quill::Error);
    }
    {
        ModelFile m3 = load_quill(tk);  // a grid beside a weight whose activations are float
        ModelFile m4 = load_quill(w3);
        const float g[2] = {0.1f, 0.0f};
        m4.add_owned("blk.0.attn_q.input_scale", GL_TYPE_F32, {2}, g, sizeof g);
        CHECK_THROWS_WITH_AS(LlamaModel(m4, false), doctest::Contains("activations are not a8_row"), quill::Error);
        CHECK(m4.get("blk.0.attn_q.weight").type == GL_TYPE_Q3_ROW);
        CHECK(m3.find("blk.0.attn_q.input_scale") == nullptr);
    }
    {
        // convert to a type without a8_row activations drops the grids (the output must run), keeping it keeps them
        const std::string c8 = dir + "/s-q8_0.quill", cs = dir + "/s-same.quill";
        rc = run_command(quill_binary() + " convert " + st + " --type q8_0 -o " + c8, &log);
        REQUIRE_MESSAGE(rc == 0, log);
        rc = run_command(quill_binary() + " convert " + st + " --type q8_row_a8 -o " + cs, &log);
        REQUIRE_MESSAGE(rc == 0, log);
        const ModelFile a = load_quill(c8), b = load_quill(cs);
        CHECK(a.find("blk.1.attn_q.input_scale") == nullptr);
        CHECK(b.find("blk.1.attn_q.input_scale") != nullptr);
        CHECK_NOTHROW(LlamaModel(a, false));
        CHECK_NOTHROW(LlamaModel(b, false));
        std::remove(c8.c_str());
        std::remove(cs.c_str());
    }
    {
        const ModelFile m5 = load_quill(w3);
        const std::string text = greedy_story(m5);
        MESSAGE("rtn W3A16: Once upon a time" << text);
        size_t letters = 0;
        for (char c : text) letters += isalpha((unsigned char) c) ? 1 : 0;
        CHECK(letters > 60);
    }
    double kld[2];
    for (int i = 0; i < 2; ++i) {
        rc = run_command(quill_binary() + " perplexity -m " + (i ? tk : st) + " --kld-base " + bin + " --tokenizer " + tok + " -f " + valid +
                             " -c 128 --chunks 12 -t 1",
                         &log);
        REQUIRE_MESSAGE(rc == 0, log);
        kld[i] = parse_after(log, "Mean KLD: ");
    }
    MESSAGE("stories260K RTN W8A8: mean KLD static per-tensor " << kld[0] << ", per-token " << kld[1]);
    CHECK(kld[0] > 0.0);
    CHECK(kld[0] != kld[1]);
    CHECK(kld[0] < 0.05);
    for (const std::string & f : {st, tk, w3}) std::remove(f.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("quantize: per-channel and lrq flags are checked before anything is read") {
    std::string log;
    const std::string q = quill_binary() + " quantize -m /nonexistent.bin -o /tmp/quill-never-written.quill ";
    CHECK(run_command(q + "--method rtn --bits 2 --per-channel", &log) != 0);
    CHECK(log.find("3, 4 or 8 bits") != std::string::npos);
    CHECK(run_command(q + "--method rtn --bits 4 --act token", &log) != 0);
    CHECK(log.find("per-channel") != std::string::npos);
    CHECK(run_command(q + "--method rtn --bits 8 --per-channel --act tensor", &log) != 0);
    CHECK(log.find("--act tensor calibrates") != std::string::npos);
    CHECK(run_command(q + "--method lrq --bits 4 --act channel --calib x.txt", &log) != 0);
    CHECK(log.find("--act must be token, tensor or none") != std::string::npos);
    CHECK(run_command(q + "--method lrq --bits 4 --lrq-rank zero --calib x.txt", &log) != 0);
    CHECK(log.find("--lrq-rank") != std::string::npos);
    CHECK(run_command(q + "--method gptvq --per-channel --calib x.txt", &log) != 0);
    CHECK(log.find("--per-channel is for") != std::string::npos);
}

TEST_CASE("perplexity --kld-base: a model against itself has zero KLD and the same top token everywhere") {
    REQUIRE_SHARED();
    const std::string m = shared_path("golden/stories260K/stories260K-Q4_0.gguf");
    std::string log;
    const int rc = run_command(quill_binary() + " perplexity -m " + m + " --kld-base " + m + " -f " + shared_path("data/text/tinystories-valid-head.txt") +
                                   " -c 128 --chunks 4 -t 1",
                               &log);
    REQUIRE_MESSAGE(rc == 0, log);
    CHECK(parse_after(log, "Mean KLD: ") < 1e-9);
    CHECK(parse_after(log, "Maximum KLD: ") < 1e-9);
    CHECK(parse_after(log, "Same top token: ") == 100.0);
    CHECK(parse_after(log, "Final estimate: PPL = ") == doctest::Approx(parse_after(log, "base PPL = ")).epsilon(1e-4));
}
