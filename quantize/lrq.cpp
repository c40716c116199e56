#include "quantize/lrq.h"

#include "ggml-lite/common.h"
#include "ggml-lite/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>

namespace quill {

namespace {

// dst (cols × rows) = srcᵀ
void transpose(const float * src, int64_t rows, int64_t cols, float * dst) {
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 18))
    for (int64_t i0 = 0; i0 < rows; i0 += 32) {
        for (int64_t j0 = 0; j0 < cols; j0 += 32) {
            for (int64_t i = i0; i < std::min(rows, i0 + 32); ++i)
                for (int64_t j = j0; j < std::min(cols, j0 + 32); ++j) dst[j * rows + i] = src[i * cols + j];
        }
    }
}

template <class T> void grow(std::vector<T> & v, int64_t n) {
    if ((int64_t) v.size() < n) v.resize((size_t) n);
}

// The fp16 scale a row deploys with (gl_intq_fit's rules: clamped to fp16's largest finite value; 0 when it
// underflows).
uint16_t scale_fp16(float s) {
    uint16_t h = gl_fp32_to_fp16(s);
    if ((h & 0x7fff) >= 0x7c00) h = 0x7bff;
    return h;
}

// |e|^2.4 from e² (the grid search's error norm): (e²)^1.2 through log2/exp2 polynomials on the float's bits, about
// 1e-5 relative, and deterministic (the search compares sums of it; pow() took most of a stories4M block's time).
inline float pow12(float x) {
    if (!(x > 0.0f)) return 0.0f;
    uint32_t b;
    memcpy(&b, &x, 4);
    int ex = (int) (b >> 23) - 127;
    b = (b & 0x007FFFFFu) | 0x3F800000u;
    float m;
    memcpy(&m, &b, 4);  // [1, 2), then [√½, √2)
    if (m > 1.41421356f) {
        m *= 0.5f;
        ++ex;
    }
    const float s = (m - 1.0f) / (m + 1.0f), s2 = s * s;  // log2 m = 2/ln2 · atanh(s), |s| <= 0.172
    const float l = 2.8853901f * s * (1.0f + s2 * (0.33333333f + s2 * (0.2f + s2 * 0.14285714f)));
    const float e = (float) ex;
    float y = 1.2f * (e + l);
    const float fi = floorf(y), f = y - fi;  // 2^f, f in [0, 1)
    const float p = 1.0f + f * (0.69314718f + f * (0.24022651f + f * (0.05550411f + f * (0.00961813f + f * (0.00133336f + f * (0.00015404f + f * 0.0000152f))))));
    const int ei = (int) fi;
    if (ei < -126) return 0.0f;
    if (ei > 127) return INFINITY;
    const uint32_t sb = (uint32_t) (ei + 127) << 23;
    float sc;
    memcpy(&sc, &sb, 4);
    return p * sc;
}

}  // namespace

int64_t lrq_default_rank(int64_t rows, int64_t cols) { return std::max<int64_t>(1, std::min(rows, cols) / 4); }

void lrq_row_grid(const float * w, int64_t n, int bits, bool search, float * s0, int * z) {
    const int maxq = (1 << bits) - 1;
    float xmin = 0.0f, xmax = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        xmin = std::min(xmin, w[i]);
        xmax = std::max(xmax, w[i]);
    }
    const float range = xmax - xmin;
    if (!(range > 0.0f)) {  // an all-zero row: any positive step decodes it exactly
        *s0 = 1e-8f;
        *z = 0;
        return;
    }
    float best_s = range / (float) maxq;
    int   best_z = std::clamp((int) nearbyintf(-xmin / best_s), 0, maxq);
    if (search) {
        // Every (width, zero) candidate; the sums stop once past the best so far, so the likeliest candidates go first:
        // widths from the full range down, zero points outward from the unclipped grid's.
        const int zc = std::clamp((int) nearbyintf(-xmin / range * (float) maxq), 0, maxq);
        double best_err = INFINITY;
        for (int i = 100; i >= 1; --i) {
            const float step = range * (float) i / 100.0f / (float) maxq;
            const float inv = 1.0f / step;
            for (int o = 0; o <= 2 * maxq; ++o) {
                const int zp = o % 2 ? zc - (o + 1) / 2 : zc + o / 2;
                if (zp < 0 || zp > maxq) continue;
                const float lo = -(float) zp, hi = (float) (maxq - zp);
                double err = 0.0;
                for (int64_t j0 = 0; j0 < n && err < best_err; j0 += 16) {
                    float part = 0.0f;
                    for (int64_t j = j0; j < std::min(n, j0 + 16); ++j) {
                        // round half to even by the 1.5·2^23 trick (|w/step| < 2^22 here), clamped to the grid
                        const float r = (w[j] * inv + 12582912.0f) - 12582912.0f;
                        const float e = w[j] - step * std::min(std::max(r, lo), hi);
                        part += pow12(e * e);
                    }
                    err += part;
                }
                if (err < best_err) {
                    best_err = err;
                    best_s = step;
                    best_z = zp;
                }
            }
        }
    }
    *s0 = std::max(best_s, 1e-8f);
    *z = best_z;
}

// ---- one linear -------------------------------------------------------------------------------------------------

void LrqLinear::init(const float * W, int64_t rows, int64_t cols, const LrqParams & p, uint32_t seed) {
    GL_ASSERT(rows > 0 && cols > 0 && p.bits >= 2 && p.bits <= 8);
    R_ = rows;
    C_ = cols;
    bits_ = p.bits;
    W_ = W;
    r_ = p.rank < 0 ? lrq_default_rank(rows, cols) : std::min<int64_t>(p.rank, std::min(rows, cols));
    const bool search = p.clip_search < 0 ? p.bits <= 4 : p.clip_search != 0;
    const int64_t n = r_ == 0 ? 2 * R_ + R_ * C_ : 2 * R_ + C_ + r_ * (R_ + C_);
    p_.assign((size_t) n, 0.0f);
    g_.assign((size_t) n, 0.0f);
    m_.assign((size_t) n, 0.0f);
    v_.assign((size_t) n, 0.0f);
    z_.resize((size_t) R_);
    std::vector<float> s0((size_t) R_);
#pragma omp parallel for schedule(dynamic)
    for (int64_t i = 0; i < R_; ++i) lrq_row_grid(W + i * C_, C_, bits_, search, &s0[(size_t) i], &z_[(size_t) i]);
    for (int64_t i = 0; i < R_; ++i) p_[(size_t) i] = logf(s0[(size_t) i]);
    if (r_ > 0) {  // U: Kaiming-uniform(a = √5) = U(−1/√C, 1/√C)
        std::mt19937 rng(seed);
        const float b = 1.0f / sqrtf((float) C_);
        std::uniform_real_distribution<float> u(-b, b);
        float * U = p_.data() + 2 * R_ + C_ + R_ * r_;
        for (int64_t i = 0; i < r_ * C_; ++i) U[i] = u(rng);
    }
    grow(A_, R_ * C_);
    grow(Zq_, R_ * C_);
    grow(dA_, R_ * C_);
    pass_.resize((size_t) (R_ * C_));
}

int64_t LrqLinear::n_params() const { return (int64_t) p_.size(); }

void LrqLinear::build_A(float * A) const {
    const float * rv = p_.data() + R_;
    if (r_ == 0) {
        const float * D = p_.data() + 2 * R_;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < R_; ++i)
            for (int64_t j = 0; j < C_; ++j) A[i * C_ + j] = D[i * C_ + j] + rv[i];
        return;
    }
    const float * cv = p_.data() + 2 * R_, * L = cv + C_, * U = L + R_ * r_;
    grow(t1_, C_ * r_);
    transpose(U, r_, C_, t1_.data());
    gl_gemm_nt_f32(R_, C_, r_, L, r_, t1_.data(), r_, A, C_, false);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < R_; ++i)
        for (int64_t j = 0; j < C_; ++j) A[i * C_ + j] += rv[i] + cv[j];
}

void LrqLinear::dequant(float * What) {
    build_A(A_.data());
    const int maxq = (1 << bits_) - 1;
    const float * a = p_.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < R_; ++i) {
        const float s1 = expf(a[i]);
        const int z = z_[(size_t) i];
        for (int64_t j = 0; j < C_; ++j) {
            const size_t k = (size_t) (i * C_ + j);
            const float zq = W_[k] / expf(a[i] + A_[k]);
            const float q = nearbyintf(zq);
            const bool in = q >= (float) -z && q <= (float) (maxq - z);
            Zq_[k] = zq;
            pass_[k] = in;
            What[k] = s1 * std::clamp(q, (float) -z, (float) (maxq - z));
        }
    }
}

void LrqLinear::grad(const float * G) {
    const int maxq = (1 << bits_) - 1;
    float * ga = g_.data(), * grv = ga + R_;
    const float * a = p_.data();
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < R_; ++i) {
        const float s1 = expf(a[i]);
        const int z = z_[(size_t) i];
        double sa = 0.0, sr = 0.0;
        for (int64_t j = 0; j < C_; ++j) {
            const size_t k = (size_t) (i * C_ + j);
            const float q = std::clamp(nearbyintf(Zq_[k]), (float) -z, (float) (maxq - z));
            const float dz = pass_[k] ? G[k] * s1 : 0.0f;
            const float da = -dz * Zq_[k];
            dA_[k] = da;
            sa += (double) G[k] * q * s1 + da;
            sr += da;
        }
        ga[i] += (float) sa;
        grv[i] += (float) sr;
    }
    if (r_ == 0) {
        float * gD = g_.data() + 2 * R_;
        for (int64_t k = 0; k < R_ * C_; ++k) gD[k] += dA_[k];
        return;
    }
    float * gcv = g_.data() + 2 * R_, * gL = gcv + C_, * gU = gL + R_ * r_;
    const float * L = p_.data() + 2 * R_ + C_, * U = L + R_ * r_;
    for (int64_t i = 0; i < R_; ++i)  // column sums in a fixed order
        for (int64_t j = 0; j < C_; ++j) gcv[j] += dA_[(size_t) (i * C_ + j)];
    // gL += dA·Uᵀ (R × r): rows of dA against rows of U
    gl_gemm_nt_f32(R_, r_, C_, dA_.data(), C_, U, C_, gL, r_, true);
    // gU += Lᵀ·dA (r × C): rows of Lᵀ against rows of dAᵀ
    grow(t2_, r_ * R_);
    grow(t3_, C_ * R_);
    transpose(L, R_, r_, t2_.data());
    transpose(dA_.data(), R_, C_, t3_.data());
    gl_gemm_nt_f32(r_, C_, R_, t2_.data(), R_, t3_.data(), R_, gU, C_, true);
}

void LrqLinear::step(float lr, int t) {
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const float c1 = 1.0f - powf(b1, (float) t), c2 = 1.0f - powf(b2, (float) t);
    const int64_t n = (int64_t) p_.size();
#pragma omp parallel for schedule(static)
    for (int64_t k = 0; k < n; ++k) {
        const float g = g_[(size_t) k];
        m_[(size_t) k] = b1 * m_[(size_t) k] + (1.0f - b1) * g;
        v_[(size_t) k] = b2 * v_[(size_t) k] + (1.0f - b2) * g * g;
        p_[(size_t) k] -= lr * (m_[(size_t) k] / c1) / (sqrtf(v_[(size_t) k] / c2) + eps);
        g_[(size_t) k] = 0.0f;
    }
}

void LrqLinear::finish(IntQuantLayer * out, float * What) const {
    std::vector<float> A((size_t) (R_ * C_));
    build_A(A.data());
    const int maxq = (1 << bits_) - 1;
    out->rows = R_;
    out->cols = C_;
    out->bits = bits_;
    out->group = (int) C_;
    out->codes.resize((size_t) (R_ * C_));
    out->grids.assign((size_t) R_, gl_intq_params());
    const float * a = p_.data();
    for (int64_t i = 0; i < R_; ++i) {
        gl_intq_params & g = out->grids[(size_t) i];
        g.d16 = scale_fp16(expf(a[i]));
        g.d = gl_fp16_to_fp32(g.d16);
        g.z = (uint8_t) z_[(size_t) i];
        for (int64_t j = 0; j < C_; ++j) {
            const size_t k = (size_t) (i * C_ + j);
            const float q = std::clamp(nearbyintf(W_[k] / expf(a[i] + A[k])) + (float) g.z, 0.0f, (float) maxq);
            out->codes[k] = (uint8_t) q;
            What[k] = gl_intq_value((int) q, g);
        }
    }
}

// ---- the block --------------------------------------------------------------------------------------------------

static const LayerTensor k_linear_roles[] = {LayerTensor::ATTN_Q,   LayerTensor::ATTN_K, LayerTensor::ATTN_V,  LayerTensor::ATTN_OUT,
                                             LayerTensor::FFN_GATE, LayerTensor::FFN_UP, LayerTensor::FFN_DOWN};

double lrq_block_loss(const LlamaHparams & hp, const BlockWeightsF32 & bw, const float * q_in, const float * target, int64_t n_seq,
                      int64_t seq_len) {
    const int64_t E = hp.n_embd, per = seq_len * E;
    const LlamaLayer L = bw.layer();
    std::vector<float> y((size_t) per);
    double s = 0.0;
    for (int64_t sq = 0; sq < n_seq; ++sq) {
        std::copy(q_in + sq * per, q_in + (sq + 1) * per, y.data());
        block_forward(hp, L, y.data(), 1, seq_len, BlockRecorder(), true);
        for (int64_t i = 0; i < per; ++i) {
            const double d = (double) y[(size_t) i] - (double) target[sq * per + i];
            s += d * d;
        }
    }
    return s / (double) (n_seq * E);
}

LrqBlockStats lrq_quantize_block(const LlamaHparams & hp, BlockWeightsF32 & bw, const float * q_in, const float * target, int64_t n_seq,
                                 int64_t seq_len, const LrqParams & p, IntQuantLayer out[(int) LayerTensor::COUNT]) {
    GL_ASSERT(n_seq > 0 && seq_len > 0 && p.iters >= 0 && p.batch > 0);
    const int64_t E = hp.n_embd, per = seq_len * E, B = std::min<int64_t>(p.batch, n_seq);
    constexpr int NR = (int) LayerTensor::COUNT;
    // the float weights stay as the quantizers' source; Ŵ lives beside them
    std::vector<float> Wf[NR], What[NR], G[NR];
    LrqLinear lin[NR];
    const float * wp[NR] = {};
    float * gp[NR] = {};
    uint32_t seed = p.seed * 7919u + 17u;
    for (LayerTensor role : k_linear_roles) {
        const int r = (int) role;
        const gl_tensor * t = bw.base.linear(role);
        Wf[r] = bw.of(role);
        What[r].resize(Wf[r].size());
        G[r].resize(Wf[r].size());
        lin[r].init(Wf[r].data(), t->ne1, t->ne0, p, seed++);
        wp[r] = What[r].data();
        gp[r] = G[r].data();
    }

    LrqBlockStats st;
    for (LayerTensor role : k_linear_roles) lin[(int) role].dequant(bw.of(role).data());
    st.loss_init = lrq_block_loss(hp, bw, q_in, target, n_seq, seq_len);

    BlockTape<float> tape;
    std::vector<float> xb((size_t) (B * per)), tb((size_t) (B * per)), y((size_t) (B * per));
    std::vector<int64_t> order((size_t) n_seq);
    std::iota(order.begin(), order.end(), 0);
    std::mt19937 rng(p.seed);
    size_t next = order.size();
    st.curve.reserve((size_t) p.iters);
    for (int it = 1; it <= p.iters; ++it) {
        for (int64_t b = 0; b < B; ++b) {
            if (next == order.size()) {
                std::shuffle(order.begin(), order.end(), rng);
                next = 0;
            }
            const int64_t sq = order[next++];
            std::copy(q_in + sq * per, q_in + (sq + 1) * per, xb.data() + b * per);
            std::copy(target + sq * per, target + (sq + 1) * per, tb.data() + b * per);
        }
        for (LayerTensor role : k_linear_roles) lin[(int) role].dequant(What[(int) role].data());
        tape.forward(hp, bw.base, wp, xb.data(), B, seq_len, y.data());
        double loss = 0.0;
        const float k = 2.0f / (float) (B * E);
        for (int64_t i = 0; i < B * per; ++i) {
            const float d = y[(size_t) i] - tb[(size_t) i];
            loss += (double) d * d;
            y[(size_t) i] = k * d;  // dLoss/dy
        }
        st.curve.push_back(loss / (double) (B * E));
        tape.backward(y.data(), nullptr, gp);
        const float lr = 0.5f * p.lr * (1.0f + cosf((float) M_PI * (float) (it - 1) / (float) p.iters));
        for (LayerTensor role : k_linear_roles) {
            lin[(int) role].grad(G[(int) role].data());
            lin[(int) role].step(lr, it);
        }
    }
    for (LayerTensor role : k_linear_roles) lin[(int) role].finish(&out[(int) role], bw.of(role).data());
    st.loss_final = lrq_block_loss(hp, bw, q_in, target, n_seq, seq_len);
    return st;
}

}  // namespace quill
