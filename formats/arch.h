// The architecture table: what a transformer block of each supported architecture has, and how its tensors are
// named in GGUF/quill files and in Hugging Face checkpoints. Every loader (quill, GGUF, HF, llama2.c, synthetic),
// the model (model/llama.cpp), the one block (model/block.cpp) and the quantizer read it; nothing else spells out
// tensor names or architecture rules.
//
// Adding an architecture means adding an entry to k_archs in formats/arch.cpp (and, when its block needs an
// operation no entry has yet, a field here and its use in model/block.cpp). See docs/HACKING.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace quill {

// The tensors a block may have. GGUF names are "blk.N." + layer_tensor_gguf(role).
enum class LayerTensor : int {
    ATTN_NORM = 0,   // RMSNorm before attention                    [n_embd]
    ATTN_Q,          // q projection                                 [n_embd -> n_head·head_dim]
    ATTN_K,          // k projection                                 [n_embd -> n_head_kv·head_dim]
    ATTN_V,          // v projection                                 [n_embd -> n_head_kv·head_dim]
    ATTN_OUT,        // output projection                            [n_head·head_dim -> n_embd]
    ATTN_Q_BIAS,     // biases of q, k, v (Qwen2)                    [q width], [kv width], [kv width]
    ATTN_K_BIAS,
    ATTN_V_BIAS,
    ATTN_Q_NORM,     // per-head RMSNorm of q and k before RoPE      [head_dim]
    ATTN_K_NORM,
    POST_ATTN_NORM,  // RMSNorm of the attention output before the residual add (Gemma)   [n_embd]
    FFN_NORM,        // RMSNorm before the MLP                       [n_embd]
    FFN_GATE,        // gate and up projections                      [n_embd -> n_ff]
    FFN_UP,
    FFN_DOWN,        // down projection                              [n_ff -> n_embd]
    POST_FFW_NORM,   // RMSNorm of the MLP output before the residual add (Gemma)         [n_embd]
    COUNT
};

// The distinct inputs of a block's linear layers: q, k and v read the same rows, so do gate and up. The quantizer
// builds one Hessian per input.
enum class LinearInput : int { QKV = 0, ATTN_OUT = 1, GATE_UP = 2, DOWN = 3, COUNT = 4 };

enum class Activation { SILU, GELU_TANH };  // of the gate in act(gate)·up

// How q/k rows are ordered for RoPE in this architecture's GGUF layout.
enum class RopeStyle {
    ADJACENT,  // pairs (x[2i], x[2i+1]): LLaMA's GGUF layout (llama.cpp's converter permutes HF rows into it)
    HALVES,    // pairs (x[i], x[i + n/2]): NEOX, the HF layout, kept in GGUF by every other architecture
};

struct ArchLayerTensor {
    LayerTensor role;
    const char * hf;  // name in a HF checkpoint after "model.layers.N."
};

struct Arch {
    const char * name;            // general.architecture, and the prefix of its metadata keys
    const char * hf_model_types;  // config.json model_type values, comma-separated
    const char * hf_classes;      // config.json architectures[0] values, comma-separated
    RopeStyle    rope;
    bool         hf_permute_qk;     // HF q/k rows are rotate-half and this GGUF layout is ADJACENT: permute on import
    Activation   act;
    bool         embd_scale;        // the embedding is multiplied by sqrt(n_embd) (Gemma)
    bool         hf_norm_plus_one;  // HF RMSNorms compute x̂·(1 + w); GGUF stores 1 + w (Gemma)
    int          swa_pattern;       // 0: every layer sees the whole context; n: layer i is global when (i+1) % n == 0,
                                    // the others see {arch}.attention.sliding_window positions
    float        swa_rope_base;     // RoPE base of the sliding-window layers (llama.cpp hard-codes it for Gemma 3)
    bool         hf_tied_default;   // tie_word_embeddings when config.json does not say
    std::vector<ArchLayerTensor> layer;  // the tensors every block has
};

const Arch * arch_find(const std::string & name);
// The entry for a HF config.json's model_type and architectures[0] (either may be empty); null if none.
const Arch * arch_from_hf(const std::string & model_type, const std::string & hf_class);
std::string  arch_names();  // "llama, qwen2, qwen3, gemma3"
bool         arch_has(const Arch & a, LayerTensor role);
const std::vector<const Arch *> & arch_all();

const char * layer_tensor_gguf(LayerTensor role);  // "attn_q.weight"
std::string  layer_tensor_name(int64_t layer, LayerTensor role);  // "blk.3.attn_q.weight"
// The static activation grid of a linear weight "X.weight" (formats/SPEC.md): "X.input_scale", an f32 vector
// {scale, zero point}, for weights that take a8_row activations.
std::string  input_scale_name(const std::string & weight);
// The linear layers (ATTN_Q .. FFN_DOWN weights) and which input each reads; false for norms and biases.
bool         layer_tensor_linear(LayerTensor role, LinearInput * input = nullptr);

// Dimensions a block's tensor shapes follow from.
struct BlockDims {
    int64_t n_embd = 0, n_ff = 0, n_head = 0, n_head_kv = 0, head_dim = 0;
};
// ne (row length first) of a layer tensor.
std::vector<int64_t> layer_tensor_shape(LayerTensor role, const BlockDims & d);

// The model-level tensors, the same in every architecture.
extern const char * const k_tensor_token_embd;   // "token_embd.weight"  (HF model.embed_tokens.weight)
extern const char * const k_tensor_output_norm;  // "output_norm.weight" (HF model.norm.weight)
extern const char * const k_tensor_output;       // "output.weight"      (HF lm_head.weight); absent when tied
extern const char * const k_tensor_rope_freqs;   // "rope_freqs.weight"  (Llama 3 frequency factors)
// GGUF name of a HF tensor name of architecture a ("model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"),
// for layers < n_layer; false when the name is not one of a's tensors.
bool arch_map_hf_name(const Arch & a, const std::string & hf, int64_t n_layer, std::string * gguf, LayerTensor * role = nullptr);

}  // namespace quill
