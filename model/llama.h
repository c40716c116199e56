// The LLaMA family (Llama 1/2/3, Mistral, Qwen2, Qwen3, Gemma 3; formats/arch.h): weights, KV cache, and a batched
// forward pass whose blocks are model/block.cpp's one block.
//
// One forward pass serves everything: a Batch holds tokens of one or many sequences, each with its position and
// its sequence (KV slot). Prompt processing is a batch of one sequence's tokens; server decoding is a batch of one
// token from each active slot. All buffers are sized once in the Context; decode() allocates nothing.
#pragma once

#include "formats/model_file.h"
#include "ggml-lite/backend.h"
#include "model/block.h"
#include "model/kv_cache.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace quill {

// Weights of a model, pointing into a ModelFile (which must outlive it).
class LlamaModel {
public:
    // Validates shapes; throws quill::Error naming the problem. With x16 (inference), the linear weights that can
    // take the x16 layout (ggml-lite/types.h: Q4_0 and Q8_0 with whole groups of 16 rows) are regrouped once into
    // buffers of their own, which decode streams at the memory's speed; the tied output (the embedding) stays as
    // stored. Without (the quantizer's checks), every tensor points into the file.
    explicit LlamaModel(const ModelFile & mf, bool x16 = true);
    LlamaHparams hp;
    gl_tensor tok_embd;                   // (n_embd, n_vocab)
    const float * output_norm = nullptr;  // (n_embd)
    gl_tensor output;                     // (n_embd, n_vocab); the embedding when tied
    const float * rope_freqs = nullptr;   // (n_rot/2) or null
    std::vector<LlamaLayer> layers;
    size_t weight_bytes = 0;              // bytes of every weight read per token
    size_t x16_bytes = 0;                 // of which regrouped into the x16 layout

    // The input of block 0 for a token: its embedding row, scaled as the architecture says.
    void embed(int32_t token, float * out) const;

private:
    std::vector<gl_buffer> x16_;  // the regrouped weights
    void to_x16(gl_tensor & w);
    std::vector<std::shared_ptr<std::vector<float>>> widened_;  // vectors stored as f16/bf16, widened once
    const float * vector_f32(const ModelFile & mf, const std::string & name, int64_t n);
};

class Tokenizer;

// What a model file needs to run, checked in one place, so that convert and quantize refuse what run would refuse:
// the hyper-parameters and tensor shapes (LlamaModel's constructor), the tokenizer (Tokenizer::from_metadata), and
// that the tokenizer's vocabulary is the embedding's rows (check_vocab_matches). Throws quill::Error naming it.
void validate_runnable(const ModelFile & mf);
void check_vocab_matches(const Tokenizer & tok, const LlamaModel & model, const std::string & path);

struct Batch {
    std::vector<int32_t> token;
    std::vector<int32_t> pos;
    std::vector<int32_t> seq;
    std::vector<uint8_t> want_logits;
    void clear() { token.clear(); pos.clear(); seq.clear(); want_logits.clear(); }
    void add(int32_t tok, int32_t p, int32_t s, bool logits) {
        token.push_back(tok); pos.push_back(p); seq.push_back(s); want_logits.push_back(logits ? 1 : 0);
    }
    size_t size() const { return token.size(); }
};

struct ContextParams {
    int32_t n_ctx = 0;        // positions per sequence (0: the model's training context)
    int32_t n_batch = 512;    // most tokens in one decode()
    int32_t n_seq = 1;        // sequences (KV slots)
    gl_type kv_type = GL_TYPE_F16;
};

class Context {
public:
    Context(const LlamaModel & model, const ContextParams & params);

    // Runs the batch through the model. Throws quill::Error on a bad batch (token out of range, position past the
    // context, a gap in a sequence's positions, too many tokens). Logits of the i-th token that asked for them
    // are at logits(i) afterwards (i counts only those tokens, in batch order).
    void decode(const Batch & batch);
    const float * logits(size_t i) const { return logits_.f32() + i * model_.hp.n_vocab; }
    size_t n_logits() const { return n_out_; }

    void clear_seq(int32_t seq);     // forget a sequence's cache
    // Keep the first n positions of a sequence's cache and forget the rest (n >= its length: nothing changes); the
    // next decode of that sequence continues at position min(n, length).
    void truncate_seq(int32_t seq, int32_t n);
    int32_t seq_len(int32_t seq) const { return kv_.len.at((size_t) seq); }
    int32_t n_ctx() const { return kv_.n_ctx; }
    int32_t n_batch() const { return params_.n_batch; }
    const LlamaModel & model() const { return model_; }
    const KvCache & kv() const { return kv_; }

private:
    const LlamaModel & model_;
    ContextParams params_;
    KvCache kv_;
    BlockScratch scratch_;      // the block's activations, n_batch rows each
    gl_buffer x_, xn_, logits_;  // residual stream, final-norm rows, logits (n_batch rows each)
    std::vector<int32_t> new_len_;  // decode's staging copy of the per-sequence lengths
    size_t n_out_ = 0;
};

}  // namespace quill
