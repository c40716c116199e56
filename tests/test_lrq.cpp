// LRQ (quantize/lrq.h): the grid search, the starting point (round-to-nearest on the grid), and the fit on a real
// block of stories260K: its loss falls over the iterations and ends below round-to-nearest's, the same at 1 and 2
// threads.
#include "tests/test_util.h"

#include "formats/model_file.h"
#include "model/block_forward.h"
#include "model/llama.h"
#include "model/tokenizer.h"
#include "quantize/calibration.h"
#include "quantize/lrq.h"
#include "quantize/rtn.h"

#include <doctest/doctest.h>

#include <cmath>
#include <numeric>
#include <omp.h>
#include <random>
#include <vector>

using namespace quill;

namespace {

double lp_err(const std::vector<float> & w, float s, int z, int bits) {
    const int maxq = (1 << bits) - 1;
    double e = 0.0;
    for (float x : w) {
        const float q = std::clamp(nearbyintf(x / s) + (float) z, 0.0f, (float) maxq);
        e += std::pow(std::fabs((double) x - (double) s * (q - (float) z)), 2.4);
    }
    return e;
}

const LayerTensor k_roles[] = {LayerTensor::ATTN_Q,   LayerTensor::ATTN_K, LayerTensor::ATTN_V,  LayerTensor::ATTN_OUT,
                               LayerTensor::FFN_GATE, LayerTensor::FFN_UP, LayerTensor::FFN_DOWN};

}  // namespace

TEST_CASE("lrq: the 2-D grid search beats the min/max grid, and the fit starts at round-to-nearest on it") {
    std::mt19937 rng(3);
    std::student_t_distribution<float> heavy(3.0f);  // heavy tails, where clipping pays
    for (int bits : {3, 4}) {
        std::vector<float> w(300);
        for (float & v : w) v = 0.02f * heavy(rng);
        float s_mm, s_se;
        int z_mm, z_se;
        lrq_row_grid(w.data(), (int64_t) w.size(), bits, false, &s_mm, &z_mm);
        lrq_row_grid(w.data(), (int64_t) w.size(), bits, true, &s_se, &z_se);
        const float mn = *std::min_element(w.begin(), w.end()), mx = *std::max_element(w.begin(), w.end());
        CHECK(s_mm == doctest::Approx((mx - mn) / (float) ((1 << bits) - 1)));
        CHECK(lp_err(w, s_se, z_se, bits) < lp_err(w, s_mm, z_mm, bits));
        CHECK(s_se < s_mm);  // the search clips the tails
    }

    const int64_t R = 8, C = 40;
    std::vector<float> W((size_t) (R * C)), What((size_t) (R * C));
    for (float & v : W) v = 0.05f * heavy(rng);
    for (int64_t rank : {int64_t(-1), int64_t(0)}) {
        LrqParams p;
        p.bits = 4;
        p.rank = rank;
        LrqLinear lin;
        lin.init(W.data(), R, C, p, 1);
        lin.dequant(What.data());
        for (int64_t i = 0; i < R; ++i) {
            float s;
            int z;
            lrq_row_grid(W.data() + i * C, C, 4, true, &s, &z);
            for (int64_t j = 0; j < C; ++j) {
                const float q = std::clamp(nearbyintf(W[(size_t) (i * C + j)] / s), (float) -z, (float) (15 - z));
                CHECK(What[(size_t) (i * C + j)] == doctest::Approx(s * q).epsilon(1e-5));
            }
        }
        CHECK(lin.n_params() == (rank == 0 ? 2 * R + R * C : 2 * R + C + lrq_default_rank(R, C) * (R + C)));
    }
}

TEST_CASE("lrq: on a real block of stories260K the reconstruction loss falls and ends below round-to-nearest's") {
    REQUIRE_SHARED();
    LoadOptions lo;
    lo.tokenizer_path = shared_path("models/stories260K/tok512.bin");
    const ModelFile mf = load_llama2c(shared_path("models/stories260K/stories260K.bin"), lo);
    const LlamaModel model(mf, false);
    const LlamaHparams & hp = model.hp;
    const Tokenizer tok = Tokenizer::from_metadata(mf.meta);
    CalibParams cp;
    cp.file = shared_path("data/text/tinystories-train-head2MiB.txt");
    cp.seq_len = 64;
    cp.n_tokens = 16 * 64;
    const CalibData cd = load_calibration(cp, tok);
    const int64_t E = hp.n_embd, N = cd.n_tokens();
    // block 1's inputs: the float block 0's outputs; its target: the float block 1's outputs
    std::vector<float> x((size_t) (N * E));
    for (int64_t t = 0; t < N; ++t) model.embed(cd.tokens[(size_t) t], x.data() + t * E);
    block_forward(hp, block_weights_f32(model, 0).layer(), x.data(), cd.n_seq, cd.seq_len, BlockRecorder(), true);
    std::vector<float> target = x;
    block_forward(hp, block_weights_f32(model, 1).layer(), target.data(), cd.n_seq, cd.seq_len, BlockRecorder(), true);

    // plain round-to-nearest on the per-row min/max grid
    BlockWeightsF32 rtn = block_weights_f32(model, 1);
    for (LayerTensor r : k_roles) {
        const gl_tensor * t = rtn.base.linear(r);
        IntQuantLayer q;
        rtn_quantize(rtn.of(r).data(), t->ne1, t->ne0, 4, (int) t->ne0, &q);
    }
    const double loss_rtn = lrq_block_loss(hp, rtn, x.data(), target.data(), cd.n_seq, cd.seq_len);

    LrqParams p;
    p.bits = 4;
    p.iters = 200;
    p.lr = 2e-3f;
    BlockWeightsF32 bw = block_weights_f32(model, 1);
    IntQuantLayer out[(int) LayerTensor::COUNT];
    const LrqBlockStats st = lrq_quantize_block(hp, bw, x.data(), target.data(), cd.n_seq, cd.seq_len, p, out);
    const double first = std::accumulate(st.curve.begin(), st.curve.begin() + 20, 0.0) / 20;
    const double last = std::accumulate(st.curve.end() - 20, st.curve.end(), 0.0) / 20;
    MESSAGE("stories260K block 1, W4 per row: RTN min/max " << loss_rtn << ", grid-searched RTN " << st.loss_init << ", LRQ " << st.loss_final
                                                               << " (minibatch loss " << first << " -> " << last << " over " << p.iters
                                                               << " steps)");
    CHECK(st.curve.size() == (size_t) p.iters);
    CHECK(last < 0.8 * first);
    CHECK(st.loss_final < st.loss_init);
    CHECK(st.loss_final < loss_rtn);
    // the deployed layers are what bw now holds
    for (LayerTensor r : k_roles) {
        const IntQuantLayer & q = out[(int) r];
        REQUIRE(q.rows * q.cols == (int64_t) bw.of(r).size());
        CHECK(q.group == q.cols);
        for (int64_t i = 0; i < q.rows; i += 7)
            for (int64_t j = 0; j < q.cols; j += 5) CHECK(bw.of(r)[(size_t) (i * q.cols + j)] == q.value(i, j));
    }

    // the same at 1 and 2 threads
    LrqParams ps = p;
    ps.iters = 15;
    IntQuantLayer o1[(int) LayerTensor::COUNT], o2[(int) LayerTensor::COUNT];
    const int prev = omp_get_max_threads();
    omp_set_num_threads(1);
    BlockWeightsF32 b1 = block_weights_f32(model, 1);
    const LrqBlockStats s1 = lrq_quantize_block(hp, b1, x.data(), target.data(), cd.n_seq, cd.seq_len, ps, o1);
    omp_set_num_threads(2);
    BlockWeightsF32 b2 = block_weights_f32(model, 1);
    const LrqBlockStats s2 = lrq_quantize_block(hp, b2, x.data(), target.data(), cd.n_seq, cd.seq_len, ps, o2);
    omp_set_num_threads(prev);
    CHECK(s1.curve == s2.curve);
    for (LayerTensor r : k_roles) CHECK(o1[(int) r].codes == o2[(int) r].codes);
}
