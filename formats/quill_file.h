// The quill model file: reader (load_quill in model_file.h) and writer. See formats/SPEC.md.
#pragma once

#include "formats/model_file.h"

#include <memory>
#include <string>
#include <vector>

namespace quill {

constexpr uint32_t QUILL_VERSION = 1;
constexpr uint32_t QUILL_ALIGNMENT = 64;

struct QuillTensorSpec {
    std::string          name;
    gl_type              type = GL_TYPE_F32;
    std::vector<int64_t> ne;
    std::string          origin;  // e.g. "q4_0 rtn from f32"
};

// Writes a quill file atomically: the layout is fixed up front from the specs, tensor data is written at its
// offset (in any order, so a quantizer can stream tensors as it finishes them), and finish() writes the header
// with checksums, fsyncs and gives the file its name (formats/atomic_file.h). Until then the data lives in an
// unnamed file, so an unfinished writer, an exception or any kill leaves neither an output nor a temporary file.
class AtomicFile;

class QuillWriter {
public:
    QuillWriter(const std::string & path, const Metadata & meta, std::vector<QuillTensorSpec> specs);
    ~QuillWriter();
    QuillWriter(const QuillWriter &) = delete;
    QuillWriter & operator=(const QuillWriter &) = delete;

    size_t n_tensors() const { return specs_.size(); }
    size_t tensor_nbytes(size_t i) const { return nbytes_[i]; }
    void write_tensor(size_t i, const void * data, size_t nbytes);
    void finish();

private:
    std::string path_;
    Metadata meta_;
    std::vector<QuillTensorSpec> specs_;
    std::vector<uint64_t> offsets_, nbytes_, checksums_;
    std::vector<bool> written_;
    uint64_t data_start_ = 0;
    std::unique_ptr<AtomicFile> file_;  // formats/atomic_file.h: whole or nothing at path_
    bool finished_ = false;

    std::string build_header() const;
};

// Per-tensor checksum (XXH3-64, seed 0), as stored in the file.
uint64_t quill_checksum(const void * data, size_t n);

// Writes every tensor of `mf` as it is.
void save_quill(const std::string & path, const ModelFile & mf, const std::vector<std::string> & origins = {});

}  // namespace quill
