// The one transformer block of every architecture quill runs (formats/arch.h), used by inference (Context::decode,
// model/llama.cpp) and by the quantizer's calibration forward (model/block_forward.cpp) alike.
//
// A block over a batch of tokens, each with its position and sequence (KV slot):
//   xn = rms_norm(x)·attn_norm
//   q, k, v = Wq·xn (+bq), Wk·xn (+bk), Wv·xn (+bv)
//   q, k = rms_norm per head·q_norm, k_norm          (Qwen3, Gemma 3)
//   q, k = rope(q, k; the layer's base; adjacent pairs or halves)
//   K/V cache[seq][pos] = k, v                          (written in the cache's type, then read back by attention)
//   a = softmax(q·Kᵀ/sqrt(head_dim)) V over the positions the layer sees (all, or the sliding window)
//   o = Wo·a;  o = rms_norm(o)·post_attn_norm           (Gemma 3)
//   x += o
//   xn = rms_norm(x)·ffn_norm
//   h = act(Wgate·xn) * (Wup·xn)                        (act: SiLU or GELU-tanh)
//   d = Wdown·h;  d = rms_norm(d)·post_ffw_norm          (Gemma 3)
//   x += d
// Every step is a ggml-lite op; the buffers come from the backend (ggml-lite/backend.h). Nothing is allocated per
// call once the scratch has been sized.
#pragma once

#include "formats/arch.h"
#include "ggml-lite/backend.h"
#include "ggml-lite/ops.h"
#include "model/kv_cache.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace quill {

struct LlamaHparams {
    const Arch * arch = nullptr;  // formats/arch.h: what a block has
    int64_t n_vocab = 0, n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0, n_ctx_train = 0;
    float   eps = 1e-5f, rope_base = 10000.0f, rope_freq_scale = 1.0f;
    gl_rope_mode rope_mode = GL_ROPE_NORM;
    int64_t n_swa = 0;             // sliding window of the sliding-window layers (0: none)
    float   embd_scale = 1.0f;     // the embedding row is multiplied by this (Gemma: sqrt(n_embd))
    float   logit_softcap = 0.0f;  // logits = cap·tanh(logits/cap) when > 0
    int64_t kv_dim() const { return n_head_kv * head_dim; }
    int64_t q_dim() const { return n_head * head_dim; }
};

// One block's weights. Optional parts (per the architecture) are null.
struct LlamaLayer {
    const float * attn_norm = nullptr;       // (n_embd)
    gl_tensor wq, wk, wv, wo;                // (n_embd -> q_dim), (n_embd -> kv_dim) x2, (q_dim -> n_embd)
    const float * bq = nullptr, * bk = nullptr, * bv = nullptr;  // biases of q, k, v
    const float * q_norm = nullptr, * k_norm = nullptr;           // per-head RMSNorm weights (head_dim)
    const float * post_attn_norm = nullptr;  // (n_embd), on the attention output before the residual add
    const float * ffn_norm = nullptr;        // (n_embd)
    gl_tensor w_gate, w_up, w_down;          // (n_embd -> n_ff) x2, (n_ff -> n_embd)
    const float * post_ffw_norm = nullptr;   // (n_embd), on the MLP output before the residual add
    const float * rope_freqs = nullptr;      // the model's RoPE frequency factors (n_rot/2) or null
    float   rope_base = 10000.0f;            // this layer's RoPE base
    int64_t window = 0;                      // attention sees the last `window` positions (0: all)

    // The linear layer of a role (ATTN_Q .. FFN_DOWN), null for other roles.
    gl_tensor *       linear(LayerTensor role);
    const gl_tensor * linear(LayerTensor role) const { return const_cast<LlamaLayer *>(this)->linear(role); }
};


// Receives the input rows of one kind of linear layer: x is n_tok rows of dim floats.
using BlockRecorder = std::function<void(LinearInput which, const float * x, int64_t n_tok, int64_t dim)>;
const char * linear_input_name(LinearInput which);
int64_t linear_input_dim(const LlamaHparams & hp, LinearInput which);

// The tokens of one block call: n tokens, token t at position pos[t] of sequence seq[t].
struct BlockBatch {
    int64_t n = 0;
    const int32_t * pos = nullptr;
    const int32_t * seq = nullptr;
};

// The block's activations for up to n_batch tokens, and the attention's per-thread scratch.
class BlockScratch {
public:
    // wdata_bytes: the most gl_mul_mat scratch any weight run with it needs for n_batch rows.
    void init(const LlamaHparams & hp, int64_t n_batch, int64_t n_ctx, size_t wdata_bytes);
    int64_t n_batch() const { return n_batch_; }
    // The gl_mul_mat scratch, for the caller's own products between blocks (the output layer).
    void * wdata() { return wdata_.data(); }

private:
    friend void block_forward(const LlamaHparams &, const LlamaLayer &, const BlockBatch &, KvCache &, int64_t, float *, BlockScratch &,
                              const BlockRecorder *);
    int64_t   n_batch_ = 0, n_ctx_ = 0, head_dim_ = 0;
    gl_buffer xb_, q_, k_, v_, att_, hb_, hb2_, wdata_, att_scratch_;
    int       att_threads_ = 0;
    float *   att_scratch_for(int threads);
    // Prompt batches (gl_attention_batch): tokens per task, the tasks {first token, tokens, KV head} of a call, which
    // tokens they cover, and the per-thread scratch (allocated at the first batch, never per token).
    int64_t              att_chunk_ = 0;
    std::vector<int64_t> att_tasks_;
    std::vector<uint8_t> att_batched_;
    gl_buffer            att_batch_scratch_;
    int                  att_batch_threads_ = 0;
    size_t               att_batch_per_ = 0;  // floats per thread
    float *              att_batch_scratch_for(int threads);
};

// Runs block L over the batch: x (b.n rows of n_embd) becomes the block's output. Keys and values are written to
// layer kv_layer of the cache at (seq, pos) and attention reads positions up to each token's own. `rec`, when
// given, sees the inputs of the linear layers.
void block_forward(const LlamaHparams & hp, const LlamaLayer & L, const BlockBatch & b, KvCache & kv, int64_t kv_layer, float * x,
                   BlockScratch & s, const BlockRecorder * rec = nullptr);

// Bytes of gl_mul_mat scratch that the block's linear layers need for n_tok rows.
size_t block_wdata_size(const LlamaLayer & L, int64_t n_tok);

}  // namespace quill
