// One transformer block over whole calibration sequences, in float, for the quantizer.
//
// The quantizer (quantize/) works one block at a time: it holds the float weights of one block, runs the calibration
// activations through it while recording the inputs of every linear layer (to build their Hessians), quantizes the
// block, and runs the activations through the quantized block to get the next block's inputs. The block is
// model/block.h's, the one Context::decode runs, but in float throughout: weights are f32 tensors (so activations
// are not rounded to Q8_0) and keys/values are kept in an f32 cache (GPTQ's reference simulates quantized layers the
// same way, in floating point).
//
// Memory: the caller's activations plus one sequence's scratch; nothing else is allocated per call.
#pragma once

#include "model/llama.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace quill {

// A block's linear layers widened to float (row-major [out_features][in_features], a gl_tensor's row order); the
// quantizer replaces them, one by one, with their quantized-then-dequantized values.
struct BlockWeightsF32 {
    LlamaLayer          base;                          // the model's block: norms, biases and per-layer RoPE
    std::vector<float>  w[(int) LayerTensor::COUNT];   // the linear roles' floats; empty for other roles
    std::vector<float> &       of(LayerTensor role) { return w[(int) role]; }
    const std::vector<float> & of(LayerTensor role) const { return w[(int) role]; }
    size_t n_floats() const;
    // The block with every linear layer an f32 view of these floats (valid while this object lives unchanged).
    LlamaLayer layer() const;
};

// Widens block `layer` of a model to float (any weight type, through the type's to_float).
BlockWeightsF32 block_weights_f32(const LlamaModel & model, int64_t layer);

// Runs one block over n_seq independent sequences of seq_len tokens each (positions 0..seq_len-1, causal) with the
// one block of model/block.h, through an f32 KV cache: the float forward GPTQ's reference simulates quantized
// layers with. x holds n_seq·seq_len rows of n_embd floats, sequence after sequence. When `update`, x becomes the
// block's output; otherwise x is only read (a recording pass). `rec` may be empty.
void block_forward(const LlamaHparams & hp, const LlamaLayer & L, float * x, int64_t n_seq, int64_t seq_len, const BlockRecorder & rec,
                   bool update);

}  // namespace quill
