// Fuzz target: the GGUF reader (formats/gguf.cpp), then what a loaded model feeds (tokenizer from the metadata,
// tensor rows, the LlamaModel run for a few tokens).
#include "tests/fuzz/fuzz_util.h"

using namespace quill;

int quill_fuzz_gguf(const uint8_t * data, size_t size) {
    const std::string & dir = quill_fuzz::scratch_dir("gguf");
    const std::string path = quill_fuzz::write_scratch(dir, "model.gguf", data, size);
    try {
        ModelFile mf = load_gguf(path);
        quill_fuzz::exercise_model(mf);
    } catch (const Error &) {
    }
    return 0;
}

#ifndef QUILL_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerInitialize(int *, char ***) {
    quill_fuzz::init_process();
    return 0;
}
extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) { return quill_fuzz_gguf(data, size); }
extern "C" size_t LLVMFuzzerCustomMutator(uint8_t * data, size_t size, size_t max_size, unsigned int seed) {
    return quill_fuzz::mutate_model_file(data, size, max_size, seed);
}
#endif
