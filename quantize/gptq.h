// GPTQ (Frantar et al.; ../shared/docs/methods/GPTQ.md): quantizes a linear layer column by column onto a uniform
// asymmetric per-group grid, feeding each column's rounding error back into the columns not yet quantized through
// the upper Cholesky factor of the inverse Hessian of the layer's inputs.
//
//   dead columns (H_jj = 0): H_jj = 1 and W[:, j] = 0
//   act-order (optional): columns in order of decreasing H_jj; the group grids are then "static" (fitted on the
//       original W before the loop, per group of the original column order) so the file needs no permutation
//   damping: H_jj += damp · mean(diag H), damp = 1%; when the Cholesky fails, ×10 and retry (up to 4 times)
//   U = upper Cholesky factor of H⁻¹, computed in double as the inverse of the "reverse" Cholesky factor of H
//       (H = V·Vᵀ with V upper  =>  H⁻¹ = V⁻ᵀ·V⁻¹ and U = V⁻¹): one factorisation and one triangular inverse
//   lazy block updates: B = 128 columns at a time; within the block each column's error e = (w − q)/U_jj updates the
//       rest of the block, then one product E·U[block, rest] updates every later column
//   groups (no act-order): each row's (scale, zero) for columns j..j+g−1 is fitted when column j is reached, on the
//       error-compensated weights (GPTQ.md §1.2)
// Rows are independent given U, so they are processed in parallel chunks.
#pragma once

#include "quantize/rtn.h"

#include <cstdint>
#include <vector>

namespace quill {

struct GptqParams {
    int     bits = 4;
    int     group = 128;        // columns per grid; the last group may be partial
    bool    act_order = false;
    int64_t block = 128;        // lazy-update block; raised to a multiple of the group
    double  damp = 0.01;        // fraction of the mean diagonal added to it
};

struct GptqStats {
    double  loss = 0;        // GPTQ's objective: Σ (w − q)² / U_jj² / 2 over every weight
    int64_t dead = 0;        // columns whose H_jj was 0
    double  damp = 0;        // absolute damping added to the diagonal
    int     retries = 0;     // Cholesky retries with 10× damping
};

// The factor GPTQ (and GPTVQ) needs: U (n × n floats, row-major, zero below the diagonal) with H⁻¹ = Uᵀ·U, of the
// damped H with rows and columns in the order perm (null: identity). dead[j] (in that order) marks columns whose
// H_jj was 0. Throws quill::Error if H stays not positive definite after the retries.
struct HinvFactor {
    int64_t n = 0;
    std::vector<float>   U;
    std::vector<uint8_t> dead;
    double damp = 0;
    int    retries = 0;
};
HinvFactor gptq_hinv_factor(const float * H, int64_t n, double damp, const int64_t * perm = nullptr);

// Quantizes W (rows × cols, row-major) with the Hessian H (cols × cols) of its inputs. W is overwritten with the
// quantized values; codes and grids go to *out (groups of p.group columns, original column order).
void gptq_quantize(float * W, int64_t rows, int64_t cols, const float * H, const GptqParams & p, IntQuantLayer * out,
                   GptqStats * stats = nullptr);

// tr((W − Q)·H·(W − Q)ᵀ), the layer's output error ‖(W − Q)·X‖² up to H's normalisation, in double.
double hessian_weighted_error(const float * W, const float * Q, int64_t rows, int64_t cols, const float * H);

}  // namespace quill
