// Synthetic models: random weights at the real shapes of known models, for speed benchmarks (no real weights of
// that size can be had here). Everything that reports on them labels them synthetic.
#pragma once

#include "formats/model_file.h"

#include <string>
#include <vector>

namespace quill {

struct SyntheticShape {
    const char * name;
    int64_t n_embd, n_ff, n_layer, n_head, n_head_kv, n_vocab, n_ctx;
    float   rope_base;
    bool    tied;
};

// Known shapes: "tinyllama-1.1b", "llama2-7b", "stories260k". Throws quill::Error listing them for another name.
const SyntheticShape & synthetic_shape(const std::string & name);
std::vector<std::string> synthetic_names();

// The llama.* hyper-parameter keys of a shape (also used by tests/fuzz/make_seeds.cpp for its tiny models).
void set_llama_hparams(Metadata & m, const SyntheticShape & s);

// A complete model (metadata, a synthetic SentencePiece-style vocabulary, every tensor) with random weights:
// 2-D weights in `type` (f16 where a row is not a whole number of blocks), norms in f32. Deterministic for a seed.
ModelFile make_synthetic_model(const std::string & name, gl_type type, uint64_t seed = 1);

}  // namespace quill
