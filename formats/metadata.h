// Typed key/value metadata, shared by every model reader and writer.
//
// Keys follow GGUF's names (general.architecture, llama.block_count, tokenizer.ggml.tokens, ...), so a quill file,
// a GGUF file and a converted llama2.c or Hugging Face model all describe themselves the same way, and the tokenizer
// and the model are built from metadata alone. The value type codes equal GGUF's, so both formats share them.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace quill {

enum class MetaType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7, STRING = 8, ARRAY = 9,
    U64 = 10, I64 = 11, F64 = 12,
    COUNT
};

const char * meta_type_name(MetaType t);
bool meta_type_is_int(MetaType t);
bool meta_type_is_float(MetaType t);
bool meta_type_is_unsigned(MetaType t);

// One value. Scalars keep their declared type; integers live in i (signed types and bool) or u (unsigned),
// floats in f. Arrays keep their element type in `elem` and their values in ai/au/af/as by element kind.
struct MetaValue {
    MetaType type = MetaType::U32;
    MetaType elem = MetaType::U32;  // element type, for ARRAY
    int64_t  i = 0;
    uint64_t u = 0;
    double   f = 0;
    std::string s;
    std::vector<int64_t>     ai;  // signed int and bool arrays
    std::vector<uint64_t>    au;  // unsigned int arrays
    std::vector<double>      af;  // float arrays
    std::vector<std::string> as;  // string arrays

    size_t array_size() const;
    // Scalar accessors that convert between numeric kinds; they throw quill::Error on a non-numeric value.
    int64_t  as_int() const;
    double   as_float() const;
    std::string to_string(size_t max_items = 8) const;  // for `quill info`

    static MetaValue of_u32(uint32_t v);
    static MetaValue of_i32(int32_t v);
    static MetaValue of_u64(uint64_t v);
    static MetaValue of_f32(float v);
    static MetaValue of_bool(bool v);
    static MetaValue of_str(std::string v);
    static MetaValue of_strs(std::vector<std::string> v);
    static MetaValue of_f32s(std::vector<double> v);
    static MetaValue of_i32s(std::vector<int64_t> v);
};

// Insertion-ordered map. Getters with a default never throw on a missing key; the *_req getters throw
// quill::Error naming the key when it is missing or has the wrong kind.
class Metadata {
public:
    void set(const std::string & key, MetaValue v);
    void erase(const std::string & key);
    bool has(const std::string & key) const;
    const MetaValue * find(const std::string & key) const;
    const std::vector<std::pair<std::string, MetaValue>> & items() const { return items_; }
    size_t size() const { return items_.size(); }

    int64_t     get_int(const std::string & key, int64_t def) const;
    double      get_float(const std::string & key, double def) const;
    bool        get_bool(const std::string & key, bool def) const;
    std::string get_str(const std::string & key, const std::string & def) const;

    int64_t     get_int_req(const std::string & key) const;
    double      get_float_req(const std::string & key) const;
    std::string get_str_req(const std::string & key) const;
    const std::vector<std::string> & get_strs_req(const std::string & key) const;

    // Convenience setters.
    void set_u32(const std::string & k, uint32_t v) { set(k, MetaValue::of_u32(v)); }
    void set_i32(const std::string & k, int32_t v) { set(k, MetaValue::of_i32(v)); }
    void set_f32(const std::string & k, float v) { set(k, MetaValue::of_f32(v)); }
    void set_bool(const std::string & k, bool v) { set(k, MetaValue::of_bool(v)); }
    void set_str(const std::string & k, std::string v) { set(k, MetaValue::of_str(std::move(v))); }

private:
    std::vector<std::pair<std::string, MetaValue>> items_;
    std::unordered_map<std::string, size_t> index_;
};

}  // namespace quill
