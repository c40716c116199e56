// Calibration for the quantizers: text -> token sequences -> per-block Hessians of every linear layer's input.
//
// GPTQ's schedule (../shared/docs/methods/GPTQ.md §1.1): the model is processed one block at a time; the inputs of
// block b are the outputs of the already-quantized blocks 0..b-1 on the calibration sequences. For each block the
// caller (quantize/quantize.cpp) runs
//   1. collect_block_hessians: the block with its float weights over the current activations, accumulating
//      H = 2/N_seq · Σ_tokens x·xᵀ for each of the block's four distinct linear inputs (q/k/v share one H,
//      gate/up share one, o and down have their own);
//   2. the quantizer of each linear layer with its H;
//   3. block_forward with the quantized (dequantized to float) weights, which turns the activations into the
//      next block's inputs.
// Memory is one block's float weights, its four Hessians (n_embd², n_embd², q_dim², n_ff² floats) and the
// activations (tokens × n_embd floats): never the whole model.
#pragma once

#include "model/block_forward.h"
#include "model/tokenizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quill {

struct CalibParams {
    std::string file;          // calibration text
    int64_t     n_tokens = 0;  // tokens wanted; rounded down to whole sequences (at least one)
    int64_t     seq_len = 512;
};

struct CalibData {
    std::string          file;
    uint64_t             text_xxh3 = 0;  // XXH3-64 (seed 0) of the whole file's bytes
    int64_t              n_seq = 0, seq_len = 0;
    std::vector<int32_t> tokens;         // n_seq · seq_len; each sequence is BOS + the next seq_len-1 text tokens
    int64_t n_tokens() const { return n_seq * seq_len; }
};

// Reads and hashes the file, tokenizes as much of it as needed (from the start, cut at a line end) and splits the
// tokens into consecutive sequences. Throws quill::Error when the file cannot be read or is too short.
CalibData load_calibration(const CalibParams & p, const Tokenizer & tok);

// H = 2/N_seq · Σ x·xᵀ of one linear input, accumulated in float (as GPTQ's reference) from whole sequences.
class Hessian {
public:
    void init(int64_t dim);
    void add(const float * x, int64_t n_tok);  // n_tok rows of dim floats (one sequence)
    void finish(int64_t n_seq);                // scales by 2/n_seq and fills the lower triangle
    int64_t dim() const { return dim_; }
    const float * data() const { return h_.data(); }  // dim × dim, symmetric, row-major
    void release() { std::vector<float>().swap(h_); std::vector<float>().swap(xt_); }
    size_t bytes() const { return (h_.capacity() + xt_.capacity()) * sizeof(float); }

private:
    int64_t dim_ = 0;
    std::vector<float> h_;   // upper triangle accumulated, lower filled by finish()
    std::vector<float> xt_;  // one sequence, transposed (dim × n_tok)
};

// The four Hessians of one block.
struct BlockHessians {
    Hessian h[(int) LinearInput::COUNT];
    Hessian & operator[](LinearInput w) { return h[(int) w]; }
    size_t bytes() const;
};

// The static int8 activation grid of one linear input (W8A8 per tensor, `quill quantize --act tensor`; types.h
// a8_row, formats/SPEC.md "input_scale"): the range of the calibration activations (forced to include 0), clipped
// to the fraction alpha of it (both ends; alpha = 1, 0.98, ..., 0.5) that minimises the squared error of a sample of
// those activations quantized on it by the inference kernels. The sample: every k-th token's row, about 2^20
// values. Deterministic (one thread, fixed order).
struct ActGrid {
    float   s = 1.0f;  // value = s · (c − z), c int8
    int32_t z = -128;
    float   alpha = 1.0f;
    double  rmse = 0;  // over the sample, at the chosen alpha
};
class ActGridStats {
public:
    void init(int64_t dim, int64_t n_tok_total);
    void add(const float * x, int64_t n_tok);  // n_tok rows of dim floats, in order
    ActGrid fit() const;
    int64_t dim() const { return dim_; }

private:
    int64_t dim_ = 0, stride_ = 1, seen_ = 0;
    float mn_ = 0.0f, mx_ = 0.0f;
    std::vector<float> sample_;  // whole rows
};

// Step 1 above: runs block `w` (its float form: BlockWeightsF32::layer()) over x (n_seq sequences of seq_len rows of n_embd floats; x is not changed) and
// returns the finished Hessians of its linear inputs.
void collect_block_hessians(const LlamaHparams & hp, const LlamaLayer & w, float * x, int64_t n_seq,
                            int64_t seq_len, BlockHessians & out);

}  // namespace quill
