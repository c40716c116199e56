// Helpers shared by the quantization tests (test_quantize.cpp, test_gptvq.cpp, test_quantize_vq.cpp).
#pragma once

#include "formats/model_file.h"
#include "model/llama.h"
#include "model/sampling.h"
#include "model/tokenizer.h"
#include "tests/test_model_util.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace quill_test {

// A random symmetric positive definite "Hessian" of correlated inputs: H = 2/N · XᵀX with X = Z·M (N × C),
// M mixing neighbouring features and giving them very different scales, as real activations have.
inline std::vector<float> correlated_hessian(int64_t C, int64_t N, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<double> g(0.0, 1.0);
    std::vector<double> M((size_t) (C * C), 0.0);
    for (int64_t i = 0; i < C; ++i) {
        const double s = 0.2 + 3.0 * std::fabs(g(rng));
        for (int64_t j = std::max<int64_t>(0, i - 8); j < std::min(C, i + 8); ++j) M[(size_t) (i * C + j)] = s * (i == j ? 1.0 : 0.5 * g(rng));
    }
    std::vector<double> X((size_t) (N * C), 0.0);
    std::vector<double> z((size_t) C);
    for (int64_t t = 0; t < N; ++t) {
        for (double & v : z) v = g(rng);
        for (int64_t j = 0; j < C; ++j) {
            double s = 0;
            for (int64_t i = 0; i < C; ++i) s += z[(size_t) i] * M[(size_t) (i * C + j)];
            X[(size_t) (t * C + j)] = s;
        }
    }
    std::vector<float> H((size_t) (C * C));
    for (int64_t i = 0; i < C; ++i) {
        for (int64_t j = 0; j < C; ++j) {
            double s = 0;
            for (int64_t t = 0; t < N; ++t) s += X[(size_t) (t * C + i)] * X[(size_t) (t * C + j)];
            H[(size_t) (i * C + j)] = (float) (2.0 * s / (double) N);
        }
    }
    return H;
}

// Greedy continuation of "Once upon a time" for 40 tokens from a model file (the story the quantized model tells).
inline std::string greedy_story(const quill::ModelFile & mf) {
    const quill::Tokenizer tk = quill::Tokenizer::from_metadata(mf.meta);
    const std::vector<int32_t> ids = greedy_ids(mf, 40);
    std::string text;
    for (size_t i = ids.size() - 40; i < ids.size(); ++i) text += tk.token_to_piece(ids[i]);
    return text;
}

}  // namespace quill_test
