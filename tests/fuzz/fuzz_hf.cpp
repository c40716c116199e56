// Fuzz target: a Hugging Face model directory (formats/hf.cpp, formats/safetensors.cpp, formats/tokenizer_import.cpp).
//
// Input: up to five files separated by kFileSep (tests/fuzz/README.md), written into a per-process directory:
//   config.json, tokenizer.json, model.safetensors, tokenizer_config.json, model.safetensors.index.json
// (a missing part is a missing file). Three independent stages, so that each file is fuzzed even when another
// one is broken:
//   1. parse_safetensors() on the safetensors bytes in memory; every tensor's bytes are read;
//   2. import_hf_tokenizer() on tokenizer.json (+ tokenizer_config.json), then the Tokenizer built and used;
//   3. load_model() on the directory, then what the model feeds.
#include "formats/safetensors.h"
#include "model/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

#include "ggml-lite/common.h"

using namespace quill;

namespace {
const char * const k_names[] = {"config.json", "tokenizer.json", "model.safetensors", "tokenizer_config.json",
                                "model.safetensors.index.json"};
}

int quill_fuzz_hf(const uint8_t * data, size_t size) {
    const std::string & dir = quill_fuzz::scratch_dir("hf");
    const std::vector<std::string> parts = quill_fuzz::split_files(data, size, 5);
    for (size_t i = 0; i < 5; ++i) {
        if (i < parts.size()) quill_fuzz::write_scratch(dir, k_names[i], parts[i].data(), parts[i].size());
        else quill_fuzz::remove_scratch(dir, k_names[i]);
    }

    if (parts.size() > 2) {
        const std::string & st = parts[2];
        try {
            const SafetensorsHeader h = parse_safetensors((const uint8_t *) st.data(), st.size(), "model.safetensors");
            unsigned sum = 0;
            for (const SafetensorsTensor & t : h.tensors) {
                FUZZ_CHECK(t.offset >= h.data_start && t.offset <= st.size() && t.nbytes <= st.size() - t.offset,
                           strfmt("tensor '%s' [%zu, +%zu) is outside the %zu-byte file", t.name.c_str(), t.offset, t.nbytes, st.size()));
                FUZZ_CHECK(t.nbytes == (size_t) t.numel * safetensors_dtype_size(t.dtype),
                           strfmt("tensor '%s': %zu bytes for %lld %s values", t.name.c_str(), t.nbytes, (long long) t.numel, t.dtype.c_str()));
                for (size_t k = 0; k < t.nbytes; ++k) sum += (unsigned char) st[t.offset + k];
            }
            (void) sum;
        } catch (const Error &) {
        }
    }

    if (parts.size() > 1) {
        try {
            Metadata m;
            import_hf_tokenizer(dir + "/tokenizer.json", parts.size() > 3 ? dir + "/tokenizer_config.json" : "", m);
            const Tokenizer tok = Tokenizer::from_metadata(m);
            quill_fuzz::exercise_tokenizer(tok, parts.size() > 3 ? parts[3].substr(0, 256) : "");
        } catch (const Error &) {
        }
    }

    quill_fuzz::load_and_exercise([&] { return load_model(dir); });
    return 0;
}

QUILL_FUZZ_ENTRY(quill_fuzz_hf, false)
