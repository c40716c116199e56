// LRQ: learned rounding through a low-rank weight-scaling matrix, fitted by reconstructing each block's output
// (../shared/docs/methods/LRQ.md). Per linear layer W (R × C, out × in), all fp32 while fitting (§1.2):
//
//   A     = L·U + rv·1ᵀ + 1·cvᵀ                 L (R × r) from 0, U (r × C) uniform ±1/√C, rv, cv from 0
//   Qint  = clamp(round(W / exp(a + A)), −z, 2^b − 1 − z)      (round: straight-through in the backward)
//   Ŵ     = exp(a)·Qint                         a = log(s0) per row, z fixed, both from the grid search (§1.3)
//
// With `rank == 0` A is FlexRound's full matrix D (R × C) plus a row vector (the ablation). At A = 0 the layer is
// round-to-nearest on the searched grid, which is where the fit starts. What is deployed is only the integers and
// the per-row grid: value = d·(code − z), d = exp(a) rounded to fp16, code = Qint + z in [0, 2^b − 1] — the intq
// grid (rtn.h's IntQuantLayer with one group per row).
//
// The block fit (§1.4): the quantized block sees the quantized model's inputs, its target is the float block's
// output on float inputs; loss = mean over (sequence, hidden) of the sum over tokens of the squared error; Adam
// (β 0.9 / 0.999, ε 1e-8) with a cosine schedule to 0; minibatches of whole sequences drawn from a seeded shuffle,
// so results are identical at any thread count. Gradients come from the block's reverse mode (model/block_backward.h)
// and §1.5's chain rule. Memory: one block's weights, parameters and Adam states, and its activations for one
// minibatch.
#pragma once

#include "model/block_backward.h"
#include "model/block_forward.h"
#include "quantize/rtn.h"

#include <cstdint>
#include <vector>

namespace quill {

struct LrqParams {
    int      bits = 4;          // 2..8
    int      iters = 500;       // Adam steps per block
    float    lr = 1e-3f;        // peak learning rate (cosine to 0 over iters)
    int64_t  rank = -1;         // -1: lrq_default_rank; 0: full matrix (FlexRound); else the rank (capped at min(R, C))
    int      batch = 2;         // sequences per step
    int      clip_search = -1;  // §1.3's 2-D grid search: 1 on, 0 plain min/max, -1 on for bits <= 4
    uint32_t seed = 0;
};

// The rank rule: min(R, C) / 4, at least 1 (1024 for 4096 × 4096, the paper code's r for Llama-2-7B's attention;
// 64 for stories4M's 256 × 256). The paper code's other shapes get 1024 or 2048 or a full matrix (LRQ.md §1.2).
int64_t lrq_default_rank(int64_t rows, int64_t cols);

// §1.3: the per-row grid (step s0 > 0 and integer zero z in [0, 2^b − 1]) of one row of n weights. With `search`,
// the 100 · 2^b candidate (width, zero) grids minimising mean |w − ŵ|^2.4; without, the min/max grid of GPTQ.
void lrq_row_grid(const float * w, int64_t n, int bits, bool search, float * s0, int * z);

// One linear layer's learnable quantizer.
class LrqLinear {
public:
    void init(const float * W, int64_t rows, int64_t cols, const LrqParams & p, uint32_t seed);
    // Ŵ for the current parameters (also caches what grad needs).
    void dequant(float * What);
    // G = dLoss/dŴ (rows × cols) at the last dequant: accumulates the parameters' gradients.
    void grad(const float * G);
    // One Adam step (step t from 1) at learning rate lr; clears the gradients.
    void step(float lr, int t);
    // The deployed layer: codes and per-row grids with fp16 scales (one group per row); What gets its values.
    void finish(IntQuantLayer * out, float * What) const;
    int64_t n_params() const;

private:
    int64_t R_ = 0, C_ = 0, r_ = 0;
    int     bits_ = 4;
    const float * W_ = nullptr;
    std::vector<int>   z_;
    // parameters, their gradients and Adam moments, one flat vector: a (R), rv (R), cv (C, low rank only),
    // L (R·r) and U (r·C), or D (R·C) for the full matrix
    std::vector<float> p_, g_, m_, v_;
    std::vector<float> A_, Zq_, dA_, t2_, t3_;  // scratch: A, W/exp(a+A), dLoss/dA, transposes
    mutable std::vector<float> t1_;             // Uᵀ (build_A)
    std::vector<uint8_t> pass_;                     // clamp pass-through mask
    float * a() { return p_.data(); }
    void build_A(float * A) const;
};

struct LrqBlockStats {
    double loss_init = 0.0;   // the reconstruction loss over every calibration sequence at A = 0 (RTN on the grid)
    double loss_final = 0.0;  // the same after the fit, with the deployed (fp16-scale) layers
    std::vector<double> curve;  // the minibatch loss of each step
};

// Fits the seven linears of one block and replaces bw's floats by their quantized values. q_in: the quantized model's
// inputs to this block; target: the float block's outputs on the float inputs; both n_seq · seq_len rows of n_embd.
// out[r] receives each linear role's deployed layer (other roles untouched).
LrqBlockStats lrq_quantize_block(const LlamaHparams & hp, BlockWeightsF32 & bw, const float * q_in, const float * target, int64_t n_seq,
                                 int64_t seq_len, const LrqParams & p, IntQuantLayer out[(int) LayerTensor::COUNT]);

// The loss lrq_quantize_block minimises, of the block with weights `bw` over all sequences (for reports and tests).
double lrq_block_loss(const LlamaHparams & hp, const BlockWeightsF32 & bw, const float * q_in, const float * target, int64_t n_seq,
                      int64_t seq_len);

}  // namespace quill
