#include "ggml-lite/backend.h"

#include "ggml-lite/common.h"

#include <cstdlib>
#include <cstring>

#include <sys/mman.h>

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
    // Large buffers (weights regrouped at load, KV caches) on 2 MiB boundaries, asking for transparent huge pages:
    // decode streams them, and with 4 KiB pages every 4 KiB of every stream is a TLB miss (a two-level walk in a VM).
    const size_t huge = (size_t) 2 << 20;
    const size_t align = bytes >= 4 * huge ? huge : 64;
    const size_t rounded = (bytes + align - 1) / align * align;
    data_ = std::aligned_alloc(align, rounded);
    if (!data_) quill::throw_error("out of memory allocating a %zu-byte %s buffer", bytes, gl_backend_name(backend));
    if (align == huge) madvise(data_, rounded, MADV_HUGEPAGE);  // advice only: without THP the buffer still works
    std::memset(data_, 0, rounded);
    size_ = bytes;
}

void gl_buffer::release() {
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
}
