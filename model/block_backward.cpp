#include "model/block_backward.h"

#include "ggml-lite/common.h"
#include "ggml-lite/ops.h"

#include <algorithm>
#include <cmath>
#include <omp.h>

namespace quill {

namespace {

// C (m × n, rows ldc apart) (+)= A·Bᵀ, A m × k (rows lda apart), B n × k (rows ldb apart). Float: gl_gemm_nt_f32
// (each element's sum independent of the threads); double: plain loops, for the tests.
void gemm_nt(int64_t m, int64_t n, int64_t k, const float * A, int64_t lda, const float * B, int64_t ldb, float * C, int64_t ldc, bool acc) {
    gl_gemm_nt_f32(m, n, k, A, lda, B, ldb, C, ldc, acc);
}
void gemm_nt(int64_t m, int64_t n, int64_t k, const double * A, int64_t lda, const double * B, int64_t ldb, double * C, int64_t ldc, bool acc) {
#pragma omp parallel for schedule(static) if (m * n * k >= (1 << 20) && !omp_in_parallel())
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
            double s = 0.0;
            for (int64_t l = 0; l < k; ++l) s += A[i * lda + l] * B[j * ldb + l];
            C[i * ldc + j] = acc ? C[i * ldc + j] + s : s;
        }
    }
}
template <class T> void gemm_nt(int64_t m, int64_t n, int64_t k, const T * A, const T * B, T * C, bool acc) {
    gemm_nt(m, n, k, A, k, B, k, C, n, acc);
}

// dst (cols × rows) = srcᵀ (rows × cols, rows lds apart)
template <class T> void transpose(const T * src, int64_t rows, int64_t cols, int64_t lds, T * dst) {
    const int64_t B = 32;
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 18) && !omp_in_parallel())
    for (int64_t i0 = 0; i0 < rows; i0 += B) {
        for (int64_t j0 = 0; j0 < cols; j0 += B) {
            for (int64_t i = i0; i < std::min(rows, i0 + B); ++i)
                for (int64_t j = j0; j < std::min(cols, j0 + B); ++j) dst[j * rows + i] = src[i * lds + j];
        }
    }
}
template <class T> void transpose(const T * src, int64_t rows, int64_t cols, T * dst) { transpose(src, rows, cols, cols, dst); }

// 1/sqrt(mean(x²) + eps), summed in double as the scalar gl_rms_norm does.
template <class T> T rms_scale(const T * x, int64_t n, float eps) {
    double s = 0.0;
    for (int64_t i = 0; i < n; ++i) s += (double) x[i] * (double) x[i];
    return (T) (1.0 / std::sqrt(s / (double) n + (double) eps));
}

// y = x·r·w over each group of `g` values of n rows × width (w may be null: ones).
template <class T> void rms_fwd(const T * x, int64_t rows, int64_t width, int64_t g, const float * w, float eps, T * y) {
#pragma omp parallel for schedule(static) if (rows * width >= (1 << 16))
    for (int64_t r = 0; r < rows * (width / g); ++r) {
        const T * xr = x + r * g;
        T * yr = y + r * g;
        const T s = rms_scale(xr, g, eps);
        for (int64_t i = 0; i < g; ++i) yr[i] = xr[i] * s * (w ? (T) w[i] : (T) 1);
    }
}

// dx (+)= the gradient through y = x·r·w:  r·(dy∘w) − x·r³/g·Σ(dy∘w∘x).
template <class T> void rms_bwd(const T * x, int64_t rows, int64_t width, int64_t g, const float * w, float eps, const T * dy, T * dx, bool acc) {
#pragma omp parallel for schedule(static) if (rows * width >= (1 << 16))
    for (int64_t r = 0; r < rows * (width / g); ++r) {
        const T * xr = x + r * g, * dyr = dy + r * g;
        T * dxr = dx + r * g;
        const T s = rms_scale(xr, g, eps);
        double dot = 0.0;
        for (int64_t i = 0; i < g; ++i) dot += (double) dyr[i] * (w ? (double) w[i] : 1.0) * (double) xr[i];
        const T c = (T) (dot * (double) s * (double) s * (double) s / (double) g);
        for (int64_t i = 0; i < g; ++i) {
            const T v = s * dyr[i] * (w ? (T) w[i] : (T) 1) - xr[i] * c;
            dxr[i] = acc ? dxr[i] + v : v;
        }
    }
}

// RoPE of one row of n_head heads at position pos, forward (sign = +1) or its transpose (sign = -1: the inverse
// rotation). The angles are gl_rope's, computed the same way in float.
template <class T> void rope_row(T * x, int64_t n_head, const LlamaHparams & hp, const LlamaLayer & L, int64_t pos, int sign) {
    const int64_t hd = hp.head_dim, nd = hp.n_rot;
    const float theta_scale = powf(L.rope_base, -2.0f / (float) nd);
    float theta_base = (float) pos;
    for (int64_t i = 0; i < nd / 2; ++i) {
        const float ff = L.rope_freqs ? L.rope_freqs[i] : 1.0f;
        const float theta = hp.rope_freq_scale * (theta_base / ff);
        const T c = (T) cosf(theta), s = (T) (sign * sinf(theta));
        const int64_t a = hp.rope_mode == GL_ROPE_NEOX ? i : 2 * i;
        const int64_t b = hp.rope_mode == GL_ROPE_NEOX ? i + nd / 2 : 2 * i + 1;
        for (int64_t h = 0; h < n_head; ++h) {
            T * xh = x + h * hd;
            const T x0 = xh[a], x1 = xh[b];
            xh[a] = x0 * c - x1 * s;
            xh[b] = x0 * s + x1 * c;
        }
        theta_base *= theta_scale;
    }
}

template <class T> T act_fwd(T g, bool gelu) {
    if (gelu) {
        const T k = (T) 0.7978845608028654;
        return (T) 0.5 * g * ((T) 1 + std::tanh(k * (g + (T) 0.044715 * g * g * g)));
    }
    return g / ((T) 1 + std::exp(-g));
}
template <class T> T act_grad(T g, bool gelu) {
    if (gelu) {
        const T k = (T) 0.7978845608028654;
        const T t = std::tanh(k * (g + (T) 0.044715 * g * g * g));
        return (T) 0.5 * ((T) 1 + t) + (T) 0.5 * g * ((T) 1 - t * t) * k * ((T) 1 + (T) (3 * 0.044715) * g * g);
    }
    const T sg = (T) 1 / ((T) 1 + std::exp(-g));
    return sg * ((T) 1 + g * ((T) 1 - sg));
}

template <class T> void resize(std::vector<T> & v, int64_t n) {
    if ((int64_t) v.size() < n) v.resize((size_t) n);
}

}  // namespace

template <class T> size_t BlockTape<T>::bytes() const {
    size_t n = 0;
    for (const std::vector<T> * v : {&x_, &xn1_, &q0_, &k0_, &q_, &k_, &v_, &p_, &a_, &o0_, &x1_, &xn2_, &g_, &u_, &h_, &d0_, &s1_, &s2_, &s3_,
                                     &s4_, &s5_, &wt_, &yt_, &xt_, &dq_, &dk_, &dv_})
        n += v->capacity() * sizeof(T);
    return n;
}

template <class T> void BlockTape<T>::linear_fwd(LayerTensor r, const T * x, int64_t in, int64_t out, T * y) const {
    const T * w = w_[(int) r];
    GL_ASSERT(w);
    gemm_nt(n_, out, in, x, w, y, false);
}

// y = x·wᵀ: dx (+)= dy·w, dw = dyᵀ·x; both as A·Bᵀ products on transposed copies.
template <class T> void BlockTape<T>::linear_bwd(LayerTensor r, const T * x, int64_t in, int64_t out, const T * dy, T * dx, bool acc_dx, T * dw) {
    const T * w = w_[(int) r];
    resize(wt_, in * out);
    transpose(w, out, in, wt_.data());
    gemm_nt(n_, in, out, dy, wt_.data(), dx, acc_dx);
    if (!dw) return;
    resize(yt_, out * n_);
    resize(xt_, in * n_);
    transpose(dy, n_, out, yt_.data());
    transpose(x, n_, in, xt_.data());
    gemm_nt(out, in, n_, yt_.data(), xt_.data(), dw, false);
}

template <class T>
void BlockTape<T>::forward(const LlamaHparams & hp, const LlamaLayer & base, const T * const w[(int) LayerTensor::COUNT], const T * x, int64_t n_seq,
                           int64_t seq_len, T * y) {
    GL_ASSERT(n_seq > 0 && seq_len > 0 && hp.n_head % hp.n_head_kv == 0 && hp.n_rot <= hp.head_dim);
    hp_ = &hp;
    L_ = &base;
    for (int r = 0; r < (int) LayerTensor::COUNT; ++r) w_[r] = w[r];
    n_seq_ = n_seq;
    seq_len_ = seq_len;
    n_ = n_seq * seq_len;
    const int64_t n = n_, E = hp.n_embd, Q = hp.q_dim(), KV = hp.kv_dim(), F = hp.n_ff, HD = hp.head_dim;
    for (std::vector<T> * v : {&x_, &xn1_, &o0_, &x1_, &xn2_, &d0_}) resize(*v, n * E);
    for (std::vector<T> * v : {&q0_, &q_, &a_}) resize(*v, n * Q);
    for (std::vector<T> * v : {&k0_, &k_, &v_}) resize(*v, n * KV);
    for (std::vector<T> * v : {&g_, &u_, &h_}) resize(*v, n * F);
    resize(p_, n_seq * hp.n_head * seq_len * seq_len);
    const LlamaLayer & L = base;
    std::copy(x, x + n * E, x_.data());

    // ---- attention
    rms_fwd(x_.data(), n, E, E, L.attn_norm, hp.eps, xn1_.data());
    linear_fwd(LayerTensor::ATTN_Q, xn1_.data(), E, Q, q0_.data());
    linear_fwd(LayerTensor::ATTN_K, xn1_.data(), E, KV, k0_.data());
    linear_fwd(LayerTensor::ATTN_V, xn1_.data(), E, KV, v_.data());
    for (int64_t t = 0; t < n; ++t) {
        for (int64_t i = 0; i < Q && L.bq; ++i) q0_[t * Q + i] += (T) L.bq[i];
        for (int64_t i = 0; i < KV && L.bk; ++i) k0_[t * KV + i] += (T) L.bk[i];
        for (int64_t i = 0; i < KV && L.bv; ++i) v_[t * KV + i] += (T) L.bv[i];
    }
    if (L.q_norm) rms_fwd(q0_.data(), n, Q, HD, L.q_norm, hp.eps, q_.data());
    else std::copy(q0_.data(), q0_.data() + n * Q, q_.data());
    if (L.k_norm) rms_fwd(k0_.data(), n, KV, HD, L.k_norm, hp.eps, k_.data());
    else std::copy(k0_.data(), k0_.data() + n * KV, k_.data());
    for (int64_t t = 0; t < n; ++t) {
        rope_row(q_.data() + t * Q, hp.n_head, hp, L, t % seq_len, 1);
        rope_row(k_.data() + t * KV, hp.n_head_kv, hp, L, t % seq_len, 1);
    }
    attention_fwd();
    linear_fwd(LayerTensor::ATTN_OUT, a_.data(), Q, E, o0_.data());
    if (L.post_attn_norm) rms_fwd(o0_.data(), n, E, E, L.post_attn_norm, hp.eps, x1_.data());
    else std::copy(o0_.data(), o0_.data() + n * E, x1_.data());
    for (int64_t i = 0; i < n * E; ++i) x1_[i] += x_[i];

    // ---- MLP
    const bool gelu = hp.arch && hp.arch->act == Activation::GELU_TANH;
    rms_fwd(x1_.data(), n, E, E, L.ffn_norm, hp.eps, xn2_.data());
    linear_fwd(LayerTensor::FFN_GATE, xn2_.data(), E, F, g_.data());
    linear_fwd(LayerTensor::FFN_UP, xn2_.data(), E, F, u_.data());
    for (int64_t i = 0; i < n * F; ++i) h_[i] = act_fwd(g_[i], gelu) * u_[i];
    linear_fwd(LayerTensor::FFN_DOWN, h_.data(), F, E, d0_.data());
    if (L.post_ffw_norm) rms_fwd(d0_.data(), n, E, E, L.post_ffw_norm, hp.eps, y);
    else std::copy(d0_.data(), d0_.data() + n * E, y);
    for (int64_t i = 0; i < n * E; ++i) y[i] += x1_[i];
}

// Per (sequence, KV head): the heads of its group as matrix products (gemm_nt; the causal and window masks applied
// to the scores, masked probabilities exactly 0), each task with its own scratch, so the results do not depend on the
// thread count. s5_ holds per thread: Kᵀ, Vᵀ (head_dim × S each) and two S × S matrices.
template <class T> static T * task_scratch(std::vector<T> & buf, int64_t S, int64_t HD, int threads, int tid) {
    const int64_t per = 2 * HD * S + 2 * S * S;
    if ((int64_t) buf.size() < per * threads) buf.resize((size_t) (per * threads));
    return buf.data() + per * tid;
}

template <class T> void BlockTape<T>::attention_fwd() {
    const LlamaHparams & hp = *hp_;
    const int64_t S = seq_len_, H = hp.n_head, HKV = hp.n_head_kv, HD = hp.head_dim, Q = hp.q_dim(), KV = hp.kv_dim();
    const int64_t group = H / HKV, window = L_->window;
    const T scale = (T) (1.0f / sqrtf((float) HD));
    const int threads = omp_get_max_threads();
    task_scratch(s5_, S, HD, threads, 0);
#pragma omp parallel for schedule(dynamic)
    for (int64_t task = 0; task < n_seq_ * HKV; ++task) {
        const int64_t sq = task / HKV, kvh = task % HKV, t0 = sq * S;
        const int tid = omp_get_thread_num();
        GL_ASSERT(tid < threads);
        T * vt = s5_.data() + (2 * HD * S + 2 * S * S) * tid;
        transpose(v_.data() + t0 * KV + kvh * HD, S, HD, KV, vt);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            T * P = p_.data() + (sq * H + h) * S * S;
            gemm_nt(S, S, HD, q_.data() + t0 * Q + h * HD, Q, k_.data() + t0 * KV + kvh * HD, KV, P, S, false);
            for (int64_t i = 0; i < S; ++i) {
                T * p = P + i * S;
                const int64_t j0 = window > 0 ? std::max<int64_t>(0, i + 1 - window) : 0;
                T mx = -INFINITY;
                for (int64_t j = j0; j <= i; ++j) {
                    p[j] *= scale;
                    mx = std::max(mx, p[j]);
                }
                double sum = 0.0;
                for (int64_t j = j0; j <= i; ++j) {
                    p[j] = std::exp(p[j] - mx);
                    sum += (double) p[j];
                }
                const T inv = (T) (1.0 / sum);
                for (int64_t j = 0; j < S; ++j) p[j] = j >= j0 && j <= i ? p[j] * inv : (T) 0;
            }
            gemm_nt(S, HD, S, P, S, vt, S, a_.data() + t0 * Q + h * HD, Q, false);
        }
    }
}

// a = P·V, P = softmax(scale·Q·Kᵀ) (masked): dV += Pᵀ·dA; dP = dA·Vᵀ; dS = P ∘ (dP − rowsum(P ∘ dP))·scale;
// dQ = dS·K; dK += dSᵀ·Q.
template <class T> void BlockTape<T>::attention_bwd(const T * da, T * dq, T * dk, T * dv) {
    const LlamaHparams & hp = *hp_;
    const int64_t S = seq_len_, H = hp.n_head, HKV = hp.n_head_kv, HD = hp.head_dim, Q = hp.q_dim(), KV = hp.kv_dim();
    const int64_t group = H / HKV;
    const T scale = (T) (1.0f / sqrtf((float) HD));
    const int threads = omp_get_max_threads();
    task_scratch(s5_, S, HD, threads, 0);
#pragma omp parallel for schedule(dynamic)
    for (int64_t task = 0; task < n_seq_ * HKV; ++task) {
        const int64_t sq = task / HKV, kvh = task % HKV, t0 = sq * S;
        const int tid = omp_get_thread_num();
        GL_ASSERT(tid < threads);
        T * kt = s5_.data() + (2 * HD * S + 2 * S * S) * tid, * xt = kt + HD * S, * dS = xt + HD * S, * dSt = dS + S * S;
        transpose(k_.data() + t0 * KV + kvh * HD, S, HD, KV, kt);
        for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h) {
            const bool first = h == kvh * group;
            const T * P = p_.data() + (sq * H + h) * S * S;
            const T * dah = da + t0 * Q + h * HD;
            // dV (+)= Pᵀ·dA: rows of Pᵀ against rows of dAᵀ
            transpose(P, S, S, S, dSt);
            transpose(dah, S, HD, Q, xt);
            gemm_nt(S, HD, S, dSt, S, xt, S, dv + t0 * KV + kvh * HD, KV, !first);
            // dP = dA·Vᵀ, then dS in place
            gemm_nt(S, S, HD, dah, Q, v_.data() + t0 * KV + kvh * HD, KV, dS, S, false);
            for (int64_t i = 0; i < S; ++i) {
                const T * p = P + i * S;
                T * d = dS + i * S;
                double dot = 0.0;
                for (int64_t j = 0; j <= i; ++j) dot += (double) p[j] * (double) d[j];
                for (int64_t j = 0; j < S; ++j) d[j] = p[j] * (d[j] - (T) dot) * scale;  // 0 where masked
            }
            // dQ = dS·K: rows of dS against rows of Kᵀ
            gemm_nt(S, HD, S, dS, S, kt, S, dq + t0 * Q + h * HD, Q, false);
            // dK (+)= dSᵀ·Q: rows of dSᵀ against rows of Qᵀ
            transpose(dS, S, S, S, dSt);
            transpose(q_.data() + t0 * Q + h * HD, S, HD, Q, xt);
            gemm_nt(S, HD, S, dSt, S, xt, S, dk + t0 * KV + kvh * HD, KV, !first);
        }
    }
}

template <class T> void BlockTape<T>::backward(const T * dy, T * dx, T * const dw[(int) LayerTensor::COUNT]) {
    GL_ASSERT(hp_ && n_ > 0);
    const LlamaHparams & hp = *hp_;
    const LlamaLayer & L = *L_;
    const int64_t n = n_, E = hp.n_embd, Q = hp.q_dim(), KV = hp.kv_dim(), F = hp.n_ff, HD = hp.head_dim, S = seq_len_;
    const bool gelu = hp.arch && hp.arch->act == Activation::GELU_TANH;
    auto dW = [&](LayerTensor r) { return dw ? dw[(int) r] : nullptr; };
    resize(s1_, n * E);                      // d(x1): the residual stream's gradient after attention
    resize(s2_, n * std::max(E, Q));         // the gradient of a norm's output / the attention output
    resize(s3_, n * std::max(F, E));         // d(h), then d(xn)
    resize(s4_, n * F);                      // d(g)
    resize(dq_, n * Q);
    resize(dk_, n * KV);
    resize(dv_, n * KV);
    T * dx1 = s1_.data(), * t2 = s2_.data(), * t3 = s3_.data(), * t4 = s4_.data();

    // ---- MLP: y = x1 + post(d0), d0 = Wdown·h, h = act(g)·u
    std::copy(dy, dy + n * E, dx1);
    const T * dd0 = dy;
    if (L.post_ffw_norm) {
        rms_bwd(d0_.data(), n, E, E, L.post_ffw_norm, hp.eps, dy, t2, false);
        dd0 = t2;
    }
    linear_bwd(LayerTensor::FFN_DOWN, h_.data(), F, E, dd0, t3, false, dW(LayerTensor::FFN_DOWN));  // t3 = dh
    for (int64_t i = 0; i < n * F; ++i) {
        const T dh = t3[i];
        t4[i] = dh * u_[i] * act_grad(g_[i], gelu);  // dg
        t3[i] = dh * act_fwd(g_[i], gelu);           // du
    }
    // dxn2 = dg·Wgate + du·Wup, into t2
    linear_bwd(LayerTensor::FFN_GATE, xn2_.data(), E, F, t4, t2, false, dW(LayerTensor::FFN_GATE));
    linear_bwd(LayerTensor::FFN_UP, xn2_.data(), E, F, t3, t2, true, dW(LayerTensor::FFN_UP));
    rms_bwd(x1_.data(), n, E, E, L.ffn_norm, hp.eps, t2, dx1, true);

    // ---- attention: x1 = x + post(o0), o0 = Wo·a
    const T * do0 = dx1;
    if (L.post_attn_norm) {
        rms_bwd(o0_.data(), n, E, E, L.post_attn_norm, hp.eps, dx1, t3, false);
        do0 = t3;
    }
    linear_bwd(LayerTensor::ATTN_OUT, a_.data(), Q, E, do0, t2, false, dW(LayerTensor::ATTN_OUT));  // t2 = da
    attention_bwd(t2, dq_.data(), dk_.data(), dv_.data());
    for (int64_t t = 0; t < n; ++t) {
        rope_row(dq_.data() + t * Q, hp.n_head, hp, L, t % S, -1);
        rope_row(dk_.data() + t * KV, hp.n_head_kv, hp, L, t % S, -1);
    }
    if (L.q_norm) {
        rms_bwd(q0_.data(), n, Q, HD, L.q_norm, hp.eps, dq_.data(), t2, false);
        std::copy(t2, t2 + n * Q, dq_.data());
    }
    if (L.k_norm) {
        rms_bwd(k0_.data(), n, KV, HD, L.k_norm, hp.eps, dk_.data(), t2, false);
        std::copy(t2, t2 + n * KV, dk_.data());
    }
    // dxn1 = dq·Wq + dk·Wk + dv·Wv, into t3
    linear_bwd(LayerTensor::ATTN_Q, xn1_.data(), E, Q, dq_.data(), t3, false, dW(LayerTensor::ATTN_Q));
    linear_bwd(LayerTensor::ATTN_K, xn1_.data(), E, KV, dk_.data(), t3, true, dW(LayerTensor::ATTN_K));
    linear_bwd(LayerTensor::ATTN_V, xn1_.data(), E, KV, dv_.data(), t3, true, dW(LayerTensor::ATTN_V));
    rms_bwd(x_.data(), n, E, E, L.attn_norm, hp.eps, t3, dx1, true);
    if (dx) std::copy(dx1, dx1 + n * E, dx);
}

template class BlockTape<float>;
template class BlockTape<double>;

}  // namespace quill
