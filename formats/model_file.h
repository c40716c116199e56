// A loaded model, whatever file it came from: metadata plus named tensors whose data is memory-mapped
// (or, for converted inputs, owned buffers kept alive by the ModelFile).
//
// Tensor names and metadata keys follow GGUF/llama.cpp conventions; formats/arch.h lists them per architecture
// (token_embd.weight, output_norm.weight, output.weight absent when tied, blk.N.<role>, optionally rope_freqs.weight).
// Q and K rows are in the architecture's GGUF RoPE order (adjacent pairs for llama: readers of Hugging Face
// checkpoints permute them on load; halves for the others).
#pragma once

#include "formats/metadata.h"
#include "ggml-lite/types.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace quill {

struct TensorData {
    std::string          name;
    gl_type              type = GL_TYPE_F32;
    std::vector<int64_t> ne;              // ne[0] = row length, ne[1] = rows, ...
    const uint8_t *      data = nullptr;  // nbytes bytes, valid while the ModelFile lives
    size_t               nbytes = 0;

    int64_t n_elements() const;
    int64_t n_rows() const;  // product of ne[1..]
};

struct ModelFile {
    std::string             path;
    std::string             format;  // "quill", "gguf", "llama2c", "hf"
    Metadata                meta;
    std::vector<TensorData> tensors;
    std::vector<std::shared_ptr<void>> owners;  // mappings and buffers that tensor data points into

    const TensorData * find(const std::string & name) const;
    const TensorData & get(const std::string & name) const;  // throws quill::Error naming the missing tensor
    // Adds a tensor whose data is copied into a buffer the ModelFile owns.
    TensorData & add_owned(const std::string & name, gl_type type, std::vector<int64_t> ne, const void * data, size_t nbytes);
    // Allocates an owned, zeroed buffer for a new tensor and returns it for the caller to fill.
    TensorData & add_owned_uninit(const std::string & name, gl_type type, std::vector<int64_t> ne);
};

// A read-only memory map of a whole file. Throws quill::Error when the file cannot be opened.
struct MappedFile {
    const uint8_t * data = nullptr;
    size_t          size = 0;
    explicit MappedFile(const std::string & path);
    ~MappedFile();
    MappedFile(const MappedFile &) = delete;
    MappedFile & operator=(const MappedFile &) = delete;
};

// The whole of a regular file of at most `max_bytes` (a prompt, a text, a JSON file). Anything else is an error
// naming the file: a FIFO or a device (never read, so never blocks on /dev/zero or a pipe with no writer), a
// directory, or a file over the bound.
std::string read_file_bounded(const std::string & path, size_t max_bytes);

struct LoadOptions {
    std::string tokenizer_path;  // llama2.c tokenizer.bin, required for llama2.c checkpoints
    bool        verify = true;   // verify checksums of quill files (header always, tensors when true)
};

// Readers. Each throws quill::Error with one line naming the problem.
ModelFile load_quill(const std::string & path, const LoadOptions & opt = {});
ModelFile load_gguf(const std::string & path, const LoadOptions & opt = {});
ModelFile load_llama2c(const std::string & path, const LoadOptions & opt = {});
ModelFile load_hf(const std::string & dir, const LoadOptions & opt = {});
// Detects the format (directory => HF; magic "QUIL", "GGUF"; else llama2.c) and loads it.
ModelFile load_model(const std::string & path, const LoadOptions & opt = {});

// Tokenizer importers: fill the tokenizer.ggml.* keys of `meta` (GGUF naming) from a tokenizer file.
void import_llama2c_tokenizer(const std::string & path, Metadata & meta);
// tokenizer.json (+ optional tokenizer_config.json beside it for bos/eos flags and the chat template).
void import_hf_tokenizer(const std::string & tokenizer_json_path, const std::string & tokenizer_config_path, Metadata & meta);

}  // namespace quill
