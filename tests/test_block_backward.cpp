// The block's reverse mode (model/block_backward.h): its forward against the one block (model/block_forward.h), its
// gradients against central finite differences in double for the input and every linear weight, for every
// architecture the block supports, and the float build against the double one at any thread count.
#include "formats/arch.h"
#include "model/block_backward.h"
#include "model/block_forward.h"

#include <doctest/doctest.h>

#include <cmath>
#include <omp.h>
#include <random>
#include <string>
#include <vector>

using namespace quill;

namespace {

constexpr int NL = (int) LayerTensor::COUNT;
const LayerTensor k_linears[] = {LayerTensor::ATTN_Q, LayerTensor::ATTN_K,    LayerTensor::ATTN_V,   LayerTensor::ATTN_OUT,
                                 LayerTensor::FFN_GATE, LayerTensor::FFN_UP, LayerTensor::FFN_DOWN};

// A small random block of architecture `arch` with every part the architecture has (and, for llama, partial RoPE and
// frequency factors; for gemma3, a sliding window shorter than the sequences).
struct RandomBlock {
    LlamaHparams hp;
    LlamaLayer   L;
    std::vector<float> norms[NL], w[NL];
    std::vector<float> freqs;

    RandomBlock(const Arch & a, uint32_t seed, bool partial_rope) {
        std::mt19937 rng(seed);
        std::normal_distribution<float> g(0.0f, 1.0f);
        std::uniform_real_distribution<float> u(0.6f, 1.4f);
        hp.arch = &a;
        hp.n_embd = 16;
        hp.n_ff = 24;
        hp.n_head = 4;
        hp.n_head_kv = 2;
        hp.head_dim = 8;
        hp.n_rot = partial_rope ? 4 : 8;
        hp.eps = 1e-5f;
        hp.rope_mode = a.rope == RopeStyle::HALVES ? GL_ROPE_NEOX : GL_ROPE_NORM;
        hp.rope_freq_scale = partial_rope ? 0.5f : 1.0f;
        L.rope_base = 10000.0f;
        L.window = a.swa_pattern ? 3 : 0;
        if (partial_rope) {
            for (int i = 0; i < hp.n_rot / 2; ++i) freqs.push_back(1.0f + (float) i);
            L.rope_freqs = freqs.data();
        }
        const BlockDims d{hp.n_embd, hp.n_ff, hp.n_head, hp.n_head_kv, hp.head_dim};
        for (int r = 0; r < NL; ++r) {
            const LayerTensor role = (LayerTensor) r;
            if (!arch_has(a, role)) continue;
            const std::vector<int64_t> ne = layer_tensor_shape(role, d);
            int64_t n = 1;
            for (int64_t e : ne) n *= e;
            if (layer_tensor_linear(role)) {
                w[r].resize((size_t) n);
                const float sc = 1.0f / std::sqrt((float) ne[0]);
                for (float & v : w[r]) v = sc * g(rng);
                *L.linear(role) = gl_tensor_make(GL_TYPE_F32, ne[0], ne.size() > 1 ? ne[1] : 1, w[r].data());
            } else {
                norms[r].resize((size_t) n);
                const bool bias = role == LayerTensor::ATTN_Q_BIAS || role == LayerTensor::ATTN_K_BIAS || role == LayerTensor::ATTN_V_BIAS;
                for (float & v : norms[r]) v = bias ? 0.3f * g(rng) : u(rng);
            }
        }
        auto nrm = [&](LayerTensor r) { return norms[(int) r].empty() ? nullptr : norms[(int) r].data(); };
        L.attn_norm = nrm(LayerTensor::ATTN_NORM);
        L.bq = nrm(LayerTensor::ATTN_Q_BIAS);
        L.bk = nrm(LayerTensor::ATTN_K_BIAS);
        L.bv = nrm(LayerTensor::ATTN_V_BIAS);
        L.q_norm = nrm(LayerTensor::ATTN_Q_NORM);
        L.k_norm = nrm(LayerTensor::ATTN_K_NORM);
        L.post_attn_norm = nrm(LayerTensor::POST_ATTN_NORM);
        L.ffn_norm = nrm(LayerTensor::FFN_NORM);
        L.post_ffw_norm = nrm(LayerTensor::POST_FFW_NORM);
    }
};

double rel_err(const std::vector<double> & a, const std::vector<double> & b) {
    double num = 0.0, den = 0.0;
    for (size_t i = 0; i < a.size(); ++i) {
        num += (a[i] - b[i]) * (a[i] - b[i]);
        den += b[i] * b[i];
    }
    return std::sqrt(num / std::max(den, 1e-300));
}

template <class T> std::vector<T> widen(const std::vector<float> & v) { return std::vector<T>(v.begin(), v.end()); }

void check_arch(const Arch & a, bool partial_rope) {
    const RandomBlock B(a, 1234u + (uint32_t) partial_rope, partial_rope);
    const int64_t n_seq = 2, S = 6, n = n_seq * S, E = B.hp.n_embd;
    std::mt19937 rng(99);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x((size_t) (n * E)), R((size_t) (n * E));
    for (float & v : x) v = g(rng);
    for (float & v : R) v = g(rng);

    // forward: the tape's float forward equals the one block's
    BlockTape<float> tf;
    const float * wf[NL] = {};
    for (LayerTensor r : k_linears) wf[(int) r] = B.w[(int) r].data();
    std::vector<float> yf((size_t) (n * E)), yref = x;
    tf.forward(B.hp, B.L, wf, x.data(), n_seq, S, yf.data());
    block_forward(B.hp, B.L, yref.data(), n_seq, S, BlockRecorder(), true);
    double md = 0.0, mref = 0.0;
    for (size_t i = 0; i < yf.size(); ++i) {
        md = std::max(md, (double) std::fabs(yf[i] - yref[i]));
        mref = std::max(mref, (double) std::fabs(yref[i]));
    }
    CHECK(md <= 1e-5 * mref);

    // double: analytic gradients of loss = Σ R∘y, and central differences
    BlockTape<double> td;
    std::vector<double> wd[NL];
    const double * wdp[NL] = {};
    for (LayerTensor r : k_linears) {
        wd[(int) r] = widen<double>(B.w[(int) r]);
        wdp[(int) r] = wd[(int) r].data();
    }
    std::vector<double> xd = widen<double>(x), Rd = widen<double>(R), yd((size_t) (n * E)), dxd((size_t) (n * E));
    std::vector<double> dwd[NL];
    double * dwp[NL] = {};
    for (LayerTensor r : k_linears) {
        dwd[(int) r].resize(wd[(int) r].size());
        dwp[(int) r] = dwd[(int) r].data();
    }
    td.forward(B.hp, B.L, wdp, xd.data(), n_seq, S, yd.data());
    td.backward(Rd.data(), dxd.data(), dwp);
    auto loss = [&]() {
        BlockTape<double> t;
        std::vector<double> y((size_t) (n * E));
        t.forward(B.hp, B.L, wdp, xd.data(), n_seq, S, y.data());
        double s = 0.0;
        for (size_t i = 0; i < y.size(); ++i) s += Rd[i] * y[i];
        return s;
    };
    auto fd = [&](std::vector<double> & p) {
        std::vector<double> gr(p.size());
        const double h = 1e-5;
        for (size_t i = 0; i < p.size(); ++i) {
            const double v = p[i];
            p[i] = v + h;
            const double lp = loss();
            p[i] = v - h;
            const double lm = loss();
            p[i] = v;
            gr[i] = (lp - lm) / (2 * h);
        }
        return gr;
    };
    const double ex = rel_err(fd(xd), dxd);
    INFO(std::string(a.name) << (partial_rope ? " (partial RoPE, frequency factors)" : "") << ": input rel. error " << ex);
    CHECK(ex < 1e-3);
    CHECK(ex < 1e-6);  // double: the finite differences' own error is about h²
    for (LayerTensor r : k_linears) {
        const double e = rel_err(fd(wd[(int) r]), dwd[(int) r]);
        INFO(std::string(a.name) << ": " << std::string(layer_tensor_gguf(r)) << " rel. error " << e);
        CHECK(e < 1e-6);
    }

    // float against double, at 1 and 2 threads (bit-identical)
    std::vector<float> dxf[2];
    std::vector<float> dwf[2][NL];
    for (int th = 0; th < 2; ++th) {
        const int prev = omp_get_max_threads();
        omp_set_num_threads(th + 1);
        BlockTape<float> t;
        std::vector<float> y((size_t) (n * E));
        float * dwfp[NL] = {};
        for (LayerTensor r : k_linears) {
            dwf[th][(int) r].resize(B.w[(int) r].size());
            dwfp[(int) r] = dwf[th][(int) r].data();
        }
        dxf[th].resize((size_t) (n * E));
        t.forward(B.hp, B.L, wf, x.data(), n_seq, S, y.data());
        t.backward(R.data(), dxf[th].data(), dwfp);
        omp_set_num_threads(prev);
    }
    CHECK(dxf[0] == dxf[1]);
    CHECK(rel_err(widen<double>(dxf[0]), dxd) < 1e-4);
    for (LayerTensor r : k_linears) {
        CHECK(dwf[0][(int) r] == dwf[1][(int) r]);
        CHECK(rel_err(widen<double>(dwf[0][(int) r]), dwd[(int) r]) < 1e-4);
    }
}

}  // namespace

TEST_CASE("block backward: gradients match central finite differences for every architecture") {
    for (const Arch * a : arch_all()) {
        const std::string name = a->name;
        CAPTURE(name);
        check_arch(*a, false);
    }
    check_arch(*arch_find("llama"), true);
}

TEST_CASE("block backward: dx may alias dy, and a second backward gives the same gradients") {
    const RandomBlock B(*arch_find("qwen3"), 7u, false);
    const int64_t n_seq = 3, S = 5, n = n_seq * S, E = B.hp.n_embd;
    std::mt19937 rng(5);
    std::normal_distribution<float> g(0.0f, 1.0f);
    std::vector<float> x((size_t) (n * E)), dy((size_t) (n * E));
    for (float & v : x) v = g(rng);
    for (float & v : dy) v = g(rng);
    const float * wf[NL] = {};
    for (LayerTensor r : k_linears) wf[(int) r] = B.w[(int) r].data();
    BlockTape<float> t;
    std::vector<float> y = x, dx((size_t) (n * E));
    t.forward(B.hp, B.L, wf, y.data(), n_seq, S, y.data());  // in place
    t.backward(dy.data(), dx.data(), nullptr);
    std::vector<float> d2 = dy;
    t.backward(d2.data(), d2.data(), nullptr);
    CHECK(d2 == dx);
    CHECK(t.bytes() > 0);
}
