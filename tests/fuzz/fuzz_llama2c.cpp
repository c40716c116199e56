// Fuzz target: a llama2.c checkpoint and its tokenizer.bin (formats/llama2c.cpp, import_llama2c_tokenizer).
//
// Input: the checkpoint, then kFileSep, then tokenizer.bin (tests/fuzz/README.md). The tokenizer is imported on its
// own (and a Tokenizer built and used from it), then the checkpoint is loaded with it through load_model.
#include "model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

using namespace quill;

int quill_fuzz_llama2c(const uint8_t * data, size_t size) {
    const std::string & dir = quill_fuzz::scratch_dir("llama2c");
    const std::vector<std::string> parts = quill_fuzz::split_files(data, size, 2);
    const std::string ckpt = quill_fuzz::write_scratch(dir, "model.bin", parts[0].data(), parts[0].size());
    std::string tok_path;
    if (parts.size() > 1) {
        tok_path = quill_fuzz::write_scratch(dir, "tokenizer.bin", parts[1].data(), parts[1].size());
        try {
            Metadata m;
            import_llama2c_tokenizer(tok_path, m);
            const Tokenizer tok = Tokenizer::from_metadata(m);
            quill_fuzz::exercise_tokenizer(tok);
        } catch (const Error &) {
        }
    } else {
        quill_fuzz::remove_scratch(dir, "tokenizer.bin");
    }
    LoadOptions opt;
    opt.tokenizer_path = tok_path;
    quill_fuzz::load_and_exercise([&] { return load_model(ckpt, opt); });
    return 0;
}

QUILL_FUZZ_ENTRY(quill_fuzz_llama2c, false)
