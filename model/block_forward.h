// One transformer block of the LLaMA family over whole sequences, in float, for the quantizer.
//
// The quantizer (quantize/) works one block at a time: it holds the float weights of one block, runs the calibration
// activations through it while recording the inputs of every linear layer (to build their Hessians), quantizes the
// block, and runs the activations through the quantized block to get the next block's inputs. This file is that
// per-block forward pass. It computes the same function as Context::decode (model/llama.cpp) for one block —
// rms_norm, q/k/v, RoPE (adjacent pairs), causal grouped-query attention, o, rms_norm, SwiGLU MLP, both residuals —
// but in float throughout: weights are float matrices, activations are not rounded to Q8_0 and keys/values are not
// rounded to f16 (GPTQ's reference simulates quantized layers the same way, in floating point).
//
// Memory: the caller's activations plus one sequence's scratch; nothing else is allocated per call.
#pragma once

#include "model/llama.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace quill {

// A block's weights as float matrices, row-major [out_features][in_features] (a gl_tensor's row order).
struct BlockWeightsF32 {
    std::vector<float> attn_norm, ffn_norm;                   // n_embd
    std::vector<float> wq, wk, wv, wo, w_gate, w_up, w_down;  // see LlamaLayer for the shapes
    size_t n_floats() const;
};

// Widens block `layer` of a model to float (any weight type, through the type's to_float).
BlockWeightsF32 block_weights_f32(const LlamaModel & model, int64_t layer);

// The four distinct inputs of a block's linear layers: q, k and v read the same rows, so do gate and up.
enum class LinearInput : int { QKV = 0, ATTN_OUT = 1, GATE_UP = 2, DOWN = 3, COUNT = 4 };
const char * linear_input_name(LinearInput which);
int64_t linear_input_dim(const LlamaHparams & hp, LinearInput which);

// Receives the input rows of one kind of linear layer for one sequence: x is n_tok rows of dim floats.
using BlockRecorder = std::function<void(LinearInput which, const float * x, int64_t n_tok, int64_t dim)>;

// Runs one block over n_seq independent sequences of seq_len tokens each (positions 0..seq_len-1, causal).
// x holds n_seq·seq_len rows of n_embd floats, sequence after sequence. When `update`, x becomes the block's output;
// otherwise x is only read (a recording pass). `rec` may be empty. rope_freqs: the model's (or null).
void block_forward(const LlamaHparams & hp, const float * rope_freqs, const BlockWeightsF32 & w, float * x, int64_t n_seq,
                   int64_t seq_len, const BlockRecorder & rec, bool update);

// C[i][j] = Σ_l A[i][l]·B[j][l]  (A: m×k, B: n×k, C: m×n; rows lda/ldb/ldc floats apart), C = C·beta + A·Bᵀ with
// beta 0 or 1. Float products and sums in a fixed order that does not depend on the thread count. Used by the
// block's linear layers (B = the weight) and by the Hessian accumulation (A = B = the transposed activations).
void gemm_nt_f32(int64_t m, int64_t n, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc,
                 bool accumulate);

}  // namespace quill
