// The LLaMA family (Llama 1/2/3, Mistral, TinyLlama shapes): weights, KV cache, and a batched forward pass.
//
// One forward pass serves everything: a Batch holds tokens of one or many sequences, each with its position and
// its sequence (KV slot). Prompt processing is a batch of one sequence's tokens; server decoding is a batch of one
// token from each active slot. All buffers are sized once in the Context; decode() allocates nothing.
#pragma once

#include "formats/model_file.h"
#include "model/kv_cache.h"
#include "ggml-lite/ops.h"

#include <cstdint>
#include <string>
#include <vector>

namespace quill {

struct LlamaHparams {
    int64_t n_vocab = 0, n_embd = 0, n_ff = 0, n_layer = 0, n_head = 0, n_head_kv = 0, head_dim = 0, n_rot = 0, n_ctx_train = 0;
    float   eps = 1e-5f, rope_base = 10000.0f, rope_freq_scale = 1.0f;
    int64_t kv_dim() const { return n_head_kv * head_dim; }
};

struct LlamaLayer {
    const float * attn_norm = nullptr;  // (n_embd)
    gl_tensor wq, wk, wv, wo;           // (n_embd -> n_head*hd), (n_embd -> kv_dim) x2, (n_head*hd -> n_embd)
    const float * ffn_norm = nullptr;   // (n_embd)
    gl_tensor w_gate, w_up, w_down;     // (n_embd -> n_ff) x2, (n_ff -> n_embd)
};

// Weights of a model, pointing into a ModelFile (which must outlive it).
class LlamaModel {
public:
    explicit LlamaModel(const ModelFile & mf);  // validates shapes; throws quill::Error naming the problem
    LlamaHparams hp;
    gl_tensor tok_embd;                   // (n_embd, n_vocab)
    const float * output_norm = nullptr;  // (n_embd)
    gl_tensor output;                     // (n_embd, n_vocab); the embedding when tied
    const float * rope_freqs = nullptr;   // (n_rot/2) or null
    std::vector<LlamaLayer> layers;
    size_t weight_bytes = 0;              // bytes of every weight read per token
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
    const float * logits(size_t i) const { return logits_.data() + i * model_.hp.n_vocab; }
    size_t n_logits() const { return n_out_; }

    void clear_seq(int32_t seq);     // forget a sequence's cache
    int32_t seq_len(int32_t seq) const { return kv_.len.at((size_t) seq); }
    int32_t n_ctx() const { return kv_.n_ctx; }
    int32_t n_batch() const { return params_.n_batch; }
    const LlamaModel & model() const { return model_; }
    const KvCache & kv() const { return kv_; }

private:
    const LlamaModel & model_;
    ContextParams params_;
    KvCache kv_;
    // Activations, each n_batch rows.
    std::vector<float> x_, xb_, q_, k_, v_, att_, hb_, hb2_, logits_, att_scratch_;
    std::vector<uint8_t> wdata_;
    std::vector<int32_t> out_rows_;
    std::vector<int32_t> new_len_;  // decode's staging copy of the per-sequence lengths
    size_t n_out_ = 0;
};

}  // namespace quill
