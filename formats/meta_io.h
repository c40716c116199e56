// Binary encoding of metadata values, shared by GGUF and quill files (quill uses GGUF's value encoding:
// u32 type code, then the value; strings are u64 length + bytes; arrays are u32 element type, u64 count, values).
#pragma once

#include "formats/byte_reader.h"
#include "formats/metadata.h"

#include <string>

namespace quill {

MetaValue read_meta_value(ByteReader & r, const std::string & key);
void      write_meta_value(std::string & out, const MetaValue & v);
void      write_string(std::string & out, const std::string & s);  // u64 length + bytes

template <typename T> void write_pod(std::string & out, T v) { out.append((const char *) &v, sizeof(T)); }

}  // namespace quill
