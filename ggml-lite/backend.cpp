#include "ggml-lite/backend.h"

#include "ggml-lite/common.h"

#include <cstdlib>
#include <cstring>

const char * gl_backend_name(gl_backend_kind b) {
    switch (b) {
        case GL_BACKEND_CPU: return "cpu";
    }
    return "invalid";
}

gl_buffer & gl_buffer::operator=(gl_buffer && o) noexcept {
    if (this != &o) {
        release();
        data_ = o.data_;
        size_ = o.size_;
        backend_ = o.backend_;
        o.data_ = nullptr;
        o.size_ = 0;
    }
    return *this;
}

void gl_buffer::alloc(size_t bytes, gl_backend_kind backend) {
    release();
    backend_ = backend;
    if (bytes == 0) return;
    GL_ASSERT(backend == GL_BACKEND_CPU);
    const size_t rounded = (bytes + 63) / 64 * 64;
    data_ = std::aligned_alloc(64, rounded);
    if (!data_) quill::throw_error("out of memory allocating a %zu-byte %s buffer", bytes, gl_backend_name(backend));
    std::memset(data_, 0, rounded);
    size_ = bytes;
}

void gl_buffer::release() {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
}
