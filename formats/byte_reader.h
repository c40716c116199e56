// Bounds-checked little-endian cursor over untrusted bytes. Every read checks the remaining size first and
// throws quill::Error naming the file and what was being read, so parsers never read past the end.
#pragma once

#include "ggml-lite/common.h"

#include <cstdint>
#include <cstring>
#include <string>

namespace quill {

class ByteReader {
public:
    ByteReader(const uint8_t * data, size_t size, std::string what) : data_(data), size_(size), what_(std::move(what)) {}

    size_t pos() const { return pos_; }
    size_t size() const { return size_; }
    size_t remaining() const { return size_ - pos_; }
    const uint8_t * ptr() const { return data_ + pos_; }

    void need(size_t n, const char * field) const {
        if (n > remaining())
            throw_error("%s: truncated file: %s needs %zu bytes at offset %zu, only %zu left", what_.c_str(), field, n, pos_, remaining());
    }
    void skip(size_t n, const char * field) { need(n, field); pos_ += n; }
    void seek(size_t p, const char * field) {
        if (p > size_) throw_error("%s: %s offset %zu is past the end of the file (%zu bytes)", what_.c_str(), field, p, size_);
        pos_ = p;
    }

    template <typename T> T read(const char * field) {
        need(sizeof(T), field);
        T v;
        memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    // A string as u64 length + bytes (GGUF) or u32 length + bytes (quill), capped at max_len.
    template <typename LenT> std::string read_string(const char * field, size_t max_len = (size_t) 1 << 30) {
        LenT len = read<LenT>(field);
        if ((uint64_t) len > max_len) throw_error("%s: %s has absurd length %llu", what_.c_str(), field, (unsigned long long) len);
        need((size_t) len, field);
        std::string s((const char *) data_ + pos_, (size_t) len);
        pos_ += (size_t) len;
        return s;
    }

    const std::string & what() const { return what_; }

private:
    const uint8_t * data_;
    size_t size_;
    size_t pos_ = 0;
    std::string what_;
};

}  // namespace quill
