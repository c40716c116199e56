// The per-row types (ggml-lite/types.h): the scalar reference every SIMD kernel is tested against.
#include "ggml-lite/rowq.h"

#include "ggml-lite/common.h"
#include "ggml-lite/rowq_common.h"

#include <algorithm>
#include <cmath>
#include <cstring>

void gl_q4_row_code_pos(int64_t n, int64_t i, int64_t * byte, bool * high) {
    // chunks of 128, then 64, then 32
    int64_t c0 = i / 128 * 128, m = 128;
    if (n - c0 < 128) {
        const int64_t rest = n - c0, off = i - c0;
        if (rest >= 64 && off < 64) m = 64;
        else {
            m = 32;
            if (rest >= 64) c0 += 64;
        }
    }
    const int64_t j = i - c0;
    *byte = c0 / 2 + (j < m / 2 ? j : j - m / 2);
    *high = j >= m / 2;
}

gl_row_header gl_row_header_make(uint16_t d16, uint8_t z, int32_t qsum) {
    gl_row_header h;
    memset(&h, 0, sizeof h);
    h.d = d16;
    h.z = z;
    h.qsum = qsum;
    return h;
}

void gl_row_pack(int bits, int64_t n, const uint8_t * codes, uint16_t d16, uint8_t z, void * dst) {
    GL_ASSERT((bits == 4 || bits == 8) && n % 32 == 0);
    uint8_t * out = (uint8_t *) dst;
    int32_t qsum = 0;
    for (int64_t i = 0; i < n; ++i) qsum += codes[i];
    const gl_row_header h = gl_row_header_make(d16, z, qsum);
    memcpy(out, &h, sizeof h);
    uint8_t * q = out + GL_ROW_HEADER_W;
    if (bits == 8) {
        memcpy(q, codes, (size_t) n);
        return;
    }
    memset(q, 0, (size_t) (n / 2));
    for (int64_t i = 0; i < n; ++i) {
        int64_t b;
        bool hi;
        gl_q4_row_code_pos(n, i, &b, &hi);
        q[b] |= (uint8_t) ((codes[i] & 0x0F) << (hi ? 4 : 0));
    }
}

void gl_row_unpack(int bits, int64_t n, const void * src, uint8_t * codes, uint16_t * d16, uint8_t * z) {
    GL_ASSERT((bits == 4 || bits == 8) && n % 32 == 0);
    gl_row_header h;
    memcpy(&h, src, sizeof h);
    if (d16) *d16 = h.d;
    if (z) *z = h.z;
    const uint8_t * q = (const uint8_t *) src + GL_ROW_HEADER_W;
    if (bits == 8) {
        memcpy(codes, q, (size_t) n);
        return;
    }
    for (int64_t i = 0; i < n; ++i) {
        int64_t b;
        bool hi;
        gl_q4_row_code_pos(n, i, &b, &hi);
        codes[i] = hi ? (uint8_t) (q[b] >> 4) : (uint8_t) (q[b] & 0x0F);
    }
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
    uint8_t codes[256];
    // in pieces of 256 codes (rows can be long): pack the whole row code by code
    uint8_t * out = (uint8_t *) vy;
    int32_t qsum = 0;
    uint8_t * q = out + GL_ROW_HEADER_W;
    if (BITS == 4) memset(q, 0, (size_t) (n / 2));
    for (int64_t i0 = 0; i0 < n; i0 += 256) {
        const int64_t m = std::min<int64_t>(256, n - i0);
        for (int64_t j = 0; j < m; ++j) {
            codes[j] = (uint8_t) gl_intq_code(x[i0 + j], p, BITS);
            qsum += codes[j];
            if (BITS == 8) {
                q[i0 + j] = codes[j];
            } else {
                int64_t b;
                bool hi;
                gl_q4_row_code_pos(n, i0 + j, &b, &hi);
                q[b] |= (uint8_t) (codes[j] << (hi ? 4 : 0));
            }
        }
    }
    const gl_row_header h = gl_row_header_make(p.d16, p.z, qsum);
    memcpy(out, &h, sizeof h);
}

void q4_row_from_float(const float * x, void * y, int64_t n) { row_from_float<4>(x, y, n); }
void q8_row_from_float(const float * x, void * y, int64_t n) { row_from_float<8>(x, y, n); }

// code i of a q4 row, walking the chunks in order (chunk c0 of m codes)
template <class F> static void q4_row_walk(int64_t n, const uint8_t * q, F && f) {
    int64_t c0 = 0;
    while (c0 < n) {
        const int64_t m = n - c0 >= 128 ? 128 : (n - c0 >= 64 ? 64 : 32);
        const uint8_t * b = q + c0 / 2;
        for (int64_t j = 0; j < m / 2; ++j) {
            f(c0 + j, b[j] & 0x0F);
            f(c0 + m / 2 + j, b[j] >> 4);
        }
        c0 += m;
    }
}

void q4_row_to_float(const void * vx, float * y, int64_t n) {
    gl_row_header h;
    memcpy(&h, vx, sizeof h);
    const float d = gl_fp16_to_fp32(h.d);
    const int z = h.z;
    q4_row_walk(n, (const uint8_t *) vx + GL_ROW_HEADER_W, [&](int64_t i, int c) { y[i] = d * (float) (c - z); });
}

void q8_row_to_float(const void * vx, float * y, int64_t n) {
    gl_row_header h;
    memcpy(&h, vx, sizeof h);
    const float d = gl_fp16_to_fp32(h.d);
    const uint8_t * q = (const uint8_t *) vx + GL_ROW_HEADER_W;
    for (int64_t i = 0; i < n; ++i) y[i] = d * (float) ((int) q[i] - (int) h.z);
}

// Float activations: d · Σ (code − z)·x, summed in float in order.
void q4_row_vec_dot_f32(int64_t n, float * s, const void * vx, const void * vy) {
    gl_row_header h;
    memcpy(&h, vx, sizeof h);
    const float * y = (const float *) vy;
    const int z = h.z;
    // codes in natural order first (the walk visits a chunk's two halves interleaved)
    float sum = 0.0f;
    uint8_t c[128];
    const uint8_t * q = (const uint8_t *) vx + GL_ROW_HEADER_W;
    int64_t c0 = 0;
    while (c0 < n) {
        const int64_t m = n - c0 >= 128 ? 128 : (n - c0 >= 64 ? 64 : 32);
        for (int64_t j = 0; j < m / 2; ++j) {
            c[j] = q[c0 / 2 + j] & 0x0F;
            c[m / 2 + j] = q[c0 / 2 + j] >> 4;
        }
        for (int64_t j = 0; j < m; ++j) sum += (float) ((int) c[j] - z) * y[c0 + j];
        c0 += m;
    }
    *s = gl_fp16_to_fp32(h.d) * sum;
}

void q8_row_vec_dot_f32(int64_t n, float * s, const void * vx, const void * vy) {
    gl_row_header h;
    memcpy(&h, vx, sizeof h);
    const float * y = (const float *) vy;
    const uint8_t * q = (const uint8_t *) vx + GL_ROW_HEADER_W;
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += (float) ((int) q[i] - (int) h.z) * y[i];
    *s = gl_fp16_to_fp32(h.d) * sum;
}

void q4_row_vec_dot_a8(int64_t n, float * s, const void * vx, const void * vy) {
    const int8_t * c = (const int8_t *) ((const uint8_t *) vy + GL_ROW_HEADER_A);
    int64_t dot = 0;
    q4_row_walk(n, (const uint8_t *) vx + GL_ROW_HEADER_W, [&](int64_t i, int q) { dot += q * (int32_t) c[i]; });
    *s = row_dot_a8(n, vx, vy, dot);
}

void q8_row_vec_dot_a8(int64_t n, float * s, const void * vx, const void * vy) {
    const uint8_t * q = (const uint8_t *) vx + GL_ROW_HEADER_W;
    const int8_t * c = (const int8_t *) ((const uint8_t *) vy + GL_ROW_HEADER_A);
    int64_t dot = 0;
    for (int64_t i = 0; i < n; ++i) dot += (int32_t) q[i] * (int32_t) c[i];
    *s = row_dot_a8(n, vx, vy, dot);
}
