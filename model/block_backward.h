// Reverse mode through the one transformer block (model/block.h), for the quantizers that fit parameters by
// reconstructing a block's output (LRQ's learned rounding, WKVQuant's cross-block loss).
//
// BlockTape runs the block over a minibatch of independent sequences (positions 0..seq_len-1, causal, each layer's
// sliding window), in T (float for the quantizers, double for the finite-difference tests), keeping what the
// backward needs, and then maps a gradient of the block's output to the gradients of its input and of each linear
// layer's weight (the dequantized weight the forward used; the quantizers' own parameters follow from it by the chain
// rule). It covers every step model/block.cpp runs for every architecture (formats/arch.h): RMSNorm, q/k/v biases,
// per-head q/k norms, RoPE (adjacent pairs or halves, partial n_rot, frequency factors), causal GQA softmax
// attention with a sliding window, the post-attention and post-MLP norms, SiLU or GELU-tanh gating and the residual
// adds. Norm weights and biases are constants here (no gradient is returned for them).
//
// The forward is the same function of the input as block_forward (model/block_forward.h) on f32 weights, up to the
// order of float sums (tests/test_block_backward.cpp checks both). Products go through gl_gemm_nt_f32 for float;
// attention is threaded over (sequence, KV head), so the results do not depend on the thread count.
//
// Memory: the saved activations of the minibatch (about 12 rows of n_embd / n_ff per token plus the attention
// probabilities, n_head·seq_len² per sequence) and the backward's scratch, allocated on first use and kept.
#pragma once

#include "formats/arch.h"
#include "model/block.h"

#include <cstdint>
#include <vector>

namespace quill {

template <class T>
class BlockTape {
public:
    // w[r] for each linear role r (ATTN_Q, ATTN_K, ATTN_V, ATTN_OUT, FFN_GATE, FFN_UP, FFN_DOWN): the weight as
    // [out][in] rows (a gl_tensor's row order), T. Norms, biases and the layer's RoPE come from `base`. x and y hold
    // n_seq·seq_len rows of n_embd (sequence after sequence); y may be x. The pointers in w must stay valid and
    // unchanged until backward.
    void forward(const LlamaHparams & hp, const LlamaLayer & base, const T * const w[(int) LayerTensor::COUNT], const T * x, int64_t n_seq,
                 int64_t seq_len, T * y);
    // dy: the loss's gradient with respect to the last forward's y. dx (may be null; may be dy) receives it with respect
    // to x; dw[r] (null entries skipped) the gradient with respect to w[r], overwritten.
    void backward(const T * dy, T * dx, T * const dw[(int) LayerTensor::COUNT]);

    int64_t n_tokens() const { return n_; }
    size_t  bytes() const;  // memory held (saved activations and scratch)

private:
    const LlamaHparams * hp_ = nullptr;
    const LlamaLayer *   L_ = nullptr;
    const T *            w_[(int) LayerTensor::COUNT] = {};
    int64_t n_seq_ = 0, seq_len_ = 0, n_ = 0;
    // saved: block input, normed inputs of q/k/v and gate/up, q/k before their norms, q/k/v as attention reads them,
    // attention probabilities and output, the attention projection before its norm, the residual after attention,
    // gate, up, the MLP hidden rows and the down projection before its norm
    std::vector<T> x_, xn1_, q0_, k0_, q_, k_, v_, p_, a_, o0_, x1_, xn2_, g_, u_, h_, d0_;
    // backward scratch
    std::vector<T> s1_, s2_, s3_, s4_, s5_, wt_, yt_, xt_, dq_, dk_, dv_;

    void linear_fwd(LayerTensor r, const T * x, int64_t in, int64_t out, T * y) const;
    void linear_bwd(LayerTensor r, const T * x, int64_t in, int64_t out, const T * dy, T * dx, bool acc_dx, T * dw);
    void attention_fwd();
    void attention_bwd(const T * da, T * dq, T * dk, T * dv);
};

extern template class BlockTape<float>;
extern template class BlockTape<double>;

}  // namespace quill
