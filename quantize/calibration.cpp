#include "quantize/calibration.h"

#include "formats/quill_file.h"
#include "ggml-lite/common.h"
#include "ggml-lite/ops.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

namespace quill {

CalibData load_calibration(const CalibParams & p, const Tokenizer & tok) {
    if (p.file.empty()) throw_error("calibration: no text file given (--calib FILE)");
    if (p.seq_len < 2 || p.seq_len > (1 << 20)) throw_error("calibration: invalid sequence length %lld", (long long) p.seq_len);
    if (p.n_tokens < 1 || p.n_tokens > ((int64_t) 1 << 32)) throw_error("calibration: invalid token count %lld", (long long) p.n_tokens);
    const std::string text = read_file_bounded(p.file, 1u << 30);
    CalibData c;
    c.file = p.file;
    c.text_xxh3 = quill_checksum(text.data(), text.size());
    c.seq_len = p.seq_len;
    c.n_seq = std::max<int64_t>(1, p.n_tokens / p.seq_len);
    const bool bos = tok.bos() >= 0;
    const int64_t per_seq = bos ? p.seq_len - 1 : p.seq_len;  // text tokens per sequence
    const int64_t need = c.n_seq * per_seq;

    // Tokenize a prefix (cut after a newline) large enough for `need` tokens; grow it until it is.
    std::vector<int32_t> toks;
    size_t len = std::min(text.size(), (size_t) need * 8 + 4096);
    for (;;) {
        size_t cut = len;
        if (cut < text.size()) {
            const size_t nl = text.rfind('\n', cut);
            if (nl != std::string::npos && nl > cut / 2) cut = nl + 1;
        }
        toks = tok.encode(text.substr(0, cut), false);
        if ((int64_t) toks.size() >= need || cut >= text.size()) break;
        len = std::min(text.size(), len * 2);
    }
    if ((int64_t) toks.size() < need)
        throw_error("calibration: '%s' has %zu tokens, fewer than the %lld needed for %lld sequences of %lld (lower --calib-tokens or --seq-len)",
                    p.file.c_str(), toks.size(), (long long) need, (long long) c.n_seq, (long long) p.seq_len);
    c.tokens.reserve((size_t) c.n_tokens());
    for (int64_t s = 0; s < c.n_seq; ++s) {
        if (bos) c.tokens.push_back(tok.bos());
        c.tokens.insert(c.tokens.end(), toks.begin() + s * per_seq, toks.begin() + (s + 1) * per_seq);
    }
    GL_ASSERT((int64_t) c.tokens.size() == c.n_tokens());
    return c;
}

// ---- Hessians ---------------------------------------------------------------------------------------------------

void Hessian::init(int64_t dim) {
    dim_ = dim;
    h_.assign((size_t) (dim * dim), 0.0f);
}

// H[i][j] += Σ_t x[t][i]·x[t][j] for j >= i: the transposed sequence times itself, one band of 64 rows at a time
// starting at the diagonal (half the products of a full square).
void Hessian::add(const float * x, int64_t n_tok) {
    const int64_t D = dim_;
    xt_.resize((size_t) (D * n_tok));
    for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t i = 0; i < D; ++i) xt_[(size_t) (i * n_tok + t)] = x[t * D + i];
    const int64_t band = 64;
    for (int64_t i0 = 0; i0 < D; i0 += band) {
        const int64_t mb = std::min(band, D - i0);
        gl_gemm_nt_f32(mb, D - i0, n_tok, &xt_[(size_t) (i0 * n_tok)], n_tok, &xt_[(size_t) (i0 * n_tok)], n_tok, &h_[(size_t) (i0 * D + i0)], D, true);
    }
}

void Hessian::finish(int64_t n_seq) {
    const int64_t D = dim_;
    const float s = 2.0f / (float) n_seq;
    for (int64_t i = 0; i < D; ++i) {
        for (int64_t j = i; j < D; ++j) {
            const float v = h_[(size_t) (i * D + j)] * s;
            h_[(size_t) (i * D + j)] = v;
            h_[(size_t) (j * D + i)] = v;
        }
    }
    std::vector<float>().swap(xt_);
}

size_t BlockHessians::bytes() const {
    size_t b = 0;
    for (const Hessian & x : h) b += x.bytes();
    return b;
}

void ActGridStats::init(int64_t dim, int64_t n_tok_total) {
    GL_ASSERT(dim > 0 && n_tok_total > 0);
    dim_ = dim;
    seen_ = 0;
    mn_ = mx_ = 0.0f;
    stride_ = std::max<int64_t>(1, n_tok_total * dim / ((int64_t) 1 << 20));
    sample_.clear();
}

void ActGridStats::add(const float * x, int64_t n_tok) {
    for (int64_t t = 0; t < n_tok; ++t, ++seen_) {
        const float * row = x + t * dim_;
        for (int64_t i = 0; i < dim_; ++i) {
            if (!std::isfinite(row[i])) throw_error("calibration: a non-finite activation (%g) reached a linear layer", (double) row[i]);
            mn_ = std::min(mn_, row[i]);
            mx_ = std::max(mx_, row[i]);
        }
        if (seen_ % stride_ == 0) sample_.insert(sample_.end(), row, row + dim_);
    }
}

ActGrid ActGridStats::fit() const {
    ActGrid best;
    if (!(mx_ - mn_ > 0.0f)) return best;  // all zero: any grid with an integer zero point holds 0 exactly
    if (dim_ % gl_get_type_traits(GL_TYPE_A8_ROW)->block_size != 0) return best;  // no a8_row rows this wide: unused
    // the product's own activation quantizer (ops.h), on a weight that takes a8_row activations with this grid
    gl_tensor w = gl_tensor_make(GL_TYPE_Q8_ROW_A8, dim_, 1, nullptr);
    const size_t rb = gl_row_size(GL_TYPE_A8_ROW, dim_);
    std::vector<uint8_t> q(rb);
    std::vector<float> back((size_t) dim_);
    const int64_t rows = (int64_t) sample_.size() / dim_;
    double best_err = -1;
    for (int step = 0; step <= 25; ++step) {
        const float alpha = 1.0f - 0.02f * (float) step;
        const float lo = alpha * mn_, hi = alpha * mx_;
        const float s = (hi - lo) / 255.0f;
        if (!(s > 0.0f)) continue;
        const int32_t z = (int32_t) std::min(255.0f, std::max(0.0f, std::nearbyint(-lo / s))) - 128;
        double err = 0;
        for (int64_t r = 0; r < rows; ++r) {
            const float * x = &sample_[(size_t) (r * dim_)];
            w.act_s = s;
            w.act_z = z;
            gl_quantize_activations(w, x, 1, q.data());
            gl_get_type_traits(GL_TYPE_A8_ROW)->to_float(q.data(), back.data(), dim_);
            for (int64_t i = 0; i < dim_; ++i) err += ((double) back[(size_t) i] - x[i]) * ((double) back[(size_t) i] - x[i]);
        }
        if (best_err < 0 || err < best_err) {
            best_err = err;
            best.s = s;
            best.z = z;
            best.alpha = alpha;
        }
    }
    best.rmse = rows > 0 ? std::sqrt(best_err / (double) (rows * dim_)) : 0.0;
    return best;
}

void collect_block_hessians(const LlamaHparams & hp, const LlamaLayer & w, float * x, int64_t n_seq,
                            int64_t seq_len, BlockHessians & out) {
    for (int k = 0; k < (int) LinearInput::COUNT; ++k) out.h[k].init(linear_input_dim(hp, (LinearInput) k));
    block_forward(hp, w, x, n_seq, seq_len,
                  [&](LinearInput which, const float * xin, int64_t n_tok, int64_t dim) {
                      GL_ASSERT(dim == out[which].dim());
                      out[which].add(xin, n_tok);
                  },
                  false);
    for (Hessian & h : out.h) h.finish(n_seq);
}

}  // namespace quill
