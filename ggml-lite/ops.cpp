#include "ggml-lite/ops.h"

#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"
#include "ggml-lite/kv.h"

#include <cmath>
#include <algorithm>
#include <cstring>
#include <vector>

#include <omp.h>

gl_tensor gl_tensor_make(gl_type type, int64_t ne0, int64_t ne1, const void * data, const char * name) {
    gl_tensor t;
    t.type = type;
    t.ne0 = ne0;
    t.ne1 = ne1;
    t.nb1 = gl_row_size(type, ne0);
    t.data = data;
    t.name = name;
    return t;
}

// Bytes of one activation row (types.h gl_act_row_size: the traits' activation format and padding).
static size_t act_row_size(const gl_tensor & w) { return gl_act_row_size(w.type, w.ne0); }

size_t gl_mul_mat_scratch_size(const gl_tensor & w, int64_t n_tok) {
    const gl_type vt = gl_get_type_traits(w.type)->vec_dot_type;
    if (vt == GL_TYPE_F32) return 0;
    return act_row_size(w) * (size_t) n_tok;
}

const void * gl_quantize_activations(const gl_tensor & w, const float * x, int64_t n_tok, void * wdata) {
    const gl_type vt = gl_get_type_traits(w.type)->vec_dot_type;
    if (vt == GL_TYPE_F32) return x;
    const gl_from_float_fn quant = gl_kernels(vt).quantize_act;
    const size_t row = act_row_size(w);
    if (w.act_s > 0.0f) {  // a static grid (types.h: a8_row; whole rows, no padding)
        const gl_from_float_grid_fn qg = gl_kernels(vt).quantize_act_grid;
        GL_ASSERT(qg && w.ne0 % gl_get_type_traits(vt)->block_size == 0);
        for (int64_t t = 0; t < n_tok; ++t) qg(x + t * w.ne0, (uint8_t *) wdata + t * row, w.ne0, w.act_s, w.act_z);
        return wdata;
    }
    const int64_t pad = gl_get_type_traits(w.type)->act_pad;
    const int64_t full = w.ne0 / pad * pad, tail = w.ne0 - full;
    if (tail == 0) {
        for (int64_t t = 0; t < n_tok; ++t) quant(x + t * w.ne0, (uint8_t *) wdata + t * row, w.ne0);
        return wdata;
    }
    // The zero-padded last chunk of a row (codebook types: rows of 172 take Q8_0 blocks of 32).
    float last[256] = {0};
    GL_ASSERT(pad <= 256);
    for (int64_t t = 0; t < n_tok; ++t) {
        uint8_t * dst = (uint8_t *) wdata + t * row;
        if (full > 0) quant(x + t * w.ne0, dst, full);
        memcpy(last, x + t * w.ne0 + full, (size_t) tail * sizeof(float));
        quant(last, dst + gl_row_size(vt, full), pad);
    }
    return wdata;
}

size_t gl_tensor_nbytes(const gl_tensor & w) {
    size_t n = 0;
    const int64_t ne[2] = {w.ne0, w.ne1};
    GL_ASSERT(gl_nbytes_checked(w.type, ne, 2, &n));
    return n;
}

// One weight's share of a product: its kernels and how its rows are cut into chunks.
namespace {
struct MatPart {
    const gl_tensor * w;
    float *           y;
    gl_gemm_fn        gemm;
    gl_vq_gemm_fn     vq_gemm;
    gl_vq_geom        geom;
    bool              vq;
    int64_t           chunk, n_chunks;
};

// Rows are split into chunks of a multiple of 16 rows (whole cache lines of output per thread, no false sharing of
// y for n_tok >= 1 rows of 16 floats); each chunk runs the tiled kernel over all tokens. Batches take 16-row chunks.
// Decode (a few tokens) takes about 4 chunks per thread over all the weights together (total_rows of them): every
// kernel call sets up the activations' block sums and scales again, which at 16 rows cost 4% of a 7B token.
MatPart mat_part(const gl_tensor & w, float * y, int64_t n_tok, int64_t total_rows) {
    const gl_type_traits * tr = gl_get_type_traits(w.type);
    GL_ASSERT(tr && (tr->vq || w.ne0 % tr->block_size == 0));
    MatPart p{&w, y, w.x16 ? gl_kernels(w.type).gemm_x16 : gl_kernels(w.type).gemm, gl_vq_gemm(w.type), gl_vq_geom(), tr->vq != nullptr, 16, 0};
    if (w.x16) GL_ASSERT(gl_x16_ok(w.type, w.ne0, w.ne1) && w.nb1 == gl_row_size(w.type, w.ne0));
    if (p.vq) GL_ASSERT(gl_vq_geometry(w.type, w.ne0, w.ne1, &p.geom));
    // The x16 batch kernel sets up each token tile's activation sums once per call and shares them among the call's
    // groups: 256-row calls (16 groups) spend 4x less on it than 64-row ones (5% of a TinyLlama pp512).
    if (w.x16 && n_tok > 4) p.chunk = 256;
    if (n_tok <= 4) {
        const int64_t per = (total_rows + 4 * omp_get_max_threads() - 1) / (4 * omp_get_max_threads());
        p.chunk = std::max<int64_t>(16, (per + 15) / 16 * 16);
    }
    p.n_chunks = (w.ne1 + p.chunk - 1) / p.chunk;
    return p;
}

void run_rows(const MatPart & p, int64_t r0, int64_t nr, int64_t n_tok, const void * act, size_t act_row) {
    const gl_tensor & w = *p.w;
    if (p.vq) p.vq_gemm(p.geom, w.data, r0, nr, n_tok, act, act_row, p.y + r0, w.ne1);
    else p.gemm(w.ne0, nr, n_tok, (const uint8_t *) w.data + (size_t) r0 * w.nb1, w.nb1, act, act_row, p.y + r0, w.ne1);
}
}  // namespace

void gl_mul_mat(const gl_tensor & w, const float * x, int64_t n_tok, float * y, void * wdata) {
    const gl_tensor * ws[1] = {&w};
    float * ys[1] = {y};
    gl_mul_mat_multi(ws, ys, 1, x, n_tok, wdata);
}

bool gl_mul_mat_can_share(const gl_tensor & a, const gl_tensor & b) {
    return a.ne0 == b.ne0 && gl_get_type_traits(a.type)->vec_dot_type == gl_get_type_traits(b.type)->vec_dot_type &&
           act_row_size(a) == act_row_size(b) && (gl_get_type_traits(a.type)->vq != nullptr) == (gl_get_type_traits(b.type)->vq != nullptr) &&
           a.act_s == b.act_s && a.act_z == b.act_z;
}

void gl_mul_mat_multi(const gl_tensor * const * w, float * const * y, int n_w, const float * x, int64_t n_tok, void * wdata) {
    GL_ASSERT(n_w >= 1 && n_w <= GL_MUL_MAT_MULTI_MAX);
    for (int i = 1; i < n_w; ++i) {
        if (!gl_mul_mat_can_share(*w[0], *w[i])) {  // different activation formats: one product at a time
            for (int j = 0; j < n_w; ++j) gl_mul_mat_multi(&w[j], &y[j], 1, x, n_tok, wdata);
            return;
        }
    }
    // The activations are converted once for all the weights, and all their chunks run in one parallel region:
    // one fork/join for q, k and v (or gate and up) instead of one each.
    const void * act = gl_quantize_activations(*w[0], x, n_tok, wdata);
    const size_t act_row = act_row_size(*w[0]);
    MatPart parts[GL_MUL_MAT_MULTI_MAX];
    int64_t first[GL_MUL_MAT_MULTI_MAX + 1] = {0};
    int64_t work = 0, total_rows = 0;
    for (int i = 0; i < n_w; ++i) total_rows += w[i]->ne1;
    for (int i = 0; i < n_w; ++i) {
        parts[i] = mat_part(*w[i], y[i], n_tok, total_rows);
        first[i + 1] = first[i] + parts[i].n_chunks;
        work += w[i]->ne1 * n_tok * w[i]->ne0;
    }
    const int64_t n_chunks = first[n_w];
    // Threads only pay off on enough work: waking them costs microseconds, and small decode-time products (a
    // 512x64 output layer) would spend more on the fork/join than on the arithmetic.
    const bool parallel = work >= (1 << 18) && n_chunks > 1;
    auto run = [&](int64_t c) {
        int i = 0;
        while (c >= first[i + 1]) ++i;
        const int64_t r0 = (c - first[i]) * parts[i].chunk;
        run_rows(parts[i], r0, std::min(parts[i].chunk, w[i]->ne1 - r0), n_tok, act, act_row);
    };
    if (n_w == 1) {
#pragma omp parallel for schedule(static) if (parallel)
        for (int64_t c = 0; c < n_chunks; ++c) run(c);
    } else {
        // The weights' rows, one after the other, split into one contiguous, equal range per thread (q with k and v
        // have different heights, so splitting their chunk lists would not balance); each thread streams its range
        // in chunks that stay inside one weight.
        // A boundary between threads falls on a multiple of 16 rows of the weight it is in, as gl_mul_mat's chunks do.
        auto boundary = [&](int64_t pos) {
            int64_t base = 0;
            for (int i = 0; i < n_w; ++i) {
                if (pos < base + w[i]->ne1) return base + (pos - base) / 16 * 16;
                base += w[i]->ne1;
            }
            return total_rows;
        };
#pragma omp parallel if (parallel)
        {
            const int64_t nt = omp_get_num_threads(), t = omp_get_thread_num();
            const int64_t lo = boundary(total_rows * t / nt), hi = boundary(total_rows * (t + 1) / nt);
            int64_t base = 0;
            for (int i = 0; i < n_w; ++i) {
                const MatPart & p = parts[i];
                const int64_t ne1 = p.w->ne1;
                for (int64_t r = std::max(lo, base); r < std::min(hi, base + ne1); r += p.chunk) {
                    const int64_t r0 = r - base, nr = std::min({p.chunk, hi - r, base + ne1 - r});
                    run_rows(p, r0, nr, n_tok, act, act_row);
                }
                base += ne1;
            }
        }
    }
}

void gl_get_row(const gl_tensor & w, int64_t row, float * out) {
    GL_ASSERT(row >= 0 && row < w.ne1);
    if (gl_get_type_traits(w.type)->vq) {
        gl_vq_geom g;
        GL_ASSERT(gl_vq_geometry(w.type, w.ne0, w.ne1, &g));
        gl_vq_row_to_float(g, w.data, row, out);
        return;
    }
    if (w.x16 && gl_get_type_traits(w.type)->row_header) {  // the whole row through a per-thread buffer, grown once
        static thread_local std::vector<uint8_t> buf;
        if (buf.size() < w.nb1) buf.resize(w.nb1);
        gl_x16_get_row(w.type, w.ne0, (const uint8_t *) w.data + (size_t) (row / 16) * 16 * w.nb1, row % 16, buf.data());
        gl_kernels(w.type).to_float(buf.data(), out, w.ne0);
        return;
    }
    if (w.x16) {  // block by block through a small buffer (no allocation: embedding lookups run per token)
        const gl_type_traits * tr = gl_get_type_traits(w.type);
        uint8_t plain[256];
        GL_ASSERT(tr->type_size <= sizeof(plain));
        const uint8_t * g = (const uint8_t *) w.data + (size_t) (row / 16) * 16 * w.nb1;
        for (int64_t b = 0; b < w.ne0 / tr->block_size; ++b) {
            gl_x16_get_row(w.type, tr->block_size, g + (size_t) b * 16 * tr->type_size, row % 16, plain);
            gl_kernels(w.type).to_float(plain, out + b * tr->block_size, tr->block_size);
        }
        return;
    }
    gl_kernels(w.type).to_float((const uint8_t *) w.data + (size_t) row * w.nb1, out, w.ne0);
}

static void rms_norm_ref(const float * x, const float * weight, int64_t n, float eps, float * y) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double) (x[i] * x[i]);
    const float mean = (float) (sum / (double) n);
    const float scale = 1.0f / sqrtf(mean + eps);
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
    if (weight) {
        for (int64_t i = 0; i < n; ++i) y[i] *= weight[i];
    }
}

void gl_rope(float * x, int64_t n_head, int64_t head_dim, int64_t n_dims, int64_t pos, float freq_base, float freq_scale,
             const float * freq_factors, gl_rope_mode mode) {
    GL_ASSERT(n_dims <= head_dim && n_dims % 2 == 0);
    const float theta_scale = powf(freq_base, -2.0f / (float) n_dims);
    for (int64_t h = 0; h < n_head; ++h) {
        float * xh = x + h * head_dim;
        // theta for pair i is pos * theta_scale^i, built by repeated multiplication (as ggml does).
        float theta_base = (float) pos;
        for (int64_t i = 0; i < n_dims / 2; ++i) {
            const float ff = freq_factors ? freq_factors[i] : 1.0f;
            const float theta = freq_scale * (theta_base / ff);
            const float c = cosf(theta), s = sinf(theta);
            const int64_t a = mode == GL_ROPE_NEOX ? i : 2 * i;
            const int64_t b = mode == GL_ROPE_NEOX ? i + n_dims / 2 : 2 * i + 1;
            const float x0 = xh[a], x1 = xh[b];
            xh[a] = x0 * c - x1 * s;
            xh[b] = x0 * s + x1 * c;
            theta_base *= theta_scale;
        }
    }
}

static void softmax_ref(float * x, int64_t n, float scale) {
    float max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) {
        x[i] *= scale;
        max = fmaxf(max, x[i]);
    }
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = expf(x[i] - max);
        sum += (double) x[i];
    }
    const float inv = (float) (1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

float gl_silu(float x) { return x / (1.0f + expf(-x)); }

static void swiglu_ref(const float * gate, const float * up, int64_t n, float * out) {
    for (int64_t i = 0; i < n; ++i) out[i] = gl_silu(gate[i]) * up[i];
}

float gl_gelu_tanh(float x) {
    const float k = 0.7978845608028654f;  // sqrt(2/pi)
    return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
}

static void geglu_ref(const float * gate, const float * up, int64_t n, float * out) {
    for (int64_t i = 0; i < n; ++i) out[i] = gl_gelu_tanh(gate[i]) * up[i];
}

static void add_ref(float * y, const float * x, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

static float dot_f32_ref(int64_t n, const float * x, const float * y) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += (double) (x[i] * y[i]);
    return (float) sum;
}

static void att_qk_ref(int64_t nq, int64_t hd, int64_t n, const float * q, int64_t ldq, const float * kt, int64_t ldk, float * s, int64_t lds) {
    for (int64_t i = 0; i < nq; ++i)
        for (int64_t j = 0; j < n; ++j) {
            float acc = 0.0f;
            for (int64_t d = 0; d < hd; ++d) acc = fmaf(q[i * ldq + d], kt[d * ldk + j], acc);
            s[i * lds + j] = acc;
        }
}

static void att_pv_ref(int64_t nq, int64_t hd, int64_t n, const float * p, int64_t ldp, const float * v, int64_t ldv, float * o, int64_t ldo) {
    for (int64_t i = 0; i < nq; ++i)
        for (int64_t d = 0; d < hd; ++d) {
            float acc = 0.0f;
            for (int64_t j = 0; j < n; ++j) acc = fmaf(p[i * ldp + j], v[j * ldv + d], acc);
            o[i * ldo + d] = acc;
        }
}

const gl_float_kernels gl_float_scalar = {dot_f32_ref, rms_norm_ref, softmax_ref, swiglu_ref, geglu_ref, add_ref, att_qk_ref, att_pv_ref};

void gl_rms_norm(const float * x, const float * weight, int64_t n, float eps, float * y) { gl_float_ops().rms_norm(x, weight, n, eps, y); }
void gl_softmax(float * x, int64_t n, float scale) { gl_float_ops().softmax(x, n, scale); }
void gl_swiglu(const float * gate, const float * up, int64_t n, float * out) { gl_float_ops().swiglu(gate, up, n, out); }
void gl_geglu(const float * gate, const float * up, int64_t n, float * out) { gl_float_ops().geglu(gate, up, n, out); }
void gl_add(float * y, const float * x, int64_t n) { gl_float_ops().add(y, x, n); }
void gl_add_bias(float * rows, const float * bias, int64_t n_rows, int64_t n) {
    const gl_float_kernels & f = gl_float_ops();
    for (int64_t r = 0; r < n_rows; ++r) f.add(rows + r * n, bias, n);
}
void gl_scale(float * x, int64_t n, float s) {
    for (int64_t i = 0; i < n; ++i) x[i] *= s;
}
void gl_softcap(float * x, int64_t n, float cap) {
    for (int64_t i = 0; i < n; ++i) x[i] = cap * tanhf(x[i] / cap);
}

void gl_attention(const float * q, int64_t n_head, int64_t n_head_kv, int64_t head_dim, const gl_kv_view & k, const gl_kv_view & v,
                  int64_t n_kv, float scale, float * out, float * scratch) {
    GL_ASSERT(n_head_kv > 0 && n_head % n_head_kv == 0 && n_kv > 0);
    GL_ASSERT(head_dim > 0 && head_dim <= GL_ATTENTION_MAX_HEAD_DIM);
    const gl_kv_type_traits * kt = gl_kv_get(k.type);
    const gl_kv_type_traits * vt = gl_kv_get(v.type);
    GL_ASSERT(kt && vt && head_dim % kt->head_multiple == 0 && head_dim % vt->head_multiple == 0);
    const gl_kv_kernels & kk = gl_kv_kernels_get(k.type);
    const gl_kv_kernels & vk = gl_kv_kernels_get(v.type);
    // q·k takes q in the key type's query format (f16 keys: q rounded to f16; q8_0/q4_0 keys: Q8_0), as ggml does.
    const gl_from_float_fn q_convert = gl_kernels(kt->q_type).quantize_act;
    uint8_t qconv[GL_ATTENTION_MAX_HEAD_DIM * sizeof(float)];  // one head of q in that format (never larger than f32)
    const int64_t group = n_head / n_head_kv;
    float * att = scratch;  // n_kv
    for (int64_t h = 0; h < n_head; ++h) {
        const int64_t kvh = h / group;
        q_convert(q + h * head_dim, qconv, head_dim);
        // Heads are whole blocks, so head kvh starts kvh * head_dim values into the row.
        kk.qk(head_dim, n_kv, qconv, (const uint8_t *) k.data + gl_row_size(k.type, kvh * head_dim), k.stride, att);
        gl_softmax(att, n_kv, scale);
        float * oh = out + h * head_dim;
        for (int64_t d = 0; d < head_dim; ++d) oh[d] = 0.0f;
        vk.pv(head_dim, n_kv, att, (const uint8_t *) v.data + gl_row_size(v.type, kvh * head_dim), v.stride, oh);
    }
}

bool gl_attention_batch_ok(gl_type k_type, gl_type v_type, int64_t head_dim) {
    const gl_kv_type_traits * kt = gl_kv_get(k_type);
    return kt && gl_kv_get(v_type) && !gl_get_type_traits(k_type)->is_quantized && head_dim > 0 && head_dim % 16 == 0 &&
           head_dim <= GL_ATTENTION_MAX_HEAD_DIM;
}

size_t gl_attention_batch_scratch(int64_t n_rows, int64_t head_dim, int64_t n_q) {
    const size_t np = (size_t) ((n_rows + 15) / 16 * 16), hd = (size_t) head_dim, nq = (size_t) n_q;
    return 2 * hd * np + 2 * nq * hd + nq * np + std::max(np, hd);  // kᵀ, v, q, o, scores, one row
}

void gl_attention_batch(const float * q, int64_t q_stride, int64_t n_tok, int64_t group, int64_t head_dim, int64_t kv_head,
                        const gl_kv_view & k, const gl_kv_view & v, const int64_t * lo, const int64_t * hi, float scale, float * out,
                        int64_t out_stride, float * scratch) {
    GL_ASSERT(gl_attention_batch_ok(k.type, v.type, head_dim) && n_tok > 0 && group > 0 && kv_head >= 0);
    const gl_kv_type_traits * kt = gl_kv_get(k.type);
    const gl_kv_type_traits * vt = gl_kv_get(v.type);
    int64_t L = lo[0], H = hi[0];
    for (int64_t t = 0; t < n_tok; ++t) {
        GL_ASSERT(0 <= lo[t] && lo[t] < hi[t]);
        L = std::min(L, lo[t]);
        H = std::max(H, hi[t]);
    }
    const int64_t HD = head_dim, n = H - L, np = (n + 15) / 16 * 16, nq = n_tok * group;
    float * KT = scratch;       // HD rows of np: the keys, transposed
    float * V = KT + HD * np;   // np rows of HD
    float * Q = V + np * HD;    // nq rows of HD
    float * O = Q + nq * HD;    // nq rows of HD
    float * S = O + nq * HD;    // nq rows of np: scores, then probabilities
    float * P = S + nq * np;    // max(np, HD): a key row, or a row of p rounded through p_type
    // The head's rows, widened once (the view rows hold every KV head; heads are whole blocks).
    const gl_to_float_fn k2f = gl_kernels(k.type).to_float, v2f = gl_kernels(v.type).to_float;
    const size_t koff = gl_row_size(k.type, kv_head * HD), voff = gl_row_size(v.type, kv_head * HD);
    for (int64_t j = 0; j < n; ++j) {
        k2f((const uint8_t *) k.data + (size_t) (L + j) * k.stride + koff, P, HD);
        for (int64_t d = 0; d < HD; ++d) KT[d * np + j] = P[d];
        v2f((const uint8_t *) v.data + (size_t) (L + j) * v.stride + voff, V + j * HD, HD);
    }
    for (int64_t d = 0; d < HD; ++d)
        for (int64_t j = n; j < np; ++j) KT[d * np + j] = 0.0f;
    memset(V + n * HD, 0, (size_t) ((np - n) * HD) * sizeof(float));
    // q in the keys' query format, as gl_attention converts it (f16 keys: rounded to f16)
    uint8_t conv[GL_ATTENTION_MAX_HEAD_DIM * sizeof(float)];
    const gl_from_float_fn q_in = gl_kernels(kt->q_type).quantize_act;
    const gl_to_float_fn q_out = gl_kernels(kt->q_type).to_float;
    for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t g = 0; g < group; ++g) {
            q_in(q + t * q_stride + g * HD, conv, HD);
            q_out(conv, Q + (t * group + g) * HD, HD);
        }
    const gl_float_kernels & f = gl_float_ops();
    f.att_qk(nq, HD, np, Q, HD, KT, np, S, np);
    // each token's own rows: softmax as gl_attention's, p rounded through p_type, zero elsewhere
    const bool round_p = vt->p_type != GL_TYPE_F32;
    const gl_from_float_fn p_in = gl_kernels(vt->p_type).quantize_act;
    const gl_to_float_fn p_out = gl_kernels(vt->p_type).to_float;
    for (int64_t i = 0; i < nq; ++i) {
        const int64_t t = i / group, a = lo[t] - L, b = hi[t] - L;
        float * row = S + i * np;
        for (int64_t j = 0; j < a; ++j) row[j] = 0.0f;
        for (int64_t j = b; j < np; ++j) row[j] = 0.0f;
        f.softmax(row + a, b - a, scale);
        if (round_p) {
            p_in(row + a, (uint8_t *) P, b - a);
            p_out((const uint8_t *) P, row + a, b - a);
        }
    }
    f.att_pv(nq, HD, np, S, np, V, HD, O, HD);
    for (int64_t t = 0; t < n_tok; ++t) memcpy(out + t * out_stride, O + t * group * HD, (size_t) (group * HD) * sizeof(float));
}
