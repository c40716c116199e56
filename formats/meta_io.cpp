#include "formats/meta_io.h"

namespace quill {

static void read_scalar(ByteReader & r, MetaType t, MetaValue & v, const char * field) {
    switch (t) {
        case MetaType::U8: v.u = r.read<uint8_t>(field); break;
        case MetaType::I8: v.i = r.read<int8_t>(field); break;
        case MetaType::U16: v.u = r.read<uint16_t>(field); break;
        case MetaType::I16: v.i = r.read<int16_t>(field); break;
        case MetaType::U32: v.u = r.read<uint32_t>(field); break;
        case MetaType::I32: v.i = r.read<int32_t>(field); break;
        case MetaType::U64: v.u = r.read<uint64_t>(field); break;
        case MetaType::I64: v.i = r.read<int64_t>(field); break;
        case MetaType::F32: v.f = r.read<float>(field); break;
        case MetaType::F64: v.f = r.read<double>(field); break;
        case MetaType::BOOL: v.i = r.read<uint8_t>(field) ? 1 : 0; break;
        case MetaType::STRING: v.s = r.read_string<uint64_t>(field); break;
        default: throw_error("%s: %s has unknown value type %u", r.what().c_str(), field, (unsigned) t);
    }
}

static size_t min_elem_size(MetaType t) {
    switch (t) {
        case MetaType::U8: case MetaType::I8: case MetaType::BOOL: return 1;
        case MetaType::U16: case MetaType::I16: return 2;
        case MetaType::U32: case MetaType::I32: case MetaType::F32: return 4;
        default: return 8;  // u64, i64, f64, and strings (their length)
    }
}

MetaValue read_meta_value(ByteReader & r, const std::string & key) {
    MetaValue v;
    uint32_t t = r.read<uint32_t>("metadata value type");
    if (t >= (uint32_t) MetaType::COUNT) throw_error("%s: metadata key '%s' has unknown value type %u", r.what().c_str(), key.c_str(), t);
    v.type = (MetaType) t;
    if (v.type != MetaType::ARRAY) {
        read_scalar(r, v.type, v, key.c_str());
        return v;
    }
    uint32_t et = r.read<uint32_t>("array element type");
    if (et >= (uint32_t) MetaType::COUNT || et == (uint32_t) MetaType::ARRAY)
        throw_error("%s: metadata key '%s' has unsupported array element type %u", r.what().c_str(), key.c_str(), et);
    v.elem = (MetaType) et;
    uint64_t n = r.read<uint64_t>("array length");
    if (n > r.remaining() / min_elem_size(v.elem))
        throw_error("%s: truncated or corrupt file: metadata key '%s' claims %llu array elements, more than the file holds", r.what().c_str(),
                    key.c_str(), (unsigned long long) n);
    MetaValue e;
    for (uint64_t k = 0; k < n; ++k) {
        read_scalar(r, v.elem, e, key.c_str());
        if (v.elem == MetaType::STRING) v.as.push_back(std::move(e.s));
        else if (meta_type_is_float(v.elem)) v.af.push_back(e.f);
        else if (v.elem == MetaType::U8 || v.elem == MetaType::U16 || v.elem == MetaType::U32 || v.elem == MetaType::U64) v.au.push_back(e.u);
        else v.ai.push_back(e.i);
    }
    return v;
}

static void write_scalar(std::string & out, MetaType t, int64_t i, uint64_t u, double f, const std::string & s) {
    switch (t) {
        case MetaType::U8: write_pod<uint8_t>(out, (uint8_t) u); break;
        case MetaType::I8: write_pod<int8_t>(out, (int8_t) i); break;
        case MetaType::U16: write_pod<uint16_t>(out, (uint16_t) u); break;
        case MetaType::I16: write_pod<int16_t>(out, (int16_t) i); break;
        case MetaType::U32: write_pod<uint32_t>(out, (uint32_t) u); break;
        case MetaType::I32: write_pod<int32_t>(out, (int32_t) i); break;
        case MetaType::U64: write_pod<uint64_t>(out, u); break;
        case MetaType::I64: write_pod<int64_t>(out, i); break;
        case MetaType::F32: write_pod<float>(out, (float) f); break;
        case MetaType::F64: write_pod<double>(out, f); break;
        case MetaType::BOOL: write_pod<uint8_t>(out, i ? 1 : 0); break;
        case MetaType::STRING: write_string(out, s); break;
        default: throw_error("cannot write metadata value of type %s", meta_type_name(t));
    }
}

void write_string(std::string & out, const std::string & s) {
    write_pod<uint64_t>(out, s.size());
    out += s;
}

void write_meta_value(std::string & out, const MetaValue & v) {
    write_pod<uint32_t>(out, (uint32_t) v.type);
    if (v.type != MetaType::ARRAY) {
        write_scalar(out, v.type, v.i, v.u, v.f, v.s);
        return;
    }
    write_pod<uint32_t>(out, (uint32_t) v.elem);
    write_pod<uint64_t>(out, v.array_size());
    static const std::string empty;
    for (size_t k = 0; k < v.array_size(); ++k) {
        if (v.elem == MetaType::STRING) write_scalar(out, v.elem, 0, 0, 0, v.as[k]);
        else if (meta_type_is_float(v.elem)) write_scalar(out, v.elem, 0, 0, v.af[k], empty);
        else if (!v.au.empty()) write_scalar(out, v.elem, 0, v.au[k], 0, empty);
        else write_scalar(out, v.elem, v.ai[k], (uint64_t) v.ai[k], 0, empty);
    }
}

}  // namespace quill
