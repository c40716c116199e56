#include "formats/arch.h"

#include "ggml-lite/common.h"

#include <cstring>

namespace quill {

const char * const k_tensor_token_embd = "token_embd.weight";
const char * const k_tensor_output_norm = "output_norm.weight";
const char * const k_tensor_output = "output.weight";
const char * const k_tensor_rope_freqs = "rope_freqs.weight";

namespace {

using LT = LayerTensor;

struct RoleInfo {
    const char * gguf;
    bool         linear;
    LinearInput  input;
};
// Indexed by LayerTensor.
const RoleInfo k_roles[(int) LT::COUNT] = {
    {"attn_norm.weight", false, LinearInput::COUNT},
    {"attn_q.weight", true, LinearInput::QKV},
    {"attn_k.weight", true, LinearInput::QKV},
    {"attn_v.weight", true, LinearInput::QKV},
    {"attn_output.weight", true, LinearInput::ATTN_OUT},
    {"attn_q.bias", false, LinearInput::COUNT},
    {"attn_k.bias", false, LinearInput::COUNT},
    {"attn_v.bias", false, LinearInput::COUNT},
    {"attn_q_norm.weight", false, LinearInput::COUNT},
    {"attn_k_norm.weight", false, LinearInput::COUNT},
    {"post_attention_norm.weight", false, LinearInput::COUNT},
    {"ffn_norm.weight", false, LinearInput::COUNT},
    {"ffn_gate.weight", true, LinearInput::GATE_UP},
    {"ffn_up.weight", true, LinearInput::GATE_UP},
    {"ffn_down.weight", true, LinearInput::DOWN},
    {"post_ffw_norm.weight", false, LinearInput::COUNT},
};

// The HF names shared by the LLaMA-style checkpoints.
const ArchLayerTensor kAttnNorm = {LT::ATTN_NORM, "input_layernorm.weight"};
const ArchLayerTensor kQ = {LT::ATTN_Q, "self_attn.q_proj.weight"};
const ArchLayerTensor kK = {LT::ATTN_K, "self_attn.k_proj.weight"};
const ArchLayerTensor kV = {LT::ATTN_V, "self_attn.v_proj.weight"};
const ArchLayerTensor kO = {LT::ATTN_OUT, "self_attn.o_proj.weight"};
const ArchLayerTensor kGate = {LT::FFN_GATE, "mlp.gate_proj.weight"};
const ArchLayerTensor kUp = {LT::FFN_UP, "mlp.up_proj.weight"};
const ArchLayerTensor kDown = {LT::FFN_DOWN, "mlp.down_proj.weight"};
const ArchLayerTensor kQNorm = {LT::ATTN_Q_NORM, "self_attn.q_norm.weight"};
const ArchLayerTensor kKNorm = {LT::ATTN_K_NORM, "self_attn.k_norm.weight"};

const Arch k_llama = {
    "llama", "llama,mistral", "LlamaForCausalLM,MistralForCausalLM", RopeStyle::ADJACENT, /*hf_permute_qk*/ true, Activation::SILU,
    /*embd_scale*/ false, /*hf_norm_plus_one*/ false, /*swa_pattern*/ 0, 0.0f, /*hf_tied_default*/ false,
    {kAttnNorm, kQ, kK, kV, kO, {LT::FFN_NORM, "post_attention_layernorm.weight"}, kGate, kUp, kDown},
};

const Arch k_qwen2 = {
    "qwen2", "qwen2", "Qwen2ForCausalLM", RopeStyle::HALVES, false, Activation::SILU, false, false, 0, 0.0f, false,
    {kAttnNorm, kQ, kK, kV, kO, {LT::ATTN_Q_BIAS, "self_attn.q_proj.bias"}, {LT::ATTN_K_BIAS, "self_attn.k_proj.bias"},
     {LT::ATTN_V_BIAS, "self_attn.v_proj.bias"}, {LT::FFN_NORM, "post_attention_layernorm.weight"}, kGate, kUp, kDown},
};

const Arch k_qwen3 = {
    "qwen3", "qwen3", "Qwen3ForCausalLM", RopeStyle::HALVES, false, Activation::SILU, false, false, 0, 0.0f, false,
    {kAttnNorm, kQ, kK, kV, kO, kQNorm, kKNorm, {LT::FFN_NORM, "post_attention_layernorm.weight"}, kGate, kUp, kDown},
};

// Gemma 3 (text): llama.cpp hard-codes the layer pattern (every 6th layer global) and the local RoPE base 10000.
const Arch k_gemma3 = {
    "gemma3", "gemma3_text,gemma3", "Gemma3ForCausalLM", RopeStyle::HALVES, false, Activation::GELU_TANH, true, true, 6, 10000.0f, true,
    {kAttnNorm, kQ, kK, kV, kO, kQNorm, kKNorm, {LT::POST_ATTN_NORM, "post_attention_layernorm.weight"},
     {LT::FFN_NORM, "pre_feedforward_layernorm.weight"}, kGate, kUp, kDown, {LT::POST_FFW_NORM, "post_feedforward_layernorm.weight"}},
};

bool in_list(const char * list, const std::string & s) {
    if (s.empty()) return false;
    const char * p = list;
    while (*p) {
        const char * e = std::strchr(p, ',');
        const size_t n = e ? (size_t) (e - p) : std::strlen(p);
        if (n == s.size() && s.compare(0, n, p, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

}  // namespace

const std::vector<const Arch *> & arch_all() {
    static const std::vector<const Arch *> all = {&k_llama, &k_qwen2, &k_qwen3, &k_gemma3};
    return all;
}

const Arch * arch_find(const std::string & name) {
    for (const Arch * a : arch_all())
        if (name == a->name) return a;
    return nullptr;
}

const Arch * arch_from_hf(const std::string & model_type, const std::string & hf_class) {
    for (const Arch * a : arch_all()) {
        const bool type_ok = in_list(a->hf_model_types, model_type), class_ok = in_list(a->hf_classes, hf_class);
        // Both must agree when both are given; either alone is enough.
        if ((type_ok && (hf_class.empty() || class_ok)) || (class_ok && model_type.empty())) return a;
    }
    return nullptr;
}

std::string arch_names() {
    std::string s;
    for (const Arch * a : arch_all()) s += std::string(s.empty() ? "" : ", ") + a->name;
    return s;
}

bool arch_has(const Arch & a, LayerTensor role) {
    for (const ArchLayerTensor & t : a.layer)
        if (t.role == role) return true;
    return false;
}

const char * layer_tensor_gguf(LayerTensor role) {
    GL_ASSERT((int) role >= 0 && role < LT::COUNT);
    return k_roles[(int) role].gguf;
}

std::string layer_tensor_name(int64_t layer, LayerTensor role) {
    return strfmt("blk.%lld.%s", (long long) layer, layer_tensor_gguf(role));
}

std::string input_scale_name(const std::string & weight) {
    const std::string suffix = ".weight";
    GL_ASSERT(weight.size() > suffix.size() && weight.compare(weight.size() - suffix.size(), suffix.size(), suffix) == 0);
    return weight.substr(0, weight.size() - suffix.size()) + ".input_scale";
}

bool layer_tensor_linear(LayerTensor role, LinearInput * input) {
    GL_ASSERT((int) role >= 0 && role < LT::COUNT);
    if (input) *input = k_roles[(int) role].input;
    return k_roles[(int) role].linear;
}

std::vector<int64_t> layer_tensor_shape(LayerTensor role, const BlockDims & d) {
    const int64_t q = d.n_head * d.head_dim, kv = d.n_head_kv * d.head_dim;
    switch (role) {
        case LT::ATTN_NORM: case LT::POST_ATTN_NORM: case LT::FFN_NORM: case LT::POST_FFW_NORM: return {d.n_embd};
        case LT::ATTN_Q: return {d.n_embd, q};
        case LT::ATTN_K: case LT::ATTN_V: return {d.n_embd, kv};
        case LT::ATTN_OUT: return {q, d.n_embd};
        case LT::ATTN_Q_BIAS: return {q};
        case LT::ATTN_K_BIAS: case LT::ATTN_V_BIAS: return {kv};
        case LT::ATTN_Q_NORM: case LT::ATTN_K_NORM: return {d.head_dim};
        case LT::FFN_GATE: case LT::FFN_UP: return {d.n_embd, d.n_ff};
        case LT::FFN_DOWN: return {d.n_ff, d.n_embd};
        default: GL_ASSERT(false);
    }
    return {};
}

bool arch_map_hf_name(const Arch & a, const std::string & hf, int64_t n_layer, std::string * gguf, LayerTensor * role) {
    if (hf == "model.embed_tokens.weight") return *gguf = k_tensor_token_embd, true;
    if (hf == "model.norm.weight") return *gguf = k_tensor_output_norm, true;
    if (hf == "lm_head.weight") return *gguf = k_tensor_output, true;
    const std::string pre = "model.layers.";
    if (hf.compare(0, pre.size(), pre) != 0) return false;
    size_t p = pre.size();
    int64_t layer = 0;
    size_t digits = 0;
    while (p < hf.size() && hf[p] >= '0' && hf[p] <= '9' && digits < 9) {
        layer = layer * 10 + (hf[p] - '0');
        ++p;
        ++digits;
    }
    if (digits == 0 || p >= hf.size() || hf[p] != '.' || layer >= n_layer) return false;
    if (digits > 1 && hf[pre.size()] == '0') return false;  // "01" is not a layer number
    const std::string rest = hf.substr(p + 1);
    for (const ArchLayerTensor & t : a.layer) {
        if (rest == t.hf) {
            *gguf = layer_tensor_name(layer, t.role);
            if (role) *role = t.role;
            return true;
        }
    }
    return false;
}

}  // namespace quill
