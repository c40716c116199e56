#include "model/block_forward.h"

#include "ggml-lite/common.h"

#include <algorithm>

namespace quill {

// ---- weights ----------------------------------------------------------------------------------------------------

size_t BlockWeightsF32::n_floats() const {
    size_t n = 0;
    for (const std::vector<float> & v : w) n += v.size();
    return n;
}

LlamaLayer BlockWeightsF32::layer() const {
    LlamaLayer L = base;
    for (int r = 0; r < (int) LayerTensor::COUNT; ++r) {
        gl_tensor * t = L.linear((LayerTensor) r);
        if (!t) continue;
        GL_ASSERT((int64_t) w[r].size() == t->ne0 * t->ne1);
        *t = gl_tensor_make(GL_TYPE_F32, t->ne0, t->ne1, w[r].data(), t->name);
    }
    return L;
}

BlockWeightsF32 block_weights_f32(const LlamaModel & model, int64_t layer) {
    GL_ASSERT(layer >= 0 && layer < model.hp.n_layer);
    BlockWeightsF32 bw;
    bw.base = model.layers[(size_t) layer];
    for (int r = 0; r < (int) LayerTensor::COUNT; ++r) {
        const gl_tensor * t = bw.base.linear((LayerTensor) r);
        if (!t) continue;
        std::vector<float> & out = bw.w[r];
        out.resize((size_t) (t->ne0 * t->ne1));
        for (int64_t row = 0; row < t->ne1; ++row) gl_get_row(*t, row, out.data() + row * t->ne0);
    }
    return bw;
}

// ---- the block over calibration sequences ------------------------------------------------------------------------

void block_forward(const LlamaHparams & hp, const LlamaLayer & L, float * x, int64_t n_seq, int64_t seq_len, const BlockRecorder & rec,
                   bool update) {
    GL_ASSERT(seq_len > 0 && seq_len <= (1 << 22));
    const int64_t E = hp.n_embd;
    KvCache kv;
    kv.init(1, hp.n_head_kv, hp.head_dim, (int32_t) seq_len, 1, GL_TYPE_F32);
    BlockScratch s;
    s.init(hp, seq_len, seq_len, block_wdata_size(L, seq_len));
    gl_buffer xs((size_t) (seq_len * E) * sizeof(float));
    std::vector<int32_t> pos((size_t) seq_len), seq((size_t) seq_len, 0);
    for (int64_t t = 0; t < seq_len; ++t) pos[(size_t) t] = (int32_t) t;
    const BlockBatch b{seq_len, pos.data(), seq.data()};
    for (int64_t sq = 0; sq < n_seq; ++sq) {
        float * xseq = x + sq * seq_len * E;
        std::copy(xseq, xseq + seq_len * E, xs.f32());
        block_forward(hp, L, b, kv, 0, xs.f32(), s, rec ? &rec : nullptr);
        if (update) std::copy(xs.f32(), xs.f32() + seq_len * E, xseq);
    }
}

}  // namespace quill
