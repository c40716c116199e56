#include "formats/gguf_writer.h"

#include "formats/atomic_file.h"
#include "formats/meta_io.h"
#include "ggml-lite/common.h"

#include <cstdio>
#include <cstring>
#include <map>

namespace quill {

static const size_t k_gguf_alignment = 32;

// llama.cpp's llama_ftype for the type most 2-D tensors have.
static uint32_t gguf_file_type(const ModelFile & mf) {
    std::map<gl_type, size_t> bytes;
    for (const TensorData & t : mf.tensors) {
        if (t.ne.size() >= 2) bytes[t.type] += t.nbytes;
    }
    gl_type main = GL_TYPE_F32;
    size_t best = 0;
    for (const auto & kv : bytes) {
        if (kv.second > best) best = kv.second, main = kv.first;
    }
    const int32_t ftype = gl_get_type_traits(main)->gguf_ftype;
    return ftype >= 0 ? (uint32_t) ftype : 0;
}

void save_gguf(const std::string & path, const ModelFile & mf) {
    std::string h;
    h.append("GGUF", 4);
    write_pod<uint32_t>(h, 3);
    write_pod<uint64_t>(h, mf.tensors.size());
    std::vector<std::pair<std::string, MetaValue>> kvs;
    for (const auto & kv : mf.meta.items()) {
        if (kv.first.rfind("quill.", 0) == 0 || kv.first == "general.file_type" || kv.first == "general.alignment") continue;
        kvs.push_back(kv);
    }
    kvs.emplace_back("general.file_type", MetaValue::of_u32(gguf_file_type(mf)));
    write_pod<uint64_t>(h, kvs.size());
    for (const auto & kv : kvs) {
        write_string(h, kv.first);
        write_meta_value(h, kv.second);
    }
    uint64_t off = 0;
    std::vector<uint64_t> offsets;
    for (const TensorData & t : mf.tensors) {
        write_string(h, t.name);
        write_pod<uint32_t>(h, (uint32_t) t.ne.size());
        for (int64_t d : t.ne) write_pod<uint64_t>(h, (uint64_t) d);
        write_pod<uint32_t>(h, gguf_type_id(t.type));
        write_pod<uint64_t>(h, off);
        offsets.push_back(off);
        off = (off + t.nbytes + k_gguf_alignment - 1) / k_gguf_alignment * k_gguf_alignment;
    }
    h.resize((h.size() + k_gguf_alignment - 1) / k_gguf_alignment * k_gguf_alignment, '\0');

    AtomicFile f(path);  // whole or nothing at `path`, never through a planted link (formats/atomic_file.h)
    f.append(h.data(), h.size());
    static const char zeros[k_gguf_alignment] = {};
    for (size_t i = 0; i < mf.tensors.size(); ++i) {
        const TensorData & t = mf.tensors[i];
        f.append(t.data, t.nbytes);
        size_t pad = (size_t) ((t.nbytes + k_gguf_alignment - 1) / k_gguf_alignment * k_gguf_alignment - t.nbytes);
        if (pad && i + 1 < mf.tensors.size()) f.append(zeros, pad);
    }
    f.commit();
}

}  // namespace quill
