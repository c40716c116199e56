// Fuzz target: the GGUF reader (formats/gguf.cpp), then what a loaded model feeds (tokenizer from the metadata,
// tensor rows, the LlamaModel run for a few tokens).
#include "tests/fuzz/fuzz_util.h"

using namespace quill;

int quill_fuzz_gguf(const uint8_t * data, size_t size) {
    const std::string & dir = quill_fuzz::scratch_dir("gguf");
    const std::string path = quill_fuzz::write_scratch(dir, "model.gguf", data, size);
    quill_fuzz::load_and_exercise([&] { return load_gguf(path); });
    return 0;
}

QUILL_FUZZ_ENTRY(quill_fuzz_gguf, false)
QUILL_FUZZ_MODEL_MUTATOR
