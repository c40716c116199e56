// The per-row types (ggml-lite/types.h): the scalar reference every SIMD kernel is tested against.
#include "ggml-lite/rowq.h"

#include "ggml-lite/common.h"
#include "ggml-lite/rowq_common.h"

#include <algorithm>
#include <cmath>
#include <cstring>

// Chunks of a row of n codes (n a multiple of 32): 128s, then a 64 and/or a 32.
static int chunk_len(int64_t n, int64_t c0) { return n - c0 >= 128 ? 128 : (n - c0 >= 64 ? 64 : 32); }

// The m codes of the chunk whose packed bytes start at b (types.h: m/2 bytes for b = 4, 3m/8 for b = 3, m for 8).
template <int BITS> static void decode_chunk(const uint8_t * b, int m, uint8_t * c) {
    if (BITS == 8) {
        memcpy(c, b, (size_t) m);
    } else if (BITS == 4) {
        for (int j = 0; j < m / 2; ++j) {
            c[j] = b[j] & 0x0F;
            c[m / 2 + j] = b[j] >> 4;
        }
    } else {
        const int P = m / 4, Q = m / 8;
        for (int j = 0; j < m; ++j) c[j] = (uint8_t) (((b[j % P] >> (2 * (j / P))) & 3) | (((b[P + j % Q] >> (j / Q)) & 1) << 2));
    }
}
template <int BITS> static void encode_chunk(const uint8_t * c, int m, uint8_t * b) {
    if (BITS == 8) {
        memcpy(b, c, (size_t) m);
    } else if (BITS == 4) {
        for (int j = 0; j < m / 2; ++j) b[j] = (uint8_t) ((c[j] & 0x0F) | (c[m / 2 + j] & 0x0F) << 4);
    } else {
        const int P = m / 4, Q = m / 8;
        memset(b, 0, (size_t) (P + Q));
        for (int j = 0; j < m; ++j) {
            b[j % P] |= (uint8_t) ((c[j] & 3) << (2 * (j / P)));
            b[P + j % Q] |= (uint8_t) (((c[j] >> 2) & 1) << (j / Q));
        }
    }
}

// f(c0, m, codes) for every chunk of a packed row, its codes in natural order.
template <int BITS, class F> static void row_chunks(int64_t n, const uint8_t * q, F && f) {
    uint8_t c[128];
    for (int64_t c0 = 0; c0 < n;) {
        const int m = chunk_len(n, c0);
        decode_chunk<BITS>(q + c0 * BITS / 8, m, c);
        f(c0, m, (const uint8_t *) c);
        c0 += m;
    }
}

gl_row_header gl_row_header_make(uint16_t d16, uint8_t z, int32_t qsum) {
    gl_row_header h;
    memset(&h, 0, sizeof h);
    h.d = d16;
    h.z = z;
    h.qsum = qsum;
    return h;
}

template <int BITS> static void pack_codes(int64_t n, const uint8_t * codes, uint8_t * q) {
    for (int64_t c0 = 0; c0 < n;) {
        const int m = chunk_len(n, c0);
        encode_chunk<BITS>(codes + c0, m, q + c0 * BITS / 8);
        c0 += m;
    }
}

void gl_row_pack(int bits, int64_t n, const uint8_t * codes, uint16_t d16, uint8_t z, void * dst) {
    GL_ASSERT((bits == 3 || bits == 4 || bits == 8) && n % 32 == 0);
    uint8_t * out = (uint8_t *) dst;
    int32_t qsum = 0;
    for (int64_t i = 0; i < n; ++i) qsum += codes[i];
    const gl_row_header h = gl_row_header_make(d16, z, qsum);
    memcpy(out, &h, sizeof h);
    uint8_t * q = out + GL_ROW_HEADER_W;
    if (bits == 8) pack_codes<8>(n, codes, q);
    else if (bits == 4) pack_codes<4>(n, codes, q);
    else pack_codes<3>(n, codes, q);
}

void gl_row_unpack(int bits, int64_t n, const void * src, uint8_t * codes, uint16_t * d16, uint8_t * z) {
    GL_ASSERT((bits == 3 || bits == 4 || bits == 8) && n % 32 == 0);
    gl_row_header h;
    memcpy(&h, src, sizeof h);
    if (d16) *d16 = h.d;
    if (z) *z = h.z;
    const uint8_t * q = (const uint8_t *) src + GL_ROW_HEADER_W;
    auto put = [&](int64_t c0, int m, const uint8_t * c) { memcpy(codes + c0, c, (size_t) m); };
    if (bits == 8) row_chunks<8>(n, q, put);
    else if (bits == 4) row_chunks<4>(n, q, put);
    else row_chunks<3>(n, q, put);
}

// ---- activations: int8 per token --------------------------------------------------------------------------------
// The row's range (forced to include 0, so that zeros are exact) over 255 steps (rowq_common.h: a8_grid, a8_code);
// the SIMD quantizers run the same float operations (bit-identical).
void a8_row_from_float(const float * x, void * vy, int64_t n) {
    int8_t * c = (int8_t *) ((uint8_t *) vy + GL_ROW_HEADER_A);
    float mn = 0.0f, mx = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        mn = fminf(mn, x[i]);
        mx = fmaxf(mx, x[i]);
    }
    const A8Grid g = a8_grid(mn, mx);
    int32_t csum = 0;
    for (int64_t i = 0; i < n && !g.zero; ++i) {
        c[i] = a8_code(x[i], g);
        csum += c[i];
    }
    a8_finish_row(vy, n, g, csum);
}

void a8_row_from_float_grid(const float * x, void * vy, int64_t n, float s, int32_t z) {
    int8_t * c = (int8_t *) ((uint8_t *) vy + GL_ROW_HEADER_A);
    const A8Grid g = a8_grid_static(s, z);
    int32_t csum = 0;
    for (int64_t i = 0; i < n; ++i) {
        c[i] = a8_code(x[i], g);
        csum += c[i];
    }
    a8_finish_row(vy, n, g, csum);
}

void a8_row_to_float(const void * vx, float * y, int64_t n) {
    gl_row_header_a8 h;
    memcpy(&h, vx, sizeof h);
    const int8_t * c = (const int8_t *) ((const uint8_t *) vx + GL_ROW_HEADER_A);
    for (int64_t i = 0; i < n; ++i) y[i] = h.s * (float) ((int64_t) c[i] - h.z);  // z comes from a file: any int32
}

void a8_row_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    gl_row_header_a8 a, b;
    memcpy(&a, vx, sizeof a);
    memcpy(&b, vy, sizeof b);
    const int8_t * x = (const int8_t *) ((const uint8_t *) vx + GL_ROW_HEADER_A);
    const int8_t * y = (const int8_t *) ((const uint8_t *) vy + GL_ROW_HEADER_A);
    int64_t dot = 0;
    for (int64_t i = 0; i < n; ++i) dot += (int32_t) x[i] * (int32_t) y[i];
    const int64_t total = a8_total(dot, n, a.z, a.csum, b.z, b.csum);
    *s = a.s * b.s * (float) total;
}

// ---- weights ------------------------------------------------------------------------------------------------------

template <int BITS> static void row_from_float(const float * x, void * vy, int64_t n) {
    const gl_intq_params p = gl_intq_fit(x, n, BITS);
    uint8_t codes[128];
    uint8_t * out = (uint8_t *) vy;
    uint8_t * q = out + GL_ROW_HEADER_W;
    int32_t qsum = 0;
    for (int64_t c0 = 0; c0 < n;) {
        const int m = chunk_len(n, c0);
        for (int j = 0; j < m; ++j) {
            codes[j] = (uint8_t) gl_intq_code(x[c0 + j], p, BITS);
            qsum += codes[j];
        }
        encode_chunk<BITS>(codes, m, q + c0 * BITS / 8);
        c0 += m;
    }
    const gl_row_header h = gl_row_header_make(p.d16, p.z, qsum);
    memcpy(out, &h, sizeof h);
}

template <int BITS> static void row_to_float(const void * vx, float * y, int64_t n) {
    gl_row_header h;
    memcpy(&h, vx, sizeof h);
    const float d = gl_fp16_to_fp32(h.d);
    const int z = h.z;
    row_chunks<BITS>(n, (const uint8_t *) vx + GL_ROW_HEADER_W, [&](int64_t c0, int m, const uint8_t * c) {
        for (int j = 0; j < m; ++j) y[c0 + j] = d * (float) ((int) c[j] - z);
    });
}

// Float activations: d · Σ (code − z)·x, summed in float in order.
template <int BITS> static void row_vec_dot_f32(int64_t n, float * s, const void * vx, const void * vy) {
    gl_row_header h;
    memcpy(&h, vx, sizeof h);
    const float * y = (const float *) vy;
    const int z = h.z;
    float sum = 0.0f;
    row_chunks<BITS>(n, (const uint8_t *) vx + GL_ROW_HEADER_W, [&](int64_t c0, int m, const uint8_t * c) {
        for (int j = 0; j < m; ++j) sum += (float) ((int) c[j] - z) * y[c0 + j];
    });
    *s = gl_fp16_to_fp32(h.d) * sum;
}

template <int BITS> static void row_vec_dot_a8(int64_t n, float * s, const void * vx, const void * vy) {
    const int8_t * a = (const int8_t *) ((const uint8_t *) vy + GL_ROW_HEADER_A);
    int64_t dot = 0;
    row_chunks<BITS>(n, (const uint8_t *) vx + GL_ROW_HEADER_W, [&](int64_t c0, int m, const uint8_t * c) {
        for (int j = 0; j < m; ++j) dot += (int32_t) c[j] * (int32_t) a[c0 + j];
    });
    *s = row_dot_a8(n, vx, vy, dot);
}

void q3_row_from_float(const float * x, void * y, int64_t n) { row_from_float<3>(x, y, n); }
void q4_row_from_float(const float * x, void * y, int64_t n) { row_from_float<4>(x, y, n); }
void q8_row_from_float(const float * x, void * y, int64_t n) { row_from_float<8>(x, y, n); }
void q3_row_to_float(const void * x, float * y, int64_t n) { row_to_float<3>(x, y, n); }
void q4_row_to_float(const void * x, float * y, int64_t n) { row_to_float<4>(x, y, n); }
void q8_row_to_float(const void * x, float * y, int64_t n) { row_to_float<8>(x, y, n); }
void q3_row_vec_dot_f32(int64_t n, float * s, const void * x, const void * y) { row_vec_dot_f32<3>(n, s, x, y); }
void q4_row_vec_dot_f32(int64_t n, float * s, const void * x, const void * y) { row_vec_dot_f32<4>(n, s, x, y); }
void q8_row_vec_dot_f32(int64_t n, float * s, const void * x, const void * y) { row_vec_dot_f32<8>(n, s, x, y); }
void q3_row_vec_dot_a8(int64_t n, float * s, const void * x, const void * y) { row_vec_dot_a8<3>(n, s, x, y); }
void q4_row_vec_dot_a8(int64_t n, float * s, const void * x, const void * y) { row_vec_dot_a8<4>(n, s, x, y); }
void q8_row_vec_dot_a8(int64_t n, float * s, const void * x, const void * y) { row_vec_dot_a8<8>(n, s, x, y); }
