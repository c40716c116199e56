// safetensors: the Hugging Face tensor container (https://github.com/huggingface/safetensors).
//
// Layout: 8-byte little-endian header length N, then N bytes of JSON, then the data section. The JSON object maps
// tensor names to {"dtype": "F32", "shape": [d0, d1, ...], "data_offsets": [begin, end]} (offsets relative to the
// start of the data section, row-major, little-endian) plus an optional "__metadata__" object of string values.
//
// Input is untrusted. parse_safetensors() checks everything before a tensor is exposed and throws quill::Error
// with one line naming the file (the `what` argument), the tensor and the problem:
//   - header length: at least 2 ("{}"), at most kMaxHeaderBytes and at most the bytes that follow it;
//   - the header is a JSON object (nlohmann parse errors become quill::Error), every entry an object with the
//     three keys of the right JSON types;
//   - dtype is F32, F16 or BF16 (others are rejected, naming the dtype and the tensor);
//   - every dimension is a non-negative integer, numel and numel * element size do not overflow;
//   - begin <= end <= data section size, and end - begin == numel * element size.
// Overlapping tensors are not rejected (nothing is written through the data, so overlap cannot corrupt anything).
#pragma once

#include "ggml-lite/types.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace quill {

struct SafetensorsTensor {
    std::string          name;
    std::string          dtype;   // as written in the file: "F32", "F16", "BF16"
    gl_type              type = GL_TYPE_F32;
    std::vector<int64_t> shape;   // as written (outermost first); a scalar has an empty shape
    size_t               offset = 0;  // absolute byte offset of the data from the start of the file
    size_t               nbytes = 0;
    int64_t              numel = 0;
};

struct SafetensorsHeader {
    std::vector<SafetensorsTensor>     tensors;   // sorted by name
    std::map<std::string, std::string> metadata;  // "__metadata__" (non-string values are ignored)
    size_t                             data_start = 0;  // 8 + header length
};

constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull * 1024 * 1024;

// Parses and validates the header of a safetensors file held in memory (bytes[0..size)). `what` names the file in
// error messages. Throws quill::Error on any problem; never reads outside [bytes, bytes + size).
SafetensorsHeader parse_safetensors(const uint8_t * bytes, size_t size, const std::string & what = "safetensors");

// Element size in bytes of a supported dtype name, or 0 when the dtype is not supported.
size_t safetensors_dtype_size(const std::string & dtype, gl_type * type_out = nullptr);

}  // namespace quill
