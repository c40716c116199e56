// GGUF v2/v3 reader. Tensors are used in place from the memory map: ggml's F32, F16, BF16, Q8_0 and Q4_0 block
// layouts are exactly quill's. Any other ggml type is refused with an error naming it.
#include "formats/byte_reader.h"
#include "formats/gguf_writer.h"
#include "formats/meta_io.h"
#include "formats/model_file.h"

#include <memory>

namespace quill {

// ggml's type names by id (ggml.h), for error messages only: which ones quill reads is the registry's gguf_type
// (ggml-lite/types.cpp).
struct GgmlTypeName { uint32_t id; const char * name; };
static const GgmlTypeName k_ggml_type_names[] = {
    {0, "F32"},      {1, "F16"},      {2, "Q4_0"},    {3, "Q4_1"},     {6, "Q5_0"},     {7, "Q5_1"},   {8, "Q8_0"},
    {9, "Q8_1"},     {10, "Q2_K"},    {11, "Q3_K"},   {12, "Q4_K"},    {13, "Q5_K"},    {14, "Q6_K"},  {15, "Q8_K"},
    {16, "IQ2_XXS"}, {17, "IQ2_XS"},  {18, "IQ3_XXS"}, {19, "IQ1_S"},  {20, "IQ4_NL"},  {21, "IQ3_S"}, {22, "IQ2_S"},
    {23, "IQ4_XS"},  {24, "I8"},      {25, "I16"},    {26, "I32"},     {27, "I64"},     {28, "F64"},   {29, "IQ1_M"},
    {30, "BF16"},    {34, "TQ1_0"},   {35, "TQ2_0"},
};

static const char * ggml_type_name(uint32_t id) {
    for (const GgmlTypeName & t : k_ggml_type_names) {
        if (t.id == id) return t.name;
    }
    return nullptr;
}

// The registry's types that GGUF files can hold, for messages: "F32, F16, ...".
static std::string gguf_supported_types() {
    std::string out;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (gl_get_type_traits((gl_type) t)->gguf_type < 0) continue;
        if (!out.empty()) out += ", ";
        for (const char * c = gl_type_name((gl_type) t); *c; ++c) out += (char) toupper((unsigned char) *c);
    }
    return out;
}

uint32_t gguf_type_id(gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    if (!tr || tr->gguf_type < 0) throw_error("type %s has no GGUF equivalent", gl_type_name(t));
    return (uint32_t) tr->gguf_type;
}

ModelFile load_gguf(const std::string & path, const LoadOptions & opt) {
    auto map = std::make_shared<MappedFile>(path);
    ModelFile mf;
    mf.path = path;
    mf.format = "gguf";
    mf.owners.push_back(map);
    ByteReader r(map->data, map->size, path);

    r.need(4, "magic");
    if (memcmp(r.ptr(), "GGUF", 4) != 0) throw_error("%s: not a GGUF file (bad magic)", path.c_str());
    r.skip(4, "magic");
    uint32_t version = r.read<uint32_t>("version");
    if (version != 2 && version != 3) throw_error("%s: unsupported GGUF version %u (quill reads 2 and 3)", path.c_str(), version);
    uint64_t n_tensors = r.read<uint64_t>("tensor count");
    uint64_t n_kv = r.read<uint64_t>("metadata count");
    if (n_tensors > (1u << 20) || n_kv > (1u << 20))
        throw_error("%s: absurd header counts (%llu tensors, %llu metadata keys)", path.c_str(), (unsigned long long) n_tensors, (unsigned long long) n_kv);

    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = r.read_string<uint64_t>("metadata key", 1 << 16);
        mf.meta.set(key, read_meta_value(r, key));
    }

    struct Info { std::string name; uint32_t ggml_type; std::vector<int64_t> ne; uint64_t offset; };
    std::vector<Info> infos;
    infos.reserve((size_t) n_tensors);
    for (uint64_t k = 0; k < n_tensors; ++k) {
        Info in;
        in.name = r.read_string<uint64_t>("tensor name", 1 << 16);
        uint32_t n_dims = r.read<uint32_t>("tensor dimension count");
        if (n_dims < 1 || n_dims > 4) throw_error("%s: tensor '%s' has %u dimensions (1 to 4 allowed)", path.c_str(), in.name.c_str(), n_dims);
        for (uint32_t d = 0; d < n_dims; ++d) in.ne.push_back((int64_t) r.read<uint64_t>("tensor dimension"));
        in.ggml_type = r.read<uint32_t>("tensor type");
        in.offset = r.read<uint64_t>("tensor offset");
        infos.push_back(std::move(in));
    }

    uint64_t alignment = (uint64_t) mf.meta.get_int("general.alignment", 32);
    // The GGUF spec asks for a multiple of 8: below that, tensor data (fp32 values, fp16 block scales) would sit
    // at addresses their types may not be read from (fuzz_gguf: alignment 1, UBSan in q4_0_to_float).
    if (alignment < 8 || (alignment & (alignment - 1)) != 0 || alignment > 4096)
        throw_error("%s: invalid general.alignment %llu (a power of two from 8 to 4096)", path.c_str(), (unsigned long long) alignment);
    uint64_t data_start = (r.pos() + alignment - 1) / alignment * alignment;
    if (data_start > map->size) throw_error("%s: truncated file: no tensor data", path.c_str());

    for (Info & in : infos) {
        const gl_type qt = gl_type_from_gguf(in.ggml_type);
        const char * gname = ggml_type_name(in.ggml_type);
        if (qt == GL_TYPE_COUNT && !gname)
            throw_error("%s: tensor '%s' has unknown ggml type id %u", path.c_str(), in.name.c_str(), in.ggml_type);
        if (qt == GL_TYPE_COUNT)
            throw_error("%s: tensor '%s' has type %s, which quill does not support (supported: %s)", path.c_str(), in.name.c_str(),
                        gname, gguf_supported_types().c_str());
        TensorData t;
        t.name = in.name;
        t.type = qt;
        t.ne = in.ne;
        if (!gl_nbytes_checked(t.type, t.ne.data(), (int) t.ne.size(), &t.nbytes))
            throw_error("%s: tensor '%s' has an invalid shape for type %s", path.c_str(), in.name.c_str(), gl_type_name(qt));
        if (in.offset % alignment != 0) throw_error("%s: tensor '%s' data is not aligned", path.c_str(), in.name.c_str());
        uint64_t avail = map->size - data_start;
        if (in.offset > avail || t.nbytes > avail - in.offset)
            throw_error("%s: truncated file: tensor '%s' data (%zu bytes at %llu) runs past the end", path.c_str(), in.name.c_str(),
                        t.nbytes, (unsigned long long) (data_start + in.offset));
        t.data = map->data + data_start + in.offset;
        if (mf.find(t.name)) throw_error("%s: duplicate tensor '%s'", path.c_str(), t.name.c_str());
        mf.tensors.push_back(std::move(t));
    }
    (void) opt;
    return mf;
}

}  // namespace quill
