// GPTVQ (van Baalen et al.; ../shared/docs/methods/GPTVQ.md): vector quantization of a linear layer. Groups of d
// consecutive input columns of one row (d = 1, 2 or 4) are replaced by the index of the nearest entry of a codebook of
// k = 2^(bits·d) d-dimensional int8 centroids times one fp16 scale; one codebook serves a group of rows_per_group
// rows × cols_per_group columns. Columns are quantized d at a time with GPTQ's error feedback (through the upper
// Cholesky factor of H⁻¹, quantize/gptq.h), each group's codebook is seeded (Mahalanobis) and fitted by
// Hessian-weighted EM on the already error-compensated columns when the loop reaches the group's first column, and
// after the loop all codebooks of the layer are fine-tuned with Adam on ‖(W₀ − Q)X‖² before their final int8
// rounding.
//
// Group geometry: group (gr, gc) covers rows [gr·R, min((gr+1)·R, rows)) × columns [gc·C, min((gc+1)·C, cols));
// the last row group and the last column group may be partial. Its index is gr · n_col_groups + gc.
#pragma once

#include <cstdint>
#include <vector>

namespace quill {

struct GptvqParams {
    int     dim = 2;                // d: 1, 2 or 4 (cols must be a multiple of d)
    int     bits = 3;               // bits per dimension; k = 2^(bits·dim) centroids (index of bits·dim <= 8 bits)
    int64_t rows_per_group = 32;    // R
    int64_t cols_per_group = 256;   // C, a multiple of dim
    int     em_iters = 100;         // Hessian-weighted EM iterations after the Mahalanobis seeding
    int     update_iters = 25;      // Adam steps of the codebook fine-tune (0: off)
    double  update_lr = 1e-3;       // initial Adam learning rate (safeguarded: ×0.1 and restart when the loss rises)
    double  damp = 0.01;            // fraction of the mean diagonal of H added to it
    int64_t block = 128;            // GPTQ lazy-update block (columns)
    bool    hessian_weighted = true;  // EM weighted by 1/U_jj², the column loop's lookup by the exact d×d metric
                                      // ‖(U_FFᵀ)⁻¹(w − q)‖² (gptvq.cpp); false: plain k-means distances
};

struct GptvqStats {
    double  loss = 0;             // GPTQ's objective Σ (w − q)² / U_jj² / 2 at the end of the column loop
    double  update_loss0 = 0;     // tr((W₀ − Q)·H·(W₀ − Q)ᵀ) before the codebook fine-tune
    double  update_loss1 = 0;     // ... after it (and after the final int8 rounding); <= update_loss0
    int     update_restarts = 0;  // learning-rate cuts of the fine-tune
    int64_t dead = 0;             // columns whose H_jj was 0
};

// A vector-quantized layer: what the packed VQ types of ggml-lite store.
struct VqLayer {
    int64_t rows = 0, cols = 0;
    int     dim = 0, bits = 0;
    int64_t rows_per_group = 0, cols_per_group = 0;
    std::vector<int8_t>   codebooks;  // n_groups() × k() × dim int8 entries; entry m of group g: [(g·k + m)·dim ..)
    std::vector<uint16_t> scales;     // n_groups() fp16 codebook scales (IEEE half bits)
    std::vector<uint8_t>  idx;        // rows × (cols / dim) centroid indices, row-major

    int     k() const { return 1 << (bits * dim); }
    int64_t n_row_groups() const { return (rows + rows_per_group - 1) / rows_per_group; }
    int64_t n_col_groups() const { return (cols + cols_per_group - 1) / cols_per_group; }
    int64_t n_groups() const { return n_row_groups() * n_col_groups(); }
    int64_t group_of(int64_t r, int64_t c) const { return (r / rows_per_group) * n_col_groups() + c / cols_per_group; }
    // The value weight (r, c) decodes to: fp16 scale × int8 entry, exactly what the packed types' kernels use.
    float value(int64_t r, int64_t c) const;
};

// Quantizes W (rows × cols, row-major) with the Hessian H (cols × cols, 2/N Σ x xᵀ) of its inputs. W is overwritten
// with the quantized values (exactly out->value(r, c)). Throws quill::Error on invalid parameters.
void gptvq_quantize(float * W, int64_t rows, int64_t cols, const float * H, const GptvqParams & p, VqLayer * out,
                    GptvqStats * stats = nullptr);

// Test hook (tests/test_gptvq.cpp): the codebook fit gptvq_quantize runs for every group, on n vectors X (n × dim,
// row-major) with positive per-coordinate weights w (n × dim; in the quantizer 1/U_jj² of the vector's columns):
// Mahalanobis seeding of k <= 256 centroids, then up to `iters` rounds of weighted EM, stopping early once no assignment
// changes. Returns the objective Σ_i Σ_t w_it·(x_it − c_{a(i),t})² after the seeding's assignment and after each
// round (it never increases). *centroids (k × dim), when non-null, receives the fitted float codebook (before the
// int8 rounding). Throws quill::Error on invalid arguments.
std::vector<double> gptvq_em_trace(const float * X, const float * w, int64_t n, int dim, int k, int iters,
                                   std::vector<float> * centroids = nullptr);

}  // namespace quill
