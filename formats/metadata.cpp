#include "formats/metadata.h"

#include "ggml-lite/common.h"

#include <cmath>

namespace quill {

const char * meta_type_name(MetaType t) {
    static const char * names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
                                   "u64", "i64", "f64"};
    uint32_t i = (uint32_t) t;
    return i < (uint32_t) MetaType::COUNT ? names[i] : "invalid";
}

bool meta_type_is_int(MetaType t) {
    switch (t) {
        case MetaType::U8: case MetaType::I8: case MetaType::U16: case MetaType::I16: case MetaType::U32:
        case MetaType::I32: case MetaType::U64: case MetaType::I64: case MetaType::BOOL: return true;
        default: return false;
    }
}

bool meta_type_is_float(MetaType t) { return t == MetaType::F32 || t == MetaType::F64; }

bool meta_type_is_unsigned(MetaType t) {
    return t == MetaType::U8 || t == MetaType::U16 || t == MetaType::U32 || t == MetaType::U64;
}

size_t MetaValue::array_size() const {
    if (type != MetaType::ARRAY) return 0;
    if (elem == MetaType::STRING) return as.size();
    if (meta_type_is_float(elem)) return af.size();
    if (meta_type_is_unsigned(elem)) return au.size();
    return ai.size();
}

int64_t MetaValue::as_int() const {
    if (meta_type_is_unsigned(type)) {
        if (u > (uint64_t) INT64_MAX) throw_error("metadata value %llu is too large", (unsigned long long) u);
        return (int64_t) u;
    }
    if (meta_type_is_int(type)) return i;
    if (meta_type_is_float(type)) {
        // A float converts only when it is a whole number in int64's range (1e30 or NaN to int64 is undefined).
        if (!(std::isfinite(f) && f >= -9.2e18 && f <= 9.2e18 && f == std::floor(f)))
            throw_error("metadata value %g is not an integer", f);
        return (int64_t) f;
    }
    throw_error("metadata value of type %s is not a number", meta_type_name(type));
}

double MetaValue::as_float() const {
    if (meta_type_is_float(type)) return f;
    if (meta_type_is_unsigned(type)) return (double) u;
    if (meta_type_is_int(type)) return (double) i;
    throw_error("metadata value of type %s is not a number", meta_type_name(type));
}

static std::string quote(const std::string & s, size_t max_len = 60) {
    std::string out = "\"";
    for (size_t k = 0; k < s.size() && k < max_len; ++k) {
        unsigned char c = (unsigned char) s[k];
        if (c == '\n') out += "\\n";
        else if (c == '"') out += "\\\"";
        else if (c < 0x20) out += strfmt("\\x%02x", c);
        else out += (char) c;
    }
    if (s.size() > max_len) out += "...";
    return out + "\"";
}

std::string MetaValue::to_string(size_t max_items) const {
    switch (type) {
        case MetaType::STRING: return quote(s);
        case MetaType::BOOL: return i ? "true" : "false";
        case MetaType::F32: case MetaType::F64: return strfmt("%g", f);
        case MetaType::ARRAY: {
            size_t n = array_size();
            std::string out = strfmt("%s[%zu] [", meta_type_name(elem), n);
            for (size_t k = 0; k < n && k < max_items; ++k) {
                if (k) out += ", ";
                if (elem == MetaType::STRING) out += quote(as[k], 20);
                else if (meta_type_is_float(elem)) out += strfmt("%g", af[k]);
                else if (meta_type_is_unsigned(elem)) out += strfmt("%llu", (unsigned long long) au[k]);
                else out += strfmt("%lld", (long long) ai[k]);
            }
            if (n > max_items) out += ", ...";
            return out + "]";
        }
        default:
            if (meta_type_is_unsigned(type)) return strfmt("%llu", (unsigned long long) u);
            return strfmt("%lld", (long long) i);
    }
}

MetaValue MetaValue::of_u32(uint32_t v) { MetaValue m; m.type = MetaType::U32; m.u = v; return m; }
MetaValue MetaValue::of_i32(int32_t v) { MetaValue m; m.type = MetaType::I32; m.i = v; return m; }
MetaValue MetaValue::of_u64(uint64_t v) { MetaValue m; m.type = MetaType::U64; m.u = v; return m; }
MetaValue MetaValue::of_f32(float v) { MetaValue m; m.type = MetaType::F32; m.f = v; return m; }
MetaValue MetaValue::of_bool(bool v) { MetaValue m; m.type = MetaType::BOOL; m.i = v ? 1 : 0; return m; }
MetaValue MetaValue::of_str(std::string v) { MetaValue m; m.type = MetaType::STRING; m.s = std::move(v); return m; }
MetaValue MetaValue::of_strs(std::vector<std::string> v) {
    MetaValue m; m.type = MetaType::ARRAY; m.elem = MetaType::STRING; m.as = std::move(v); return m;
}
MetaValue MetaValue::of_f32s(std::vector<double> v) {
    MetaValue m; m.type = MetaType::ARRAY; m.elem = MetaType::F32; m.af = std::move(v); return m;
}
MetaValue MetaValue::of_i32s(std::vector<int64_t> v) {
    MetaValue m; m.type = MetaType::ARRAY; m.elem = MetaType::I32; m.ai = std::move(v); return m;
}

void Metadata::set(const std::string & key, MetaValue v) {
    auto it = index_.find(key);
    if (it != index_.end()) {
        items_[it->second].second = std::move(v);
        return;
    }
    index_[key] = items_.size();
    items_.emplace_back(key, std::move(v));
}

void Metadata::erase(const std::string & key) {
    auto it = index_.find(key);
    if (it == index_.end()) return;
    items_.erase(items_.begin() + (ptrdiff_t) it->second);
    index_.clear();
    for (size_t k = 0; k < items_.size(); ++k) index_[items_[k].first] = k;
}

bool Metadata::has(const std::string & key) const { return index_.count(key) != 0; }

const MetaValue * Metadata::find(const std::string & key) const {
    auto it = index_.find(key);
    return it == index_.end() ? nullptr : &items_[it->second].second;
}

int64_t Metadata::get_int(const std::string & key, int64_t def) const {
    const MetaValue * v = find(key);
    if (!v || !(meta_type_is_int(v->type) || meta_type_is_float(v->type))) return def;
    try {
        return v->as_int();
    } catch (const Error & e) {
        throw_error("metadata key '%s': %s", key.c_str(), e.what());
    }
}

double Metadata::get_float(const std::string & key, double def) const {
    const MetaValue * v = find(key);
    if (!v || !(meta_type_is_int(v->type) || meta_type_is_float(v->type))) return def;
    return v->as_float();
}

bool Metadata::get_bool(const std::string & key, bool def) const {
    const MetaValue * v = find(key);
    if (!v || !meta_type_is_int(v->type)) return def;
    return v->as_int() != 0;
}

std::string Metadata::get_str(const std::string & key, const std::string & def) const {
    const MetaValue * v = find(key);
    if (!v || v->type != MetaType::STRING) return def;
    return v->s;
}

int64_t Metadata::get_int_req(const std::string & key) const {
    const MetaValue * v = find(key);
    if (!v) throw_error("missing metadata key '%s'", key.c_str());
    if (!meta_type_is_int(v->type)) throw_error("metadata key '%s' has type %s, expected an integer", key.c_str(), meta_type_name(v->type));
    try {
        return v->as_int();
    } catch (const Error & e) {
        throw_error("metadata key '%s': %s", key.c_str(), e.what());
    }
}

double Metadata::get_float_req(const std::string & key) const {
    const MetaValue * v = find(key);
    if (!v) throw_error("missing metadata key '%s'", key.c_str());
    if (!meta_type_is_int(v->type) && !meta_type_is_float(v->type))
        throw_error("metadata key '%s' has type %s, expected a number", key.c_str(), meta_type_name(v->type));
    return v->as_float();
}

std::string Metadata::get_str_req(const std::string & key) const {
    const MetaValue * v = find(key);
    if (!v) throw_error("missing metadata key '%s'", key.c_str());
    if (v->type != MetaType::STRING) throw_error("metadata key '%s' has type %s, expected a string", key.c_str(), meta_type_name(v->type));
    return v->s;
}

const std::vector<std::string> & Metadata::get_strs_req(const std::string & key) const {
    const MetaValue * v = find(key);
    if (!v) throw_error("missing metadata key '%s'", key.c_str());
    if (v->type != MetaType::ARRAY || v->elem != MetaType::STRING)
        throw_error("metadata key '%s' is not an array of strings", key.c_str());
    return v->as;
}

}  // namespace quill
