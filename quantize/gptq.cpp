#include "quantize/gptq.h"

#include "ggml-lite/common.h"
#include "ggml-lite/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

namespace quill {

// The vector kernels (axpy, dot, the Cholesky's row tiles) are ggml-lite ops (ops.h), dispatched by CPU level.

// ---- Cholesky and the triangular inverse, in double ---------------------------------------------------------------

// In place: the lower triangle of A (n × n, row-major; the upper triangle is ignored) becomes L with A = L·Lᵀ.
// Blocked right-looking: factor a 64-column panel, then update the trailing matrix with its products.
// Returns false when A is not (numerically) positive definite.
static bool cholesky_lower(double * A, int64_t n) {
    const int64_t NB = 64;
    for (int64_t k0 = 0; k0 < n; k0 += NB) {
        const int64_t kb = std::min(NB, n - k0);
        // The diagonal block.
        for (int64_t j = k0; j < k0 + kb; ++j) {
            double * Aj = A + j * n;
            const double s = Aj[j] - gl_dot_f64(j - k0, Aj + k0, Aj + k0);
            if (!(s > 0.0) || !std::isfinite(s)) return false;
            Aj[j] = sqrt(s);
            for (int64_t i = j + 1; i < k0 + kb; ++i) {
                double * Ai = A + i * n;
                Ai[j] = (Ai[j] - gl_dot_f64(j - k0, Ai + k0, Aj + k0)) / Aj[j];
            }
        }
        // The panel below it.
#pragma omp parallel for schedule(static) if ((n - k0 - kb) * kb * kb >= (1 << 16))
        for (int64_t i = k0 + kb; i < n; ++i) {
            double * Ai = A + i * n;
            for (int64_t j = k0; j < k0 + kb; ++j) Ai[j] = (Ai[j] - gl_dot_f64(j - k0, Ai + k0, A + j * n + k0)) / A[j * n + j];
        }
        // The trailing matrix.
        const int64_t r0 = k0 + kb;
        const int64_t n_tiles = (n - r0 + 3) / 4;
#pragma omp parallel for schedule(dynamic, 4) if ((n - r0) * (n - r0) * kb >= (1 << 18))
        for (int64_t t = 0; t < n_tiles; ++t) gl_syrk_tile_f64(A, n, r0 + 4 * t, r0, k0, kb);
    }
    return true;
}

// U (n × n floats, zero below the diagonal) = P·L⁻¹·P with P the reversal: row r of L⁻¹ solves Lᵀ·y = e_r by
// back substitution, 16 right-hand sides at a time so each row of L is read once per batch.
static void reversed_inverse(const double * L, int64_t n, float * U) {
    const int64_t RB = 16;
    const int64_t n_batches = (n + RB - 1) / RB;
    std::fill(U, U + n * n, 0.0f);
#pragma omp parallel for schedule(dynamic) if (n >= 128)
    for (int64_t bt = 0; bt < n_batches; ++bt) {
        const int64_t r0 = bt * RB, rb = std::min(RB, n - r0), rmax = r0 + rb - 1;
        std::vector<double> Y((size_t) (rb * (rmax + 1)), 0.0);
        for (int64_t l = rmax; l >= 0; --l) {
            const double * Ll = L + l * n;
            for (int64_t b = 0; b < rb; ++b) {
                const int64_t r = r0 + b;
                if (l > r) continue;
                double * y = &Y[(size_t) (b * (rmax + 1))];
                const double v = ((l == r ? 1.0 : 0.0) - y[l]) / Ll[l];
                y[l] = v;
                if (v != 0.0) gl_axpy_f64(l, v, Ll, y);
            }
        }
        for (int64_t b = 0; b < rb; ++b) {
            const int64_t r = r0 + b, i = n - 1 - r;
            const double * y = &Y[(size_t) (b * (rmax + 1))];
            float * Ui = U + i * n;
            for (int64_t j = i; j < n; ++j) Ui[j] = (float) y[n - 1 - j];
        }
    }
}

HinvFactor gptq_hinv_factor(const float * H, int64_t n, double damp, const int64_t * perm) {
    HinvFactor f;
    f.n = n;
    f.dead.assign((size_t) n, 0);
    auto P = [&](int64_t i) { return perm ? perm[i] : i; };
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) {
        const float d = H[P(i) * n + P(i)];
        if (d == 0.0f) f.dead[(size_t) i] = 1;
        mean += d == 0.0f ? 1.0 : (double) d;
        if (!std::isfinite(d) || d < 0.0f) throw_error("gptq: the Hessian has an invalid diagonal entry %g", (double) d);
    }
    mean /= (double) n;
    f.damp = damp * mean;
    std::vector<double> A((size_t) (n * n));
    for (int attempt = 0;; ++attempt) {
        // A = reverse(H): A[i][j] = H[P(n-1-i)][P(n-1-j)], with the dead and damping fixes on the diagonal.
#pragma omp parallel for schedule(static) if (n >= 256)
        for (int64_t i = 0; i < n; ++i) {
            const int64_t pi = P(n - 1 - i);
            double * Ai = &A[(size_t) (i * n)];
            for (int64_t j = 0; j <= i; ++j) Ai[j] = (double) H[pi * n + P(n - 1 - j)];
            if (f.dead[(size_t) (n - 1 - i)]) {
                for (int64_t j = 0; j < i; ++j) Ai[j] = 0.0;
                Ai[i] = 1.0;
            }
            Ai[i] += f.damp;
        }
        // Dead columns: their rows too (H is symmetric; GPTQ zeroes the weights, which has the same effect).
        for (int64_t i = 0; i < n; ++i) {
            if (!f.dead[(size_t) (n - 1 - i)]) continue;
            for (int64_t r = i + 1; r < n; ++r) A[(size_t) (r * n + i)] = 0.0;
        }
        if (cholesky_lower(A.data(), n)) break;
        if (attempt == 4) throw_error("gptq: the Hessian (%lld x %lld) is not positive definite even with damping %g", (long long) n, (long long) n, f.damp);
        f.damp *= 10.0;
        f.retries++;
    }
    f.U.resize((size_t) (n * n));
    reversed_inverse(A.data(), n, f.U.data());
    return f;
}

// ---- the GPTQ loop ------------------------------------------------------------------------------------------------

void gptq_quantize(float * W, int64_t rows, int64_t cols, const float * H, const GptqParams & p, IntQuantLayer * out, GptqStats * stats) {
    GL_ASSERT(p.bits >= 2 && p.bits <= 8 && p.group > 0 && rows > 0 && cols > 0);
    const int64_t C = cols, R = rows, g = p.group;
    const int64_t B = std::max<int64_t>(g, (std::max<int64_t>(p.block, 1) + g - 1) / g * g);  // a multiple of g

    std::vector<int64_t> perm((size_t) C);
    std::iota(perm.begin(), perm.end(), 0);
    if (p.act_order)
        std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) { return H[a * C + a] > H[b * C + b]; });
    const HinvFactor f = gptq_hinv_factor(H, C, p.damp, perm.data());
    const float * U = f.U.data();
    for (int64_t j = 0; j < C; ++j) {
        if (!f.dead[(size_t) j]) continue;
        for (int64_t r = 0; r < R; ++r) W[r * C + perm[(size_t) j]] = 0.0f;
    }

    out->rows = R;
    out->cols = C;
    out->bits = p.bits;
    out->group = (int) g;
    const int64_t ng = out->n_groups();
    out->codes.assign((size_t) (R * C), 0);
    out->grids.assign((size_t) (R * ng), gl_intq_params());
    if (p.act_order) {
        // Static groups: every grid fitted on the original weights, in the original column order.
        for (int64_t r = 0; r < R; ++r)
            for (int64_t gi = 0; gi < ng; ++gi)
                out->grids[(size_t) (r * ng + gi)] = gl_intq_fit(W + r * C + gi * g, std::min(g, C - gi * g), p.bits);
    }

    const int64_t RC = 16;  // rows per task: U's rows are reused across them in the lazy update
    const int64_t n_chunks = (R + RC - 1) / RC;
    double loss = 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : loss) if (R * C * C >= (1 << 22))
    for (int64_t ch = 0; ch < n_chunks; ++ch) {
        const int64_t r0 = ch * RC, rc = std::min(RC, R - r0);
        std::vector<float> Wp((size_t) (rc * C)), E((size_t) (rc * B));
        for (int64_t r = 0; r < rc; ++r)
            for (int64_t j = 0; j < C; ++j) Wp[(size_t) (r * C + j)] = W[(r0 + r) * C + perm[(size_t) j]];
        for (int64_t i1 = 0; i1 < C; i1 += B) {
            const int64_t i2 = std::min(C, i1 + B);
            for (int64_t j = i1; j < i2; ++j) {
                const int64_t oc = perm[(size_t) j];
                const float d = U[j * C + j];
                for (int64_t r = 0; r < rc; ++r) {
                    float * w = &Wp[(size_t) (r * C)];
                    gl_intq_params & grid = out->grids[(size_t) ((r0 + r) * ng + oc / g)];
                    if (!p.act_order && oc % g == 0) grid = gl_intq_fit(w + j, std::min(g, C - j), p.bits);  // j == oc here
                    const int q = gl_intq_code(w[j], grid, p.bits);
                    const float qv = gl_intq_value(q, grid);
                    out->codes[(size_t) ((r0 + r) * C + oc)] = (uint8_t) q;
                    const float err = (w[j] - qv) / d;
                    loss += 0.5 * (double) err * (double) err;
                    w[j] = qv;
                    if (j + 1 < i2) gl_axpy_f32(i2 - j - 1, -err, U + j * C + j + 1, w + j + 1);
                    E[(size_t) (r * B + (j - i1))] = err;
                }
            }
            if (i2 < C) {
                for (int64_t k = 0; k < i2 - i1; ++k) {
                    const float * Uk = U + (i1 + k) * C + i2;
                    for (int64_t r = 0; r < rc; ++r) gl_axpy_f32(C - i2, -E[(size_t) (r * B + k)], Uk, &Wp[(size_t) (r * C + i2)]);
                }
            }
        }
        for (int64_t r = 0; r < rc; ++r)
            for (int64_t j = 0; j < C; ++j) W[(r0 + r) * C + perm[(size_t) j]] = Wp[(size_t) (r * C + j)];
    }
    if (stats) {
        stats->loss = loss;
        stats->dead = std::count(f.dead.begin(), f.dead.end(), (uint8_t) 1);
        stats->damp = f.damp;
        stats->retries = f.retries;
    }
}

double hessian_weighted_error(const float * W, const float * Q, int64_t rows, int64_t cols, const float * H) {
    double total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t r = 0; r < rows; ++r) {
        std::vector<double> d((size_t) cols);
        for (int64_t c = 0; c < cols; ++c) d[(size_t) c] = (double) W[r * cols + c] - (double) Q[r * cols + c];
        double s = 0;
        for (int64_t i = 0; i < cols; ++i) {
            if (d[(size_t) i] == 0.0) continue;
            double hi = 0;
            for (int64_t j = 0; j < cols; ++j) hi += (double) H[i * cols + j] * d[(size_t) j];
            s += d[(size_t) i] * hi;
        }
        total += s;
    }
    return total;
}

}  // namespace quill
