// The backend seam: where activations and the KV cache live, and who runs the ops on them.
//
// Today the only backend is the CPU (host memory, kernels picked per CPU level in ggml-lite/cpu.cpp). Model code
// allocates every buffer of the forward pass through gl_buffer, never with new/vector, so that a device backend can
// place them in its own memory; the ops of ggml-lite/ops.h are the only code that touches their contents.
#pragma once

#include <cstddef>
#include <cstdint>

enum gl_backend_kind {
    GL_BACKEND_CPU = 0,
};

const char * gl_backend_name(gl_backend_kind b);

// A zeroed buffer of `bytes` bytes in a backend's memory (64-byte aligned on the CPU). Move-only; freed with it.
class gl_buffer {
public:
    gl_buffer() = default;
    explicit gl_buffer(size_t bytes, gl_backend_kind backend = GL_BACKEND_CPU) { alloc(bytes, backend); }
    ~gl_buffer() { release(); }
    gl_buffer(gl_buffer && o) noexcept { *this = static_cast<gl_buffer &&>(o); }
    gl_buffer & operator=(gl_buffer && o) noexcept;
    gl_buffer(const gl_buffer &) = delete;
    gl_buffer & operator=(const gl_buffer &) = delete;

    // Replaces the contents with `bytes` zeroed bytes.
    void alloc(size_t bytes, gl_backend_kind backend = GL_BACKEND_CPU);
    void release();

    void *          data() { return data_; }
    const void *    data() const { return data_; }
    float *         f32() { return static_cast<float *>(data_); }
    const float *   f32() const { return static_cast<const float *>(data_); }
    uint8_t *       u8() { return static_cast<uint8_t *>(data_); }
    const uint8_t * u8() const { return static_cast<const uint8_t *>(data_); }
    size_t          size() const { return size_; }
    gl_backend_kind backend() const { return backend_; }

private:
    void *          data_ = nullptr;
    size_t          size_ = 0;
    gl_backend_kind backend_ = GL_BACKEND_CPU;
};
