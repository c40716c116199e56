// safetensors header parser. Contract in formats/safetensors.h.
#include "formats/safetensors.h"

#include "ggml-lite/common.h"

#include <nlohmann/json.hpp>

#include <cstring>
#include <limits>

namespace quill {

size_t safetensors_dtype_size(const std::string & dtype, gl_type * type_out) {
    gl_type t;
    size_t  sz;
    if (dtype == "F32") {
        t = GL_TYPE_F32;
        sz = 4;
    } else if (dtype == "F16") {
        t = GL_TYPE_F16;
        sz = 2;
    } else if (dtype == "BF16") {
        t = GL_TYPE_BF16;
        sz = 2;
    } else {
        return 0;
    }
    if (type_out) *type_out = t;
    return sz;
}

namespace {

// A JSON number that is a non-negative integer representable as uint64 (nlohmann stores big integers as floats,
// which are rejected here).
bool json_u64(const nlohmann::json & j, uint64_t * out) {
    if (j.is_number_unsigned()) {
        *out = j.get<uint64_t>();
        return true;
    }
    if (j.is_number_integer()) {
        int64_t v = j.get<int64_t>();
        if (v < 0) return false;
        *out = (uint64_t) v;
        return true;
    }
    return false;
}

std::string clip(const std::string & s, size_t n = 80) {
    return s.size() <= n ? s : s.substr(0, n) + "...";
}

}  // namespace

SafetensorsHeader parse_safetensors(const uint8_t * bytes, size_t size, const std::string & what) {
    const char * w = what.c_str();
    if (size < 8) throw_error("%s: file too small for a safetensors header (%zu bytes)", w, size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];
    if (n < 2) throw_error("%s: safetensors header length %llu is too small", w, (unsigned long long) n);
    if (n > kSafetensorsMaxHeaderBytes)
        throw_error("%s: safetensors header length %llu exceeds the limit of %llu bytes", w, (unsigned long long) n,
                    (unsigned long long) kSafetensorsMaxHeaderBytes);
    if (n > size - 8)
        throw_error("%s: safetensors header length %llu runs past the end of the file (%zu bytes)", w,
                    (unsigned long long) n, size);

    SafetensorsHeader hdr;
    hdr.data_start = 8 + (size_t) n;
    const size_t data_size = size - hdr.data_start;

    nlohmann::json j;
    try {
        const char * p = reinterpret_cast<const char *>(bytes + 8);
        j = nlohmann::json::parse(p, p + n);
    } catch (const nlohmann::json::exception & e) {
        throw_error("%s: safetensors header is not valid JSON: %s", w, e.what());
    }
    if (!j.is_object()) throw_error("%s: safetensors header is not a JSON object", w);

    hdr.tensors.reserve(j.size());
    for (auto it = j.begin(); it != j.end(); ++it) {
        const std::string & name = it.key();
        const nlohmann::json & v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) throw_error("%s: __metadata__ is not a JSON object", w);
            for (auto m = v.begin(); m != v.end(); ++m)
                if (m.value().is_string()) hdr.metadata[m.key()] = m.value().get<std::string>();
            continue;
        }
        const std::string nm = clip(name);
        const char * tn = nm.c_str();
        if (!v.is_object()) throw_error("%s: tensor '%s': entry is not a JSON object", w, tn);
        auto dt = v.find("dtype");
        auto sh = v.find("shape");
        auto of = v.find("data_offsets");
        if (dt == v.end() || !dt->is_string()) throw_error("%s: tensor '%s': missing or non-string dtype", w, tn);
        if (sh == v.end() || !sh->is_array()) throw_error("%s: tensor '%s': missing or non-array shape", w, tn);
        if (of == v.end() || !of->is_array() || of->size() != 2)
            throw_error("%s: tensor '%s': data_offsets must be an array of two integers", w, tn);

        SafetensorsTensor t;
        t.name = name;
        t.dtype = dt->get<std::string>();
        const size_t elsize = safetensors_dtype_size(t.dtype, &t.type);
        if (elsize == 0)
            throw_error("%s: tensor '%s' has unsupported dtype '%s' (supported: F32, F16, BF16)", w, tn,
                        clip(t.dtype, 16).c_str());
        if (sh->size() > 8) throw_error("%s: tensor '%s' has %zu dimensions (at most 8)", w, tn, sh->size());

        uint64_t numel = 1;
        for (const auto & d : *sh) {
            uint64_t dim;
            if (!json_u64(d, &dim) || dim > (uint64_t) std::numeric_limits<int64_t>::max())
                throw_error("%s: tensor '%s': shape entries must be non-negative integers", w, tn);
            if (dim != 0 && numel > (uint64_t) std::numeric_limits<int64_t>::max() / dim)
                throw_error("%s: tensor '%s': element count overflows", w, tn);
            numel *= dim;
            t.shape.push_back((int64_t) dim);
        }
        if (numel > std::numeric_limits<uint64_t>::max() / elsize)
            throw_error("%s: tensor '%s': byte size overflows", w, tn);
        const uint64_t nbytes = numel * elsize;

        uint64_t begin, end;
        if (!json_u64((*of)[0], &begin) || !json_u64((*of)[1], &end))
            throw_error("%s: tensor '%s': data_offsets must be non-negative integers", w, tn);
        if (begin > end)
            throw_error("%s: tensor '%s': data_offsets [%llu, %llu] are reversed", w, tn, (unsigned long long) begin,
                        (unsigned long long) end);
        if (end > data_size)
            throw_error("%s: tensor '%s': data_offsets [%llu, %llu] run past the data section (%zu bytes)", w, tn,
                        (unsigned long long) begin, (unsigned long long) end, data_size);
        if (end - begin != nbytes)
            throw_error("%s: tensor '%s': data_offsets span %llu bytes but shape and dtype need %llu", w, tn,
                        (unsigned long long) (end - begin), (unsigned long long) nbytes);
        t.numel = (int64_t) numel;
        t.nbytes = (size_t) nbytes;
        t.offset = hdr.data_start + (size_t) begin;
        hdr.tensors.push_back(std::move(t));
    }
    return hdr;
}

}  // namespace quill
