// ggml-lite scalar reference ops. These are the ground truth that SIMD and CUDA kernels are tested against;
// they are written for clarity, on data laid out the way fast kernels want it (row-major blocks, aligned).
#pragma once

#include "ggml-lite/types.h"

#include <cstddef>
#include <cstdint>

// A read-only 2-D view of a weight: ne0 elements per row, ne1 rows, rows nb1 bytes apart.
struct gl_tensor {
    gl_type      type = GL_TYPE_F32;
    int64_t      ne0 = 0;  // row length (in_features)
    int64_t      ne1 = 0;  // rows (out_features)
    size_t       nb1 = 0;  // bytes per row
    const void * data = nullptr;
    const char * name = "";
    bool         x16 = false;  // rows stored 16-interleaved (types.h, gl_x16_*); nb1 stays the plain row size
    // Static activation grid (a8_row activations only): act_s > 0 quantizes every activation row on this one grid,
    // value = act_s · (c − act_z), c clamped to int8, instead of on each row's own range (W8A8 per tensor).
    float        act_s = 0.0f;
    int32_t      act_z = 0;
};

gl_tensor gl_tensor_make(gl_type type, int64_t ne0, int64_t ne1, const void * data, const char * name = "");

// Exact bytes of the whole weight (index rows plus side section for codebook types).
size_t gl_tensor_nbytes(const gl_tensor & w);

// Bytes of scratch that gl_mul_mat needs for n_tok activation rows of the weight's activation format.
size_t gl_mul_mat_scratch_size(const gl_tensor & w, int64_t n_tok);

// Quantizes activation rows x (n_tok × w.ne0 floats) to w's vec_dot_type into wdata (scratch).
// Returns the pointer to use as activations (x itself when the activation type is F32).
const void * gl_quantize_activations(const gl_tensor & w, const float * x, int64_t n_tok, void * wdata);

// y[t][r] = dot(W[r], x[t]) for t < n_tok, r < w.ne1. x: n_tok × ne0 floats, y: n_tok × ne1 floats.
// Activations are converted once to the weight's activation format (Q8_0 for quantized weights, as ggml does).
// wdata must hold gl_mul_mat_scratch_size(w, n_tok) bytes. Rows are split across OpenMP threads.
void gl_mul_mat(const gl_tensor & w, const float * x, int64_t n_tok, float * y, void * wdata);

// Several products of the same activations, y[i] = W_i · x (q, k and v; gate and up): the activations are converted
// once and every weight's row chunks run in one parallel region. Each y[i] is bit-identical to gl_mul_mat(*w[i], ...).
// Weights whose activation rows differ (gl_mul_mat_can_share false) run one after the other. At most
// GL_MUL_MAT_MULTI_MAX weights; wdata as for gl_mul_mat (the largest of the weights' needs).
constexpr int GL_MUL_MAT_MULTI_MAX = 4;
void gl_mul_mat_multi(const gl_tensor * const * w, float * const * y, int n_w, const float * x, int64_t n_tok, void * wdata);
bool gl_mul_mat_can_share(const gl_tensor & a, const gl_tensor & b);

// out = row `row` of w, widened to float (embedding lookup; any type, codebook types included).
void gl_get_row(const gl_tensor & w, int64_t row, float * out);

// y = x / sqrt(mean(x²) + eps) * weight   (weight may be null)
void gl_rms_norm(const float * x, const float * weight, int64_t n, float eps, float * y);

enum gl_rope_mode {
    GL_ROPE_NORM = 0,  // rotate adjacent pairs (x[2i], x[2i+1]): LLaMA in Meta/GGUF layout
    GL_ROPE_NEOX = 2,  // rotate halves (x[i], x[i + n_dims/2]): GPT-NeoX and HF layout
};

// Rotates the first n_dims of each of n_head heads of head_dim values in place, for position pos.
// theta_i = pos * freq_scale * base^(-2i/n_dims) / freq_factors[i] (freq_factors may be null).
void gl_rope(float * x, int64_t n_head, int64_t head_dim, int64_t n_dims, int64_t pos, float freq_base, float freq_scale,
             const float * freq_factors, gl_rope_mode mode);

// In place: x = softmax(x * scale).
void gl_softmax(float * x, int64_t n, float scale);

float gl_silu(float x);
// out[i] = silu(gate[i]) * up[i]   (out may be gate or up)
void gl_swiglu(const float * gate, const float * up, int64_t n, float * out);
// GELU, tanh approximation (PyTorch's gelu(approximate="tanh"), ggml's gelu): 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
float gl_gelu_tanh(float x);
// out[i] = gelu_tanh(gate[i]) * up[i]   (out may be gate or up)
void gl_geglu(const float * gate, const float * up, int64_t n, float * out);

// y[i] += x[i]: the residual adds.
void gl_add(float * y, const float * x, int64_t n);
// Each of n_rows rows of n values: row += bias (the linear layers' biases).
void gl_add_bias(float * rows, const float * bias, int64_t n_rows, int64_t n);
// x[i] *= s
void gl_scale(float * x, int64_t n, float s);
// x[i] = cap · tanh(x[i] / cap): logit soft-capping.
void gl_softcap(float * x, int64_t n, float cap);

// ---- dense float/double kernels of the quantizers (quantize/: Hessians, GPTQ, GPTVQ) ------------------------------
// Dispatched like every op (ggml-lite/cpu.h gl_linalg_kernels). Results are a fixed function of the inputs at a given
// dispatch level: independent of the thread count.

// C[i][j] = Σ_l A[i][l]·B[j][l]  (A: m×k, B: n×k, C: m×n; rows lda/ldb/ldc floats apart), C = C·beta + A·Bᵀ with
// beta 0 or 1 (accumulate). Float products and sums in a fixed order. Large products run on OpenMP threads.
void gl_gemm_nt_f32(int64_t m, int64_t n, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc,
                    bool accumulate);
// y[i] += a·x[i]
void   gl_axpy_f32(int64_t n, float a, const float * x, float * y);
void   gl_axpy_f64(int64_t n, double a, const double * x, double * y);
double gl_dot_f64(int64_t n, const double * x, const double * y);
// A[i][j] -= Σ_l A[i][k0+l]·A[j][k0+l] (l < kb) for rows i0 <= i < min(n, i0+4) and j0 <= j <= i (A: n × n doubles,
// row-major): one row tile of a blocked Cholesky's trailing update.
void   gl_syrk_tile_f64(double * A, int64_t n, int64_t i0, int64_t j0, int64_t k0, int64_t kb);
// Nearest of k centroids for each of n vectors of `dim` (1, 2 or 4) floats X, under the coordinate weights w (dim):
// cA holds k entries of dim + 1 floats (Σ_t w_t·c_mt², then c_m); ib index bits (k <= 2^ib). out[i] = the index;
// second[i] (when non-null) a lower bound of the second-smallest weighted distance (+inf when k = 1). Distances equal
// in all but their low ib mantissa bits tie and go to the lower index (ggml-lite/cpu/linalg_impl.h).
void   gl_vq_nearest(int dim, int64_t n, const float * X, const float * w, int k, int ib, const float * cA, int32_t * out, float * second);

// Keys or values of one sequence in the KV cache: row j (position j) holds n_head_kv*head_dim elements of `type`
// (a KV type of ggml-lite/kv.h: f32, f16, bf16, q8_0, q4_0), rows `stride` bytes apart. A window of positions
// [start, start + n) is the view with data advanced by start * stride.
struct gl_kv_view {
    gl_type      type = GL_TYPE_F16;
    const void * data = nullptr;
    size_t       stride = 0;
};

// Grouped-query attention of one token: for each query head h (kv head h / (n_head/n_head_kv)),
// out_h = Σ_j softmax_j(scale · q_h·k_j) v_j over positions j < n_kv.
// q·k and p·v go through the KV types' kernels (ggml-lite/kv.h: how q is converted for the keys, how probabilities
// meet the values). scratch holds n_kv + head_dim floats. head_dim is at most GL_ATTENTION_MAX_HEAD_DIM and a
// multiple of both types' head_multiple (32 for q8_0/q4_0; KvCache::init refuses other shapes with an error).
constexpr int64_t GL_ATTENTION_MAX_HEAD_DIM = 1024;
void gl_attention(const float * q, int64_t n_head, int64_t n_head_kv, int64_t head_dim, const gl_kv_view & k, const gl_kv_view & v,
                  int64_t n_kv, float scale, float * out, float * scratch);

// Attention of a batch (prompt processing): n_tok tokens of one sequence and the `group` query heads of KV head
// kv_head together. Token t's query head g is at q + t·q_stride + g·head_dim, its output at out + t·out_stride +
// g·head_dim, and it sees rows [lo[t], hi[t]) of the views (lo < hi). The same function as gl_attention for each
// token (q rounded through the key type's q_type, p through the value type's p_type), computed as two float products
// (gl_float_kernels att_qk, att_pv) over the head's rows converted to float once for all n_tok·group queries: the
// sums run in another order, so results equal gl_attention's up to rounding. For float key types (f32, f16, bf16),
// any value type, head_dim a multiple of 16 (gl_attention_batch_ok). scratch: gl_attention_batch_scratch floats for
// the largest hi − lo and n_tok·group.
bool   gl_attention_batch_ok(gl_type k_type, gl_type v_type, int64_t head_dim);
size_t gl_attention_batch_scratch(int64_t n_rows, int64_t head_dim, int64_t n_q);
void   gl_attention_batch(const float * q, int64_t q_stride, int64_t n_tok, int64_t group, int64_t head_dim, int64_t kv_head,
                          const gl_kv_view & k, const gl_kv_view & v, const int64_t * lo, const int64_t * hi, float scale, float * out,
                          int64_t out_stride, float * scratch);
