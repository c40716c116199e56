// GGUF v3 export, so llama.cpp can run the very same bytes quill runs (fair side-by-side benchmarks).
// F32, F16, BF16, Q8_0 and Q4_0 are written in ggml's exact block layouts (they are quill's layouts).
#pragma once

#include "formats/model_file.h"

#include <string>

namespace quill {

// ggml's type id for a quill type; throws quill::Error for a type GGUF cannot hold.
uint32_t gguf_type_id(gl_type t);

// Writes mf as GGUF v3 (atomically: temporary file, then rename). Metadata keys carry over; quill-only keys
// (quill.*) are dropped and general.file_type is set as GGUF's u32 file type.
void save_gguf(const std::string & path, const ModelFile & mf);

}  // namespace quill
