// GPTVQ (../shared/docs/methods/GPTVQ.md §1.3–1.6): GPTQ's column loop d columns at a time, with a vector codebook per
// (row group × column group) in place of the uniform grid. See gptvq.h for the layer layout.
//
// Choices where the document leaves room, or where this file departs from the reference code:
//   - EM weighting: the coordinate t of a vector in column j is weighted by 1/U_jj² (U = upper Cholesky factor of the
//     damped H⁻¹), i.e. GPTQ's own error weight and the paper's 1/[H⁻¹]_jj, in the E- and the M-step, and for d = 1
//     too. The reference code uses U_jj for the EM and no weighting at all for d = 1 (GPTVQ.md §1.3); we use the
//     "theoretically motivated" variant. (For d = 1 the weight cannot change which centroid is nearest, only the
//     M-step's weighted means.) p.hessian_weighted = false gives plain k-means distances everywhere.
//   - The error feedback of a d-vector is GPTQ's column by column with the d quantized values fixed: coordinate t's
//     error e_t = (w_t − q_t)/U_tt also updates coordinates t+1.. of the same vector before their errors are taken.
//     The reference code takes every e_t from the values before the vector ("the intra-vector OBS coupling is ignored",
//     §1.4), which mis-compensates correlated neighbouring columns: on the tests' correlated Hessian, 2D 3-bit went
//     from 1.06× GPTQ int3 g128's error to 0.76× with this fix.
//   - With that feedback, quantizing w_F (F = the vector's columns) to q costs exactly Σ e_t² = ‖L⁻¹(w_F − q)‖², L =
//     U_FFᵀ (the d × d diagonal block of U, transposed). The column loop picks the centroid minimising that (the
//     paper's "full d-dim inverse sub-Hessian" lookup, which it found equal to the diagonal one; here it lowered the
//     error a further 5-30% for d = 2 and 4), computed as a plain nearest-centroid search after transforming the
//     vectors and the decoded codebook by L⁻¹. For d = 1 it is the 1/U_jj² weighting; the EM stays diagonal.
//   - Seeding: Mahalanobis (mean, d×d covariance + 1e-9·tr/d ridge, sort by distance, ranks
//     round(linspace(0, N−1, k))); with N < k the ranks repeat, i.e. the codebook is padded with duplicates, which the
//     EM leaves empty and unused (every vector already has an exact centroid).
//   - EM: E-step candidates come from a float kernel (eight vectors per step, centroid index packed into the low
//     mantissa bits of the distance, see ggml-lite/cpu/linalg_impl.h vq_nearest), and Hamerly's bounds skip the vectors that provably keep their
//     centroid (see em_fit); a vector moves to its candidate only when the candidate's weighted distance, recomputed in
//     double, is strictly smaller than its current one, and the M-step keeps a coordinate's old centroid when the new
//     weighted mean (rounded to float) is not better; so the objective never increases. An empty cluster is re-seeded
//     on the vector with the largest current weighted error (the next largest for the next empty one; vectors with zero
//     error are never used). The EM stops early once an E-step changes no assignment (every later round would be
//     identical).
//   - Lazy blocks end at every column-group boundary too, so a group's codebook is always fitted on columns that have
//     received every earlier update.
//   - Codebook fine-tune (§1.5): Adam on the float centroids c = s·int8 (so no scale factor in the gradient),
//     loss tr((Q − W0)·H·(Q − W0)ᵀ) with the original W0 and the undamped H, gradient 2·(Q − W0)·H scatter-added per
//     centroid; the GEMM is gl_gemm_nt_f32 (D·Hᵀ = D·H for a symmetric H). When a step's loss exceeds the initial loss
//     (or is NaN) the centroids and Adam's moments are restored, lr ×= 0.1 and the steps restart (at most
//     kMaxRestarts times, then the fine-tune gives up). The result is re-rounded to int8 with new fp16 scales and
//     kept only when its loss is not above the pre-fine-tune loss.
// Determinism: row groups are independent given U, so they are the unit of parallel work; every per-group result
// and every reduction is computed in a fixed order, independent of the number of threads.
#include "quantize/gptvq.h"

#include "ggml-lite/common.h"
#include "ggml-lite/types.h"
#include "ggml-lite/ops.h"
#include "quantize/gptq.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>

namespace quill {

float VqLayer::value(int64_t r, int64_t c) const {
    const int64_t g = group_of(r, c);
    const int m = idx[(size_t) (r * (cols / dim) + c / dim)];
    return gl_fp16_to_fp32(scales[(size_t) g]) * (float) codebooks[(size_t) ((g * k() + m) * dim + c % dim)];
}

// Index bits for k centroids: the smallest ib with 2^ib >= k.
static int index_bits(int k) {
    int ib = 0;
    while ((1 << ib) < k) ++ib;
    return ib;
}

// The kernel's table (k × (d + 1)) for the codebook c (k × d) under the weights w (d).
static void build_table(const float * c, int k, int d, const float * w, float * cA) {
    for (int m = 0; m < k; ++m) {
        float s = 0.0f;
        for (int t = 0; t < d; ++t) s += w[t] * c[m * d + t] * c[m * d + t];
        cA[m * (d + 1)] = s;
        for (int t = 0; t < d; ++t) cA[m * (d + 1) + 1 + t] = c[m * d + t];
    }
}

// ---- codebook fit: Mahalanobis seeding + Hessian-weighted EM --------------------------------------------------------

// Seeds k centroids (cent, k × d) from the n vectors X (n × d): sorted by Mahalanobis distance to their mean, the
// vectors at ranks round(linspace(0, n − 1, k)) (repeating ranks when n < k).
static void mahalanobis_seed(const float * X, int64_t n, int d, int k, float * cent) {
    double mu[4] = {0, 0, 0, 0}, S[16] = {0}, Si[16] = {0};
    for (int64_t i = 0; i < n; ++i)
        for (int t = 0; t < d; ++t) mu[t] += X[i * d + t];
    for (int t = 0; t < d; ++t) mu[t] /= (double) n;
    for (int64_t i = 0; i < n; ++i)
        for (int a = 0; a < d; ++a)
            for (int b = 0; b < d; ++b) S[a * d + b] += ((double) X[i * d + a] - mu[a]) * ((double) X[i * d + b] - mu[b]);
    double tr = 0;
    for (int t = 0; t < d; ++t) tr += S[t * d + t];
    std::vector<double> dist((size_t) n, 0.0);
    if (tr > 0 && std::isfinite(tr)) {
        // Si = (S + ridge·I)⁻¹ by Gauss-Jordan with partial pivoting (d <= 4); the ridge keeps a singular S (collinear
        // or repeated vectors) invertible.
        double A[4][8];
        for (int a = 0; a < d; ++a)
            for (int b = 0; b < 2 * d; ++b) A[a][b] = b < d ? S[a * d + b] + (a == b ? 1e-9 * tr / d : 0.0) : (b - d == a ? 1.0 : 0.0);
        bool ok = true;
        for (int c = 0; c < d && ok; ++c) {
            int piv = c;
            for (int a = c + 1; a < d; ++a)
                if (std::fabs(A[a][c]) > std::fabs(A[piv][c])) piv = a;
            if (!(std::fabs(A[piv][c]) > 0)) {
                ok = false;
                break;
            }
            if (piv != c)
                for (int b = 0; b < 2 * d; ++b) std::swap(A[c][b], A[piv][b]);
            const double inv = 1.0 / A[c][c];
            for (int b = 0; b < 2 * d; ++b) A[c][b] *= inv;
            for (int a = 0; a < d; ++a) {
                if (a == c || A[a][c] == 0.0) continue;
                const double f = A[a][c];
                for (int b = 0; b < 2 * d; ++b) A[a][b] -= f * A[c][b];
            }
        }
        if (ok) {
            for (int a = 0; a < d; ++a)
                for (int b = 0; b < d; ++b) Si[a * d + b] = A[a][d + b];
            for (int64_t i = 0; i < n; ++i) {
                double v[4], s = 0;
                for (int t = 0; t < d; ++t) v[t] = (double) X[i * d + t] - mu[t];
                for (int a = 0; a < d; ++a)
                    for (int b = 0; b < d; ++b) s += v[a] * Si[a * d + b] * v[b];
                dist[(size_t) i] = s;
            }
        }
    }
    std::vector<int64_t> order((size_t) n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return dist[(size_t) a] < dist[(size_t) b] || (dist[(size_t) a] == dist[(size_t) b] && a < b);
    });
    for (int m = 0; m < k; ++m) {
        const int64_t rank = k == 1 ? 0 : (int64_t) std::nearbyint((double) m * (double) (n - 1) / (double) (k - 1));
        const int64_t i = order[(size_t) std::min<int64_t>(std::max<int64_t>(rank, 0), n - 1)];
        for (int t = 0; t < d; ++t) cent[m * d + t] = X[i * d + t];
    }
}

// Fits k centroids (cent, k × d) to n_slots·per_slot vectors X (n × d), slot-major: vector i belongs to slot
// i / per_slot and has that slot's coordinate weights ws[slot·d ..] (all > 0). Appends the objective after the
// seeding's assignment and after every EM round to *trace when non-null.
//
// E-step with Hamerly's bounds, in each slot's weighted metric ‖v‖_s = (Σ_t w_st·v_t²)^½ (a norm, so the triangle
// inequality holds): lb[i] bounds from below the distance from vector i to every centroid but the nearest one found
// by its last search; after the M-step it drops by the largest distance any other centroid moved (in i's metric).
// A vector whose distance to its own centroid (exact, in double) is <= lb[i] cannot have a nearer centroid and skips
// the search. The kernel's second-smallest distance is float; it is lowered by a relative 1e-5 of the magnitudes
// involved, far above float rounding, before it becomes a bound.
static void em_fit(const float * X, int64_t n_slots, int64_t per_slot, const float * ws, int d, int k, int iters, float * cent,
                   std::vector<double> * trace) {
    const int64_t n = n_slots * per_slot;
    const int ib = index_bits(k);
    mahalanobis_seed(X, n, d, k, cent);

    std::vector<float> cA((size_t) (k * (d + 1))), old((size_t) (k * d)), xs((size_t) (per_slot * d)), sec((size_t) per_slot);
    std::vector<int32_t> a((size_t) n), cand((size_t) per_slot);
    std::vector<int64_t> sub((size_t) per_slot), cnt((size_t) k), pick;
    std::vector<double> dist((size_t) n), lb((size_t) n), sw((size_t) (k * d)), swx((size_t) (k * d));

    auto wdist = [d](const float * x, const float * c, const float * w) {
        double s = 0;
        for (int t = 0; t < d; ++t) {
            const double e = (double) x[t] - (double) c[t];
            s += (double) w[t] * e * e;
        }
        return s;
    };
    // The search of the ns vectors sub[] of slot s (weights w): the nearest candidate, the new bound, and the move
    // when the candidate is strictly nearer in double (always on the first search). Returns the number moved.
    auto search = [&](int64_t ns, const float * w, bool first) {
        build_table(cent, k, d, w, cA.data());
        for (int64_t q = 0; q < ns; ++q)
            for (int t = 0; t < d; ++t) xs[(size_t) (q * d + t)] = X[sub[(size_t) q] * d + t];
        gl_vq_nearest(d, ns, xs.data(), w, k, ib, cA.data(), cand.data(), sec.data());
        int64_t changed = 0;
        for (int64_t q = 0; q < ns; ++q) {
            const int64_t i = sub[(size_t) q];
            const int m = cand[(size_t) q];
            const float * x = &xs[(size_t) (q * d)];
            double xw2 = 0;
            for (int t = 0; t < d; ++t) xw2 += (double) w[t] * (double) x[t] * (double) x[t];
            const double s2 = (double) sec[(size_t) q];
            lb[(size_t) i] = std::isinf(s2) ? std::numeric_limits<double>::infinity() : std::sqrt(std::max(0.0, s2 - 1e-5 * (3.0 * xw2 + 2.0 * s2)));
            if (first) {
                a[(size_t) i] = m;
                dist[(size_t) i] = wdist(x, cent + m * d, w);
                ++changed;
            } else if (m != a[(size_t) i]) {
                const double dn = wdist(x, cent + m * d, w);
                if (dn < dist[(size_t) i]) {
                    a[(size_t) i] = m;
                    dist[(size_t) i] = dn;
                    ++changed;
                }
            }
        }
        return changed;
    };
    auto objective = [&]() {
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += dist[(size_t) i];
        return s;
    };

    for (int64_t s = 0; s < n_slots; ++s) {
        for (int64_t r = 0; r < per_slot; ++r) sub[(size_t) r] = s * per_slot + r;
        search(per_slot, ws + s * d, true);
    }
    if (trace) trace->push_back(objective());
    for (int it = 0; it < iters; ++it) {
        std::copy(cent, cent + k * d, old.begin());
        // M-step: per-coordinate weighted means; a coordinate keeps its old value when the (float-rounded) mean is not
        // better for the cluster: f(c) = Sw·c² − 2·Swx·c + const, f(cn) − f(co) = (cn − co)·(Sw·(cn + co) − 2·Swx).
        std::fill(sw.begin(), sw.end(), 0.0);
        std::fill(swx.begin(), swx.end(), 0.0);
        std::fill(cnt.begin(), cnt.end(), 0);
        for (int64_t s = 0; s < n_slots; ++s) {
            const float * w = ws + s * d;
            for (int64_t i = s * per_slot; i < (s + 1) * per_slot; ++i) {
                const int m = a[(size_t) i];
                cnt[(size_t) m]++;
                for (int t = 0; t < d; ++t) {
                    sw[(size_t) (m * d + t)] += (double) w[t];
                    swx[(size_t) (m * d + t)] += (double) w[t] * (double) X[i * d + t];
                }
            }
        }
        int n_empty = 0;
        for (int m = 0; m < k; ++m) {
            if (cnt[(size_t) m] == 0) {
                ++n_empty;
                continue;
            }
            for (int t = 0; t < d; ++t) {
                const double Sw = sw[(size_t) (m * d + t)], Swx = swx[(size_t) (m * d + t)];
                if (!(Sw > 0)) continue;
                const float cn = (float) (Swx / Sw), co = cent[m * d + t];
                if (cn != co && std::isfinite(cn) && ((double) cn - co) * (Sw * ((double) cn + co) - 2.0 * Swx) <= 0.0) cent[m * d + t] = cn;
            }
        }
        // Empty clusters: re-seeded on the vectors with the largest current weighted error (their assignment is
        // unchanged here, so the objective is too; the next E-step moves them).
        if (n_empty > 0) {
            pick.resize((size_t) n);
            std::iota(pick.begin(), pick.end(), 0);
            const int64_t ne = std::min<int64_t>(n_empty, n);
            auto worse = [&](int64_t x, int64_t y) {
                return dist[(size_t) x] > dist[(size_t) y] || (dist[(size_t) x] == dist[(size_t) y] && x < y);
            };
            std::partial_sort(pick.begin(), pick.begin() + ne, pick.end(), worse);
            int64_t next = 0;
            for (int m = 0; m < k && next < ne; ++m) {
                if (cnt[(size_t) m] != 0) continue;
                const int64_t i = pick[(size_t) next++];
                if (!(dist[(size_t) i] > 0)) break;
                for (int t = 0; t < d; ++t) cent[m * d + t] = X[i * d + t];
            }
        }
        // E-step, slot by slot: the distances to the (moved) own centroids, the bounds lowered by the two largest
        // centroid moves in the slot's metric, and a search for the vectors the bounds do not settle.
        int64_t changed = 0;
        for (int64_t s = 0; s < n_slots; ++s) {
            const float * w = ws + s * d;
            double d1 = 0, d2 = 0;  // squared, then the moves themselves (rounded up)
            int m1 = -1;
            for (int m = 0; m < k; ++m) {
                const double v = wdist(cent + m * d, &old[(size_t) (m * d)], w);
                if (v > d1) {
                    d2 = d1;
                    d1 = v;
                    m1 = m;
                } else if (v > d2) {
                    d2 = v;
                }
            }
            d1 = std::sqrt(d1) * (1.0 + 1e-9);
            d2 = std::sqrt(d2) * (1.0 + 1e-9);
            int64_t ns = 0;
            for (int64_t i = s * per_slot; i < (s + 1) * per_slot; ++i) {
                const int m = a[(size_t) i];
                const double di = wdist(X + i * d, cent + m * d, w);
                dist[(size_t) i] = di;
                const double l = lb[(size_t) i] - (m == m1 ? d2 : d1);
                lb[(size_t) i] = l;
                if (!(l >= 0.0 && di <= l * l)) sub[(size_t) ns++] = i;
            }
            if (ns > 0) changed += search(ns, w, false);
        }
        if (trace) trace->push_back(objective());
        if (changed == 0) break;  // the next M-step would reproduce these centroids: converged
    }
}

std::vector<double> gptvq_em_trace(const float * X, const float * w, int64_t n, int dim, int k, int iters, std::vector<float> * centroids) {
    if (dim != 1 && dim != 2 && dim != 4) throw_error("gptvq: dim must be 1, 2 or 4 (got %d)", dim);
    if (n <= 0 || k <= 0 || k > 256 || iters < 0) throw_error("gptvq: em_trace needs n > 0, 0 < k <= 256, iters >= 0");
    for (int64_t i = 0; i < n * dim; ++i)
        if (!(w[i] > 0)) throw_error("gptvq: em_trace weights must be positive");
    std::vector<float> cent((size_t) (k * dim));
    std::vector<double> trace;
    em_fit(X, n, 1, w, dim, k, iters, cent.data(), &trace);  // every vector its own slot: per-vector weights
    if (centroids) *centroids = cent;
    return trace;
}

// ---- int8 codebooks --------------------------------------------------------------------------------------------------

// s = max|c| / 127 rounded to fp16 (kept finite and nonzero; an all-zero codebook gets s = 0),
// q = clamp(round(c / s), −128, 127); dec = the decoded values fp16(s)·q, exactly what VqLayer::value returns.
static void quantize_codebook(const float * c, int n, int8_t * q, uint16_t * s16, float * dec) {
    float amax = 0.0f;
    for (int i = 0; i < n; ++i)
        if (std::isfinite(c[i])) amax = std::max(amax, std::fabs(c[i]));
    if (amax == 0.0f) {
        *s16 = 0;
        for (int i = 0; i < n; ++i) {
            q[i] = 0;
            dec[i] = 0.0f;
        }
        return;
    }
    uint16_t h = gl_fp32_to_fp16(amax / 127.0f);
    if ((h & 0x7FFF) >= 0x7C00) h = 0x7BFF;  // beyond fp16's range: the largest finite value
    if (gl_fp16_to_fp32(h) == 0.0f) h = 0x0001;  // underflow: the smallest subnormal
    *s16 = h;
    const float s = gl_fp16_to_fp32(h);
    for (int i = 0; i < n; ++i) {
        const float v = std::isfinite(c[i]) ? std::nearbyint(c[i] / s) : 0.0f;
        const int qi = (int) std::min(127.0f, std::max(-128.0f, v));
        q[i] = (int8_t) qi;
        dec[i] = s * (float) qi;
    }
}

// ---- the exact per-vector metric of the column loop ---------------------------------------------------------------

// Linv = L⁻¹ (d × d lower, double) for L = U_FFᵀ, U_FF the d × d diagonal block of U at columns F = j..j+d−1.
// With H⁻¹ restricted to the columns not yet quantized equal to U_restᵀ·U_rest, quantizing w_F to q costs
// ‖L⁻¹·(w_F − q)‖² (the sum of the coordinates' e_t², e solving L·e = w_F − q by forward substitution).
static void lower_inverse_of_ut(const float * U, int64_t C, int64_t j, int d, double Linv[4][4]) {
    double L[4][4] = {};
    for (int a = 0; a < d; ++a)
        for (int b = 0; b <= a; ++b) L[a][b] = U[(j + b) * C + j + a];
    for (int c = 0; c < d; ++c) {  // column c of L⁻¹: forward substitution of L·x = e_c
        for (int a = 0; a < d; ++a) {
            double v = a == c ? 1.0 : 0.0;
            for (int b = 0; b < a; ++b) v -= L[a][b] * Linv[b][c];
            Linv[a][c] = a < c ? 0.0 : v / L[a][a];
        }
    }
}

// y = Linv·x (d values).
static void apply_lower(const double Linv[4][4], int d, const float * x, float * y) {
    for (int a = 0; a < d; ++a) {
        double v = 0;
        for (int b = 0; b <= a; ++b) v += Linv[a][b] * (double) x[b];
        y[a] = (float) v;
    }
}

// ---- the layer -------------------------------------------------------------------------------------------------------

namespace {

constexpr int kMaxRestarts = 4;  // learning-rate cuts of the fine-tune before it gives up

struct Geometry {
    int64_t rows, cols, R, Cg, nrg, ncg, slots_per_row;
    int d, k;
    int64_t group(int64_t r, int64_t c) const { return (r / R) * ncg + c / Cg; }
};

// D = Q(cent) − W0, G = D·H, and the loss Σ D∘G (= tr(D·H·Dᵀ)); grad (n_groups·k·d), when non-null, receives
// dL/dc = Σ 2·G over every weight decoded from that centroid coordinate. Sums are in a fixed order.
double finetune_loss(const Geometry & g, const std::vector<float> & cent, const std::vector<uint8_t> & idx, const float * W0, const float * H,
                     std::vector<float> & D, std::vector<float> & G, std::vector<double> & row_loss, std::vector<double> * grad) {
    const int64_t rows = g.rows, cols = g.cols;
    const int d = g.d, k = g.k;
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 18))
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t s = 0; s < g.slots_per_row; ++s) {
            const int64_t c = s * d;
            const float * cv = &cent[(size_t) ((g.group(r, c) * k + idx[(size_t) (r * g.slots_per_row + s)]) * d)];
            for (int t = 0; t < d; ++t) D[(size_t) (r * cols + c + t)] = cv[t] - W0[r * cols + c + t];
        }
    }
    gl_gemm_nt_f32(rows, cols, cols, D.data(), cols, H, cols, G.data(), cols, false);
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 18))
    for (int64_t r = 0; r < rows; ++r) {
        double s = 0;
        for (int64_t c = 0; c < cols; ++c) s += (double) D[(size_t) (r * cols + c)] * (double) G[(size_t) (r * cols + c)];
        row_loss[(size_t) r] = s;
    }
    double loss = 0;
    for (int64_t r = 0; r < rows; ++r) loss += row_loss[(size_t) r];
    if (grad) {
        // Row groups own disjoint codebooks: one task each, rows in order.
#pragma omp parallel for schedule(static) if (rows * cols >= (1 << 18))
        for (int64_t rg = 0; rg < g.nrg; ++rg) {
            double * gr = grad->data() + rg * g.ncg * k * d;
            std::fill(gr, gr + g.ncg * k * d, 0.0);
            for (int64_t r = rg * g.R; r < std::min(rows, (rg + 1) * g.R); ++r) {
                for (int64_t s = 0; s < g.slots_per_row; ++s) {
                    const int64_t c = s * d;
                    double * gv = gr + ((c / g.Cg) * k + idx[(size_t) (r * g.slots_per_row + s)]) * d;
                    for (int t = 0; t < d; ++t) gv[t] += 2.0 * (double) G[(size_t) (r * cols + c + t)];
                }
            }
        }
    }
    return loss;
}

}  // namespace

static void check_params(int64_t rows, int64_t cols, const GptvqParams & p) {
    if (rows <= 0 || cols <= 0) throw_error("gptvq: the layer must have positive sizes (got %lld x %lld)", (long long) rows, (long long) cols);
    if (p.dim != 1 && p.dim != 2 && p.dim != 4) throw_error("gptvq: dim must be 1, 2 or 4 (got %d)", p.dim);
    if (p.bits < 1 || p.bits * p.dim > 8)
        throw_error("gptvq: bits·dim must be 1..8 (an 8-bit index at most; got bits %d, dim %d)", p.bits, p.dim);
    if (cols % p.dim != 0) throw_error("gptvq: cols (%lld) must be a multiple of dim (%d)", (long long) cols, p.dim);
    if (p.rows_per_group <= 0 || p.cols_per_group <= 0)
        throw_error("gptvq: rows_per_group and cols_per_group must be positive (got %lld, %lld)", (long long) p.rows_per_group,
                    (long long) p.cols_per_group);
    if (p.cols_per_group % p.dim != 0)
        throw_error("gptvq: cols_per_group (%lld) must be a multiple of dim (%d)", (long long) p.cols_per_group, p.dim);
    if (p.block <= 0) throw_error("gptvq: the lazy block must be positive (got %lld)", (long long) p.block);
    if (p.em_iters < 0 || p.update_iters < 0) throw_error("gptvq: em_iters and update_iters must be >= 0");
    if (p.update_iters > 0 && !(p.update_lr > 0 && std::isfinite(p.update_lr))) throw_error("gptvq: update_lr must be positive");
    if (!(p.damp >= 0 && std::isfinite(p.damp))) throw_error("gptvq: damp must be >= 0");
}

static Geometry make_geometry(int64_t rows, int64_t cols, const GptvqParams & p) {
    Geometry g;
    g.rows = rows;
    g.cols = cols;
    g.d = p.dim;
    g.k = 1 << (p.bits * p.dim);
    g.R = p.rows_per_group;
    g.Cg = p.cols_per_group;
    g.nrg = (rows + g.R - 1) / g.R;
    g.ncg = (cols + g.Cg - 1) / g.Cg;
    g.slots_per_row = cols / g.d;
    return g;
}

// The output's shape, with zeroed codebooks, scales and indices.
static void init_layer(const Geometry & g, const GptvqParams & p, VqLayer * out) {
    const int64_t n_groups = g.nrg * g.ncg;
    out->rows = g.rows;
    out->cols = g.cols;
    out->dim = g.d;
    out->bits = p.bits;
    out->rows_per_group = g.R;
    out->cols_per_group = g.Cg;
    out->codebooks.assign((size_t) (n_groups * g.k * g.d), 0);
    out->scales.assign((size_t) n_groups, 0);
    out->idx.assign((size_t) (g.rows * g.slots_per_row), 0);
}

// What every task of the GPTQ pass reads: the inverse Hessian's factor U, its transpose, the coordinate weights.
struct GptqPass {
    HinvFactor         f;
    std::vector<float> Ut;    // Uᵀ, so the lazy update of the later columns is one gl_gemm_nt_f32 per block
    std::vector<float> wcol;  // the coordinate weights: 1/U_jj² (GPTQ's error weight), or 1
    int64_t            B = 0;  // lazy block, a multiple of d
};

// Factors H, and zeroes W's dead columns (as GPTQ does).
static GptqPass prepare_pass(float * W, const Geometry & g, const float * H, const GptvqParams & p) {
    const int64_t C = g.cols;
    GptqPass ps;
    ps.f = gptq_hinv_factor(H, C, p.damp);
    ps.B = (p.block + g.d - 1) / g.d * g.d;
    const float * U = ps.f.U.data();
    // Wp[:, i2:] += (−E)·U[i1:i2, i2:] as a product with Uᵀ.
    ps.Ut.resize((size_t) (C * C));
#pragma omp parallel for schedule(static) if (C >= 512)
    for (int64_t i = 0; i < C; ++i)
        for (int64_t j = 0; j < C; ++j) ps.Ut[(size_t) (j * C + i)] = U[i * C + j];
    ps.wcol.resize((size_t) C);
    for (int64_t j = 0; j < C; ++j) {
        const double u = U[j * C + j];
        ps.wcol[(size_t) j] = p.hessian_weighted ? (float) (1.0 / (u * u)) : 1.0f;
    }
    for (int64_t j = 0; j < C; ++j) {
        if (!ps.f.dead[(size_t) j]) continue;
        for (int64_t r = 0; r < g.rows; ++r) W[r * C + j] = 0.0f;
    }
    return ps;
}

// One task of the GPTQ pass: the row groups [rg0, rg1), rows [r0, r0 + rc) of W, held in Wp (rc × C). Fits each
// column group's codebooks when the pass reaches it, assigns every slot and spreads its error over the later columns.
// Returns the task's share of GPTQ's loss.
struct PassTask {
    const Geometry &    g;
    const GptvqParams & p;
    const GptqPass &    ps;
    VqLayer *           out;
    std::vector<float> & dec;  // decoded codebooks (n_groups × k × d)
    int64_t             rg0, rg1, r0, rc;
    std::vector<float>  Wp, En, X, cent, xs, cz, cA;
    std::vector<int32_t> best;
    double              loss = 0;

    PassTask(const Geometry & g_, const GptvqParams & p_, const GptqPass & ps_, VqLayer * out_, std::vector<float> & dec_, const float * W,
             int64_t rg0_, int64_t rg1_)
        : g(g_), p(p_), ps(ps_), out(out_), dec(dec_), rg0(rg0_), rg1(rg1_) {
        r0 = rg0 * g.R;
        const int64_t r1 = std::min(g.rows, rg1 * g.R);
        rc = r1 - r0;
        Wp.assign(W + r0 * g.cols, W + r1 * g.cols);
        En.resize((size_t) (rc * ps.B));
        cent.resize((size_t) (g.k * g.d));
        cz.resize((size_t) (g.k * g.d));
        cA.resize((size_t) (g.k * (g.d + 1)));
    }

    // A new column group gc starting at column i1: fit the codebooks of its row groups on the current
    // (error-compensated) columns.
    void fit_codebooks(int64_t gc, int64_t i1) {
        const int64_t C = g.cols, d = g.d, k = g.k;
        const int64_t gcols = std::min(g.Cg, C - i1), S = gcols / d;
        for (int64_t rg = rg0; rg < rg1; ++rg) {
            const int64_t lr0 = rg * g.R - r0, nr = std::min(g.rows, (rg + 1) * g.R) - rg * g.R;
            X.resize((size_t) (S * nr * d));
            for (int64_t s = 0; s < S; ++s)
                for (int64_t rr = 0; rr < nr; ++rr)
                    for (int t = 0; t < d; ++t) X[(size_t) ((s * nr + rr) * d + t)] = Wp[(size_t) ((lr0 + rr) * C + i1 + s * d + t)];
            em_fit(X.data(), S, nr, &ps.wcol[(size_t) i1], (int) d, (int) k, p.em_iters, cent.data(), nullptr);
            const int64_t gi = rg * g.ncg + gc;
            quantize_codebook(cent.data(), (int) (k * d), &out->codebooks[(size_t) (gi * k * d)], &out->scales[(size_t) gi], &dec[(size_t) (gi * k * d)]);
        }
    }

    // The slot of columns j..j+d−1 (inside the lazy block [i1, i2) of column group gc), in every row of the task.
    void assign_slot(int64_t gc, int64_t i1, int64_t i2, int64_t j) {
        const int64_t C = g.cols, B = ps.B;
        const int d = g.d, k = g.k, ib = index_bits(k);
        const float * U = ps.f.U.data();
        const float ones[4] = {1.0f, 1.0f, 1.0f, 1.0f};
        // The assignment metric of this slot: Linv = (U_FFᵀ)⁻¹ for the vector's columns F = j..j+d−1 (see the
        // top of the file), or the diagonal weights (d = 1, or p.hessian_weighted off: all ones).
        const bool full = p.hessian_weighted && d > 1;
        double Linv[4][4] = {};
        if (full) lower_inverse_of_ut(U, C, j, d, Linv);
        const float * wj = full ? ones : &ps.wcol[(size_t) j];
        for (int64_t rg = rg0; rg < rg1; ++rg) {
            const int64_t lr0 = rg * g.R - r0, nr = std::min(g.rows, (rg + 1) * g.R) - rg * g.R;
            const int64_t gi = rg * g.ncg + gc;
            const float * cb = &dec[(size_t) (gi * k * d)];
            if (full) {
                for (int m = 0; m < k; ++m) apply_lower(Linv, d, cb + m * d, &cz[(size_t) (m * d)]);
                cb = cz.data();
            }
            build_table(cb, k, d, wj, cA.data());
            xs.resize((size_t) (nr * d));
            best.resize((size_t) nr);
            for (int64_t rr = 0; rr < nr; ++rr) {
                const float * x = &Wp[(size_t) ((lr0 + rr) * C + j)];
                if (full) apply_lower(Linv, d, x, &xs[(size_t) (rr * d)]);
                else
                    for (int t = 0; t < d; ++t) xs[(size_t) (rr * d + t)] = x[t];
            }
            gl_vq_nearest(d, nr, xs.data(), wj, k, ib, cA.data(), best.data(), nullptr);
            for (int64_t rr = 0; rr < nr; ++rr) {
                const int64_t lr = lr0 + rr;
                const int m = best[(size_t) rr];
                const float * q = &dec[(size_t) ((gi * k + m) * d)];
                out->idx[(size_t) ((r0 + lr) * g.slots_per_row + j / d)] = (uint8_t) m;
                float * w = &Wp[(size_t) (lr * C)];
                // GPTQ column by column with the d values fixed: coordinate t's error also updates the
                // coordinates t+1.. of this vector before their errors are taken (OBS-exact; see the top).
                for (int t = 0; t < d; ++t) {
                    const float e = (w[j + t] - q[t]) / U[(j + t) * C + j + t];
                    loss += 0.5 * (double) e * (double) e;
                    w[j + t] = q[t];
                    En[(size_t) (lr * B + (j + t - i1))] = -e;
                    if (j + t + 1 < i2) gl_axpy_f32(i2 - j - t - 1, -e, U + (j + t) * C + j + t + 1, w + j + t + 1);
                }
            }
        }
    }

    void run() {
        const int64_t C = g.cols;
        for (int64_t i1 = 0, i2; i1 < C; i1 = i2) {
            const int64_t gc = i1 / g.Cg;
            i2 = std::min({i1 + ps.B, C, (gc + 1) * g.Cg});
            if (i1 % g.Cg == 0) fit_codebooks(gc, i1);
            for (int64_t j = i1; j < i2; j += g.d) assign_slot(gc, i1, i2, j);
            if (i2 < C) gl_gemm_nt_f32(rc, C - i2, i2 - i1, En.data(), ps.B, &ps.Ut[(size_t) (i2 * C + i1)], C, Wp.data() + i2, C, true);
        }
    }
};

// The GPTQ pass over the whole layer; returns its loss.
static double gptq_pass(float * W, const Geometry & g, const GptvqParams & p, const GptqPass & ps, VqLayer * out, std::vector<float> & dec) {
    const int64_t C = g.cols;
    // Tasks: whole row groups (they share nothing given U), at least 16 rows so U's rows are reused across rows.
    const int64_t rg_per_task = g.R >= 16 ? 1 : (16 + g.R - 1) / g.R;
    const int64_t n_tasks = (g.nrg + rg_per_task - 1) / rg_per_task;
    std::vector<double> task_loss((size_t) n_tasks, 0.0);
#pragma omp parallel for schedule(dynamic, 1) if (n_tasks > 1 && g.rows * C * C >= (1 << 22))
    for (int64_t task = 0; task < n_tasks; ++task) {
        const int64_t rg0 = task * rg_per_task, rg1 = std::min(g.nrg, rg0 + rg_per_task);
        PassTask t(g, p, ps, out, dec, W, rg0, rg1);
        t.run();
        task_loss[(size_t) task] = t.loss;
    }
    double loss = 0;
    for (double l : task_loss) loss += l;
    return loss;
}

struct FinetuneResult {
    double loss0 = 0, loss1 = 0;
    int    restarts = 0;
};

// The codebook fine-tune (GPTVQ.md §1.5): Adam on the centroids against the original weights W0, then a final int8
// rounding with new scales, kept only when it is not worse than before. Updates out's codebooks/scales and dec.
static FinetuneResult finetune_codebooks(const Geometry & g, const GptvqParams & p, const float * W0, const float * H, bool want_stats,
                                         VqLayer * out, std::vector<float> & dec) {
    FinetuneResult res;
    if (!(p.update_iters > 0 || want_stats)) return res;
    const int64_t rows = g.rows, C = g.cols, n_groups = g.nrg * g.ncg;
    const int d = g.d, k = g.k;
    std::vector<float> D((size_t) (rows * C)), G((size_t) (rows * C));
    std::vector<double> row_loss((size_t) rows);
    const size_t np = (size_t) (n_groups * k * d);
    std::vector<double> grad0(np), grad(np);
    const double loss0 = finetune_loss(g, dec, out->idx, W0, H, D, G, row_loss, p.update_iters > 0 ? &grad0 : nullptr);
    res.loss0 = res.loss1 = loss0;
    if (!(p.update_iters > 0 && std::isfinite(loss0) && loss0 > 0)) return res;
    std::vector<float> cent = dec;
    std::vector<double> m1(np, 0.0), m2(np, 0.0);
    double lr = p.update_lr;
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int t = 0; t < p.update_iters;) {
        const std::vector<double> * gr = &grad0;
        if (t > 0) {
            const double l = finetune_loss(g, cent, out->idx, W0, H, D, G, row_loss, &grad);
            if (!(l <= loss0)) {  // the loss rose (or is NaN): restore, cut the learning rate, start over
                cent = dec;
                std::fill(m1.begin(), m1.end(), 0.0);
                std::fill(m2.begin(), m2.end(), 0.0);
                if (res.restarts == kMaxRestarts) return res;  // gave up: the codebooks stay as they were
                ++res.restarts;
                lr *= 0.1;
                t = 0;
                continue;
            }
            gr = &grad;
        }
        ++t;
        const double c1 = 1.0 - std::pow(b1, t), c2 = 1.0 - std::pow(b2, t);
        for (size_t i = 0; i < np; ++i) {
            const double gi = (*gr)[i];
            m1[i] = b1 * m1[i] + (1.0 - b1) * gi;
            m2[i] = b2 * m2[i] + (1.0 - b2) * gi * gi;
            cent[i] = (float) ((double) cent[i] - lr * (m1[i] / c1) / (std::sqrt(m2[i] / c2) + eps));
        }
    }
    // The final int8 rounding with new scales; kept only when it is not worse than before the fine-tune.
    std::vector<int8_t> cb1(np);
    std::vector<uint16_t> sc1((size_t) n_groups);
    std::vector<float> dec1(np);
    for (int64_t gi = 0; gi < n_groups; ++gi)
        quantize_codebook(&cent[(size_t) (gi * k * d)], k * d, &cb1[(size_t) (gi * k * d)], &sc1[(size_t) gi], &dec1[(size_t) (gi * k * d)]);
    const double l = finetune_loss(g, dec1, out->idx, W0, H, D, G, row_loss, nullptr);
    if (l <= loss0) {
        res.loss1 = l;
        out->codebooks = std::move(cb1);
        out->scales = std::move(sc1);
        dec = std::move(dec1);
    }
    return res;
}

// W = the decoded layer, exactly VqLayer::value.
static void write_decoded(float * W, const Geometry & g, const std::vector<float> & dec, const VqLayer & out) {
    const int64_t rows = g.rows, C = g.cols;
    const int d = g.d, k = g.k;
#pragma omp parallel for schedule(static) if (rows * C >= (1 << 18))
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t s = 0; s < g.slots_per_row; ++s) {
            const int64_t c = s * d;
            const float * cv = &dec[(size_t) ((g.group(r, c) * k + out.idx[(size_t) (r * g.slots_per_row + s)]) * d)];
            for (int t = 0; t < d; ++t) W[r * C + c + t] = cv[t];
        }
    }
}

void gptvq_quantize(float * W, int64_t rows, int64_t cols, const float * H, const GptvqParams & p, VqLayer * out, GptvqStats * stats) {
    if (!W || !H || !out) throw_error("gptvq: null weights, Hessian or output");
    check_params(rows, cols, p);
    const Geometry g = make_geometry(rows, cols, p);
    init_layer(g, p, out);
    const std::vector<float> W0(W, W + rows * cols);  // the fine-tune's reference: the original weights
    std::vector<float> dec((size_t) (g.nrg * g.ncg * g.k * g.d));  // decoded codebooks (n_groups × k × d)
    GptqPass ps = prepare_pass(W, g, H, p);
    const double gptq_loss = gptq_pass(W, g, p, ps, out, dec);
    ps.Ut.clear();
    ps.Ut.shrink_to_fit();
    const FinetuneResult ft = finetune_codebooks(g, p, W0.data(), H, stats != nullptr, out, dec);
    write_decoded(W, g, dec, *out);
    if (stats) {
        stats->loss = gptq_loss;
        stats->update_loss0 = ft.loss0;
        stats->update_loss1 = ft.loss1;
        stats->update_restarts = ft.restarts;
        stats->dead = std::count(ps.f.dead.begin(), ps.f.dead.end(), (uint8_t) 1);
    }
}

}  // namespace quill
