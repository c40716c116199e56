// Type traits and the scalar reference kernels of every type.
//
// The scalar code here is the ground truth: SIMD and CUDA kernels are correct only when they match it.
// Q8_0 and Q4_0 quantizers are bit-exact with ggml's reference quantizers, so files converted by quill and by
// llama.cpp hold the same bytes, and activations are quantized the way llama.cpp quantizes them.
#include "ggml-lite/types.h"

#include "ggml-lite/common.h"
#include "ggml-lite/rowq.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <strings.h>

#include <vector>

// ---- scalar conversions ---------------------------------------------------------------------------------------

static inline uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float gl_fp16_to_fp32_ref(uint16_t h) {
    uint32_t sign = (uint32_t) (h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | (man << 13));  // inf / nan
    if (exp == 0) {
        if (man == 0) return bits_f32(sign);
        // subnormal: man * 2^-24, exact in fp32
        float v = (float) man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

// Every fp16 value widened once at start-up: the hot paths look it up instead of decoding bits.
float gl_fp16_table[1 << 16];
static const bool g_fp16_table_ready = [] {
    for (uint32_t h = 0; h < (1u << 16); ++h) gl_fp16_table[h] = gl_fp16_to_fp32_ref((uint16_t) h);
    return true;
}();

uint16_t gl_fp32_to_fp16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t) ((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffff;
    if (ax >= 0x7f800000) return sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0);  // inf, nan (quiet)
    if (ax >= 0x477ff000) return sign | 0x7c00;                                   // >= 65520 rounds to inf
    if (ax < 0x38800000) {                                                        // below 2^-14: subnormal
        if (ax <= 0x33000000) return sign;                                        // <= 2^-25 rounds to 0
        uint32_t e = ax >> 23;
        uint32_t m = (ax & 0x7fffff) | 0x800000;  // value = m * 2^(e-150), result unit 2^-24
        uint32_t shift = 126 - e;                 // 14..24
        uint32_t r = m >> shift;
        uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return sign | (uint16_t) r;
    }
    uint32_t r = (ax >> 13) - ((127 - 15) << 10);
    uint32_t rem = ax & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (r & 1))) r++;
    return sign | (uint16_t) r;
}

float gl_bf16_to_fp32(uint16_t h) { return bits_f32((uint32_t) h << 16); }

uint16_t gl_fp32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffff) > 0x7f800000) return (uint16_t) ((u >> 16) | 64);  // quiet nan
    return (uint16_t) ((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

// ---- F32 ------------------------------------------------------------------------------------------------------

static void f32_to_float(const void * x, float * y, int64_t n) { memcpy(y, x, (size_t) n * sizeof(float)); }
static void f32_from_float(const float * x, void * y, int64_t n) { memcpy(y, x, (size_t) n * sizeof(float)); }

// Products in float, sum in double: the most accurate order, independent of vector width.
static void f32_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const float * x = (const float *) vx;
    const float * y = (const float *) vy;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += (double) (x[i] * y[i]);
    *s = (float) sum;
}

// ---- F16 ------------------------------------------------------------------------------------------------------

static void f16_to_float(const void * x, float * y, int64_t n) {
    const uint16_t * h = (const uint16_t *) x;
    for (int64_t i = 0; i < n; ++i) y[i] = gl_fp16_to_fp32(h[i]);
}
static void f16_from_float(const float * x, void * y, int64_t n) {
    uint16_t * h = (uint16_t *) y;
    for (int64_t i = 0; i < n; ++i) h[i] = gl_fp32_to_fp16(x[i]);
}
static void f16_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const uint16_t * x = (const uint16_t *) vx;
    const uint16_t * y = (const uint16_t *) vy;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += (double) (gl_fp16_to_fp32(x[i]) * gl_fp16_to_fp32(y[i]));
    *s = (float) sum;
}

// ---- BF16 -----------------------------------------------------------------------------------------------------

static void bf16_to_float(const void * x, float * y, int64_t n) {
    const uint16_t * h = (const uint16_t *) x;
    for (int64_t i = 0; i < n; ++i) y[i] = gl_bf16_to_fp32(h[i]);
}
static void bf16_from_float(const float * x, void * y, int64_t n) {
    uint16_t * h = (uint16_t *) y;
    for (int64_t i = 0; i < n; ++i) h[i] = gl_fp32_to_bf16(x[i]);
}
static void bf16_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const uint16_t * x = (const uint16_t *) vx;
    const uint16_t * y = (const uint16_t *) vy;
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += (double) (gl_bf16_to_fp32(x[i]) * gl_bf16_to_fp32(y[i]));
    *s = (float) sum;
}

// ---- Q8_0 -----------------------------------------------------------------------------------------------------

static void q8_0_to_float(const void * vx, float * y, int64_t n) {
    const gl_block_q8_0 * x = (const gl_block_q8_0 *) vx;
    for (int64_t b = 0; b < n / GL_QK8_0; ++b) {
        const float d = gl_fp16_to_fp32(x[b].d);
        for (int j = 0; j < GL_QK8_0; ++j) y[b * GL_QK8_0 + j] = x[b].qs[j] * d;
    }
}

// d = max|x| / 127 stored as fp16; q = round(x / d) using the unrounded d (as ggml does).
static void q8_0_from_float(const float * x, void * vy, int64_t n) {
    gl_block_q8_0 * y = (gl_block_q8_0 *) vy;
    for (int64_t b = 0; b < n / GL_QK8_0; ++b) {
        const float * xb = x + b * GL_QK8_0;
        float amax = 0.0f;
        for (int j = 0; j < GL_QK8_0; ++j) amax = fmaxf(amax, fabsf(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = gl_fp32_to_fp16(d);
        for (int j = 0; j < GL_QK8_0; ++j) y[b].qs[j] = (int8_t) roundf(xb[j] * id);
    }
}

static void q8_0_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const gl_block_q8_0 * x = (const gl_block_q8_0 *) vx;
    const gl_block_q8_0 * y = (const gl_block_q8_0 *) vy;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / GL_QK8_0; ++b) {
        int32_t sumi = 0;
        for (int j = 0; j < GL_QK8_0; ++j) sumi += (int32_t) x[b].qs[j] * (int32_t) y[b].qs[j];
        sum += (float) sumi * (gl_fp16_to_fp32(x[b].d) * gl_fp16_to_fp32(y[b].d));
    }
    *s = sum;
}

// ---- Q4_0 -----------------------------------------------------------------------------------------------------

static void q4_0_to_float(const void * vx, float * y, int64_t n) {
    const gl_block_q4_0 * x = (const gl_block_q4_0 *) vx;
    for (int64_t b = 0; b < n / GL_QK4_0; ++b) {
        const float d = gl_fp16_to_fp32(x[b].d);
        for (int j = 0; j < GL_QK4_0 / 2; ++j) {
            y[b * GL_QK4_0 + j] = ((x[b].qs[j] & 0x0f) - 8) * d;
            y[b * GL_QK4_0 + j + GL_QK4_0 / 2] = ((x[b].qs[j] >> 4) - 8) * d;
        }
    }
}

// d = (the value of largest magnitude, with its sign) / -8, so that value maps to code 0 exactly;
// code = min(15, trunc(x/d + 8.5)).
static void q4_0_from_float(const float * x, void * vy, int64_t n) {
    gl_block_q4_0 * y = (gl_block_q4_0 *) vy;
    for (int64_t b = 0; b < n / GL_QK4_0; ++b) {
        const float * xb = x + b * GL_QK4_0;
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < GL_QK4_0; ++j) {
            if (amax < fabsf(xb[j])) { amax = fabsf(xb[j]); max = xb[j]; }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[b].d = gl_fp32_to_fp16(d);
        for (int j = 0; j < GL_QK4_0 / 2; ++j) {
            int q0 = (int8_t) (xb[j] * id + 8.5f);
            int q1 = (int8_t) (xb[j + GL_QK4_0 / 2] * id + 8.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            y[b].qs[j] = (uint8_t) (q0 | (q1 << 4));
        }
    }
}

static void q4_0_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    const gl_block_q4_0 * x = (const gl_block_q4_0 *) vx;
    const gl_block_q8_0 * y = (const gl_block_q8_0 *) vy;
    float sum = 0.0f;
    for (int64_t b = 0; b < n / GL_QK4_0; ++b) {
        int32_t sumi = 0;
        for (int j = 0; j < GL_QK4_0 / 2; ++j) {
            sumi += ((x[b].qs[j] & 0x0f) - 8) * (int32_t) y[b].qs[j];
            sumi += ((x[b].qs[j] >> 4) - 8) * (int32_t) y[b].qs[j + GL_QK4_0 / 2];
        }
        sum += (float) sumi * (gl_fp16_to_fp32(x[b].d) * gl_fp16_to_fp32(y[b].d));
    }
    *s = sum;
}

// ---- uniform asymmetric integers: q<b>_g<g> (layout at gl_block_intq in types.h) -------------------------------

static inline float fp16_bytes_to_fp32(const uint8_t * p) { return gl_fp16_to_fp32((uint16_t) (p[0] | (p[1] << 8))); }

// Codes of one 32-weight sub-block <-> its 4·b bytes.
template <int B> static inline void intq_decode32(const uint8_t * q, uint8_t * c) {
    if (B == 4) {
        for (int j = 0; j < 16; ++j) {
            c[j] = q[j] & 0x0f;
            c[j + 16] = q[j] >> 4;
        }
    } else {
        for (int j = 0; j < 8; ++j) {
            for (int k = 0; k < 4; ++k) c[j + 8 * k] = (q[j] >> (2 * k)) & 3;
        }
        if (B == 3) {
            const uint32_t h = (uint32_t) q[8] | ((uint32_t) q[9] << 8) | ((uint32_t) q[10] << 16) | ((uint32_t) q[11] << 24);
            for (int i = 0; i < 32; ++i) c[i] |= (uint8_t) (((h >> i) & 1) << 2);
        }
    }
}

template <int B> static inline void intq_encode32(const uint8_t * c, uint8_t * q) {
    if (B == 4) {
        for (int j = 0; j < 16; ++j) q[j] = (uint8_t) ((c[j] & 0x0f) | ((c[j + 16] & 0x0f) << 4));
    } else {
        for (int j = 0; j < 8; ++j) {
            uint8_t v = 0;
            for (int k = 0; k < 4; ++k) v |= (uint8_t) ((c[j + 8 * k] & 3) << (2 * k));
            q[j] = v;
        }
        if (B == 3) {
            uint32_t h = 0;
            for (int i = 0; i < 32; ++i) h |= (uint32_t) ((c[i] >> 2) & 1) << i;
            for (int k = 0; k < 4; ++k) q[8 + k] = (uint8_t) (h >> (8 * k));
        }
    }
}

gl_intq_params gl_intq_fit(const float * x, int64_t n, int bits) {
    const int maxq = (1 << bits) - 1;
    float xmin = 0.0f, xmax = 0.0f;  // the range always includes 0
    for (int64_t i = 0; i < n; ++i) {
        xmin = fminf(xmin, x[i]);
        xmax = fmaxf(xmax, x[i]);
    }
    gl_intq_params p;
    const float scale = (xmax - xmin) / (float) maxq;
    if (!(scale > 0.0f)) return p;  // all zero (or NaN input): d = 0, every value decodes to 0
    p.d16 = gl_fp32_to_fp16(scale);
    if ((p.d16 & 0x7fff) >= 0x7c00) p.d16 = 0x7bff;  // beyond fp16's range: clamp to its largest finite value
    p.d = gl_fp16_to_fp32(p.d16);
    if (p.d == 0.0f) return gl_intq_params();  // below fp16's smallest subnormal: the group is zero at this precision
    const float z = nearbyintf(-xmin / p.d);
    p.z = (uint8_t) (z < 0.0f ? 0 : (z > (float) maxq ? maxq : (int) z));
    return p;
}

int gl_intq_code(float x, const gl_intq_params & p, int bits) {
    const int maxq = (1 << bits) - 1;
    if (p.d == 0.0f) return p.z;
    const float q = nearbyintf(x / p.d) + (float) p.z;
    return q < 0.0f ? 0 : (q > (float) maxq ? maxq : (int) q);
}

template <int B, int G> static void intq_to_float(const void * vx, float * y, int64_t n) {
    typedef gl_block_intq<B, G> blk;
    const blk * x = (const blk *) vx;
    uint8_t c[32];
    for (int64_t b = 0; b < n / G; ++b) {
        const float d = fp16_bytes_to_fp32(x[b].d);
        const int z = x[b].z;
        for (int s = 0; s < G / 32; ++s) {
            intq_decode32<B>(x[b].qs + s * 4 * B, c);
            for (int j = 0; j < 32; ++j) y[b * G + s * 32 + j] = d * (float) ((int) c[j] - z);
        }
    }
}

// Round to nearest on GPTQ's min/max grid of each group (the RTN baseline).
template <int B, int G> static void intq_from_float(const float * x, void * vy, int64_t n) {
    typedef gl_block_intq<B, G> blk;
    blk * y = (blk *) vy;
    uint8_t c[G];
    for (int64_t b = 0; b < n / G; ++b) {
        const float * xb = x + b * G;
        const gl_intq_params p = gl_intq_fit(xb, G, B);
        for (int j = 0; j < G; ++j) c[j] = (uint8_t) gl_intq_code(xb[j], p, B);
        y[b].d[0] = (uint8_t) (p.d16 & 0xff);
        y[b].d[1] = (uint8_t) (p.d16 >> 8);
        y[b].z = p.z;
        for (int s = 0; s < G / 32; ++s) intq_encode32<B>(c + s * 32, y[b].qs + s * 4 * B);
    }
}

// Against Q8_0 activations, in integers per 32-wide sub-block: Σ d·(c−z)·dy·a = d·dy·(Σ c·a − z·Σ a).
template <int B, int G> static void intq_vec_dot(int64_t n, float * s, const void * vx, const void * vy) {
    typedef gl_block_intq<B, G> blk;
    const blk * x = (const blk *) vx;
    const gl_block_q8_0 * y = (const gl_block_q8_0 *) vy;
    float sum = 0.0f;
    uint8_t c[32];
    for (int64_t b = 0; b < n / G; ++b) {
        const float d = fp16_bytes_to_fp32(x[b].d);
        const int32_t z = x[b].z;
        for (int sb = 0; sb < G / 32; ++sb) {
            const gl_block_q8_0 & yb = y[b * (G / 32) + sb];
            intq_decode32<B>(x[b].qs + sb * 4 * B, c);
            int32_t sumi = 0, suma = 0;
            for (int j = 0; j < 32; ++j) {
                sumi += (int32_t) c[j] * (int32_t) yb.qs[j];
                suma += (int32_t) yb.qs[j];
            }
            sum += (float) (sumi - z * suma) * (d * gl_fp16_to_fp32(yb.d));
        }
    }
    *s = sum;
}

template <int B, int G> static void intq_pack_row(int64_t n, const uint8_t * codes, const gl_intq_params * groups, void * dst) {
    typedef gl_block_intq<B, G> blk;
    blk * y = (blk *) dst;
    for (int64_t b = 0; b < n / G; ++b) {
        y[b].d[0] = (uint8_t) (groups[b].d16 & 0xff);
        y[b].d[1] = (uint8_t) (groups[b].d16 >> 8);
        y[b].z = groups[b].z;
        for (int s = 0; s < G / 32; ++s) intq_encode32<B>(codes + b * G + s * 32, y[b].qs + s * 4 * B);
    }
}

template <int B, int G> static void intq_unpack_row(int64_t n, const void * src, uint8_t * codes, gl_intq_params * groups) {
    typedef gl_block_intq<B, G> blk;
    const blk * x = (const blk *) src;
    for (int64_t b = 0; b < n / G; ++b) {
        groups[b].d16 = (uint16_t) (x[b].d[0] | (x[b].d[1] << 8));
        groups[b].d = gl_fp16_to_fp32(groups[b].d16);
        groups[b].z = x[b].z;
        for (int s = 0; s < G / 32; ++s) intq_decode32<B>(x[b].qs + s * 4 * B, codes + b * G + s * 32);
    }
}

// The family's layouts, one per (bits, group), referenced from the traits entries below.
template <int B, int G> static constexpr gl_intq_layout k_intq_layout = {B, G, intq_pack_row<B, G>, intq_unpack_row<B, G>};

static const gl_intq_layout * intq_find(gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    return tr ? tr->intq : nullptr;
}

bool gl_intq_info(gl_type t, int * bits, int * group) {
    const gl_intq_layout * d = intq_find(t);
    if (!d) return false;
    if (bits) *bits = d->bits;
    if (group) *group = d->group;
    return true;
}

gl_type gl_intq_type(int bits, int group) {
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        const gl_intq_layout * d = intq_find((gl_type) t);
        if (d && d->bits == bits && d->group == group) return (gl_type) t;
    }
    return GL_TYPE_COUNT;
}

void gl_intq_pack_row(gl_type t, int64_t n, const uint8_t * codes, const gl_intq_params * groups, void * dst) {
    const gl_intq_layout * d = intq_find(t);
    if (!d || n % d->group != 0) {
        fprintf(stderr, "gl_intq_pack_row: %s cannot hold a row of %lld\n", gl_type_name(t), (long long) n);
        abort();
    }
    d->pack(n, codes, groups, dst);
}

void gl_intq_unpack_row(gl_type t, int64_t n, const void * src, uint8_t * codes, gl_intq_params * groups) {
    const gl_intq_layout * d = intq_find(t);
    if (!d || n % d->group != 0) {
        fprintf(stderr, "gl_intq_unpack_row: %s cannot hold a row of %lld\n", gl_type_name(t), (long long) n);
        abort();
    }
    d->unpack(n, src, codes, groups);
}

// ---- codebook (vector-quantized) types: vq<d>_b<b>_g<l> (layout at gl_vq_geom in types.h) ----------------------

// One layout per codebook type, referenced from its traits entry below.
template <int D, int B, int64_t G> static constexpr gl_vq_layout k_vq_layout = {D, B, G};

const gl_vq_layout * gl_vq_info(gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    return tr ? tr->vq : nullptr;
}

gl_type gl_vq_type(int dim, int bits, int64_t group) {
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        const gl_vq_layout * l = gl_vq_info((gl_type) t);
        if (l && l->dim == dim && l->bits == bits && l->group == group) return (gl_type) t;
    }
    return GL_TYPE_COUNT;
}

bool gl_vq_geometry(gl_type t, int64_t ne0, int64_t ne1, gl_vq_geom * g) {
    const gl_vq_layout * l = gl_vq_info(t);
    const int64_t limit = (int64_t) 1 << 40;
    if (!l || ne0 <= 0 || ne1 <= 0 || ne0 > limit || ne1 > limit || ne0 % l->dim != 0) return false;
    gl_vq_geom r;
    r.dim = l->dim;
    r.bits = l->bits;
    r.k = 1 << (l->bits * l->dim);
    r.ne0 = ne0;
    r.ne1 = ne1;
    r.C = ne0 < 256 ? ne0 : 256;
    if (l->group < r.C) r.C = l->group;
    r.R = l->group / r.C > 1 ? l->group / r.C : 1;
    r.n_col_groups = (ne0 + r.C - 1) / r.C;
    r.n_row_groups = (ne1 + r.R - 1) / r.R;
    // Every size below is computed in 128 bits and bounded before it is narrowed: a [2^40, 2^40] shape from an
    // untrusted file overflows 64 bits in n_groups and in the codebook bytes.
    typedef unsigned __int128 u128;
    const u128 max_bytes = (u128) 1 << 48;
    const u128 n_groups = (u128) r.n_col_groups * (u128) r.n_row_groups;
    if (n_groups > max_bytes) return false;
    r.n_groups = (int64_t) n_groups;
    r.chunk_bytes = (size_t) (4 * l->bits);
    r.row_bytes = (size_t) ((ne0 + 31) / 32) * r.chunk_bytes;  // ne0 <= 2^40, chunk_bytes <= 16: fits
    r.scales_offset = 0;
    const u128 codebooks_offset = (n_groups * 2 + 63) / 64 * 64;
    const u128 side = codebooks_offset + n_groups * (u128) r.k * (u128) r.dim;
    const u128 total = (u128) r.row_bytes * (u128) ne1 + side;
    if (side > max_bytes || total > max_bytes) return false;
    r.codebooks_offset = (size_t) codebooks_offset;
    r.side_bytes = (size_t) side;
    r.total_bytes = (size_t) total;
    // Every 32-weight chunk lies in one column group: C is a multiple of 32 or the whole row.
    if (r.C % 32 != 0 && r.C != ne0) return false;
    *g = r;
    return true;
}

void gl_vq_decode_chunk(int dim, int bits, const uint8_t * q, uint8_t * idx) {
    const int ib = dim * bits;
    if (dim == 1) {
        if (bits == 2) intq_decode32<2>(q, idx);
        else if (bits == 3) intq_decode32<3>(q, idx);
        else intq_decode32<4>(q, idx);
    } else if (ib == 8) {
        memcpy(idx, q, (size_t) (32 / dim));
    } else {  // dim 2, 4- or 6-bit indices of 16 pairs
        for (int j = 0; j < 8; ++j) idx[j] = q[j] & 0x0F, idx[j + 8] = q[j] >> 4;
        if (ib == 6) {
            for (int j = 0; j < 4; ++j) {
                for (int k = 0; k < 4; ++k) idx[j + 4 * k] |= (uint8_t) (((q[8 + j] >> (2 * k)) & 3) << 4);
            }
        }
    }
}

void gl_vq_encode_chunk(int dim, int bits, const uint8_t * idx, uint8_t * q) {
    const int ib = dim * bits;
    if (dim == 1) {
        if (bits == 2) intq_encode32<2>(idx, q);
        else if (bits == 3) intq_encode32<3>(idx, q);
        else intq_encode32<4>(idx, q);
    } else if (ib == 8) {
        memcpy(q, idx, (size_t) (32 / dim));
    } else {
        for (int j = 0; j < 8; ++j) q[j] = (uint8_t) ((idx[j] & 0x0F) | ((idx[j + 8] & 0x0F) << 4));
        if (ib == 6) {
            for (int j = 0; j < 4; ++j) {
                uint8_t h = 0;
                for (int k = 0; k < 4; ++k) h |= (uint8_t) (((idx[j + 4 * k] >> 4) & 3) << (2 * k));
                q[8 + j] = h;
            }
        }
    }
}

void gl_vq_pack(const gl_vq_geom & g, const uint8_t * idx, const int8_t * codebooks, const uint16_t * scales, void * dst) {
    uint8_t * out = (uint8_t *) dst;
    memset(out, 0, g.total_bytes);
    const int64_t per_row = g.ne0 / g.dim, per_chunk = 32 / g.dim;
    uint8_t tmp[32];
    for (int64_t r = 0; r < g.ne1; ++r) {
        uint8_t * row = out + (size_t) r * g.row_bytes;
        for (int64_t c = 0; c * 32 < g.ne0; ++c) {
            memset(tmp, 0, sizeof tmp);
            const int64_t i0 = c * per_chunk, n = per_row - i0 < per_chunk ? per_row - i0 : per_chunk;
            memcpy(tmp, idx + r * per_row + i0, (size_t) n);
            gl_vq_encode_chunk(g.dim, g.bits, tmp, row + (size_t) c * g.chunk_bytes);
        }
    }
    uint8_t * side = out + (size_t) g.ne1 * g.row_bytes;
    for (int64_t i = 0; i < g.n_groups; ++i) {
        side[g.scales_offset + 2 * i] = (uint8_t) (scales[i] & 0xff);
        side[g.scales_offset + 2 * i + 1] = (uint8_t) (scales[i] >> 8);
    }
    memcpy(side + g.codebooks_offset, codebooks, (size_t) g.n_groups * (size_t) g.k * (size_t) g.dim);
}

void gl_vq_row_to_float(const gl_vq_geom & g, const void * data, int64_t row, float * out) {
    const uint8_t * row_p = (const uint8_t *) data + (size_t) row * g.row_bytes;
    const uint8_t * side = (const uint8_t *) data + (size_t) g.ne1 * g.row_bytes;
    const int8_t * cbs = (const int8_t *) (side + g.codebooks_offset);
    uint8_t idx[32];
    for (int64_t c = 0; c * 32 < g.ne0; ++c) {
        gl_vq_decode_chunk(g.dim, g.bits, row_p + (size_t) c * g.chunk_bytes, idx);
        const int64_t grp = (row / g.R) * g.n_col_groups + (c * 32) / g.C;
        const float s = gl_fp16_to_fp32((uint16_t) (side[g.scales_offset + 2 * grp] | (side[g.scales_offset + 2 * grp + 1] << 8)));
        const int8_t * cb = cbs + (size_t) grp * (size_t) g.k * (size_t) g.dim;
        for (int i = 0; i < 32 && c * 32 + i < g.ne0; ++i) out[c * 32 + i] = s * (float) cb[idx[i / g.dim] * g.dim + i % g.dim];
    }
}

// ---- the table ------------------------------------------------------------------------------------------------

// One entry per type, placed by its enum value (the order below does not matter). A type missing or listed twice
// fails to compile.
struct traits_entry {
    gl_type        type;
    gl_type_traits tr;
};
#define PLAIN(NAME, T, BLK, SIZE, VT, GGUF, FTYPE, FN, X16) \
    {T, {NAME, BLK, SIZE, BLK > 1, VT, 1, GGUF, FTYPE, FN##_to_float, FN##_from_float, FN##_vec_dot, nullptr, nullptr, X16, 0}}
#define INTQ(NAME, T, B, G) \
    {T, {NAME, G, sizeof(gl_block_intq<B, G>), true, GL_TYPE_Q8_0, 1, -1, -1, intq_to_float<B, G>, intq_from_float<B, G>, intq_vec_dot<B, G>, nullptr, &k_intq_layout<B, G>, false, 0}}
// Codebook types: 32-weight chunks of 4·bits bytes; activations zero-padded to whole Q8_0 blocks.
#define VQ(NAME, T, D, B, G) {T, {NAME, 32, (size_t) (4 * B), true, GL_TYPE_Q8_0, 32, -1, -1, nullptr, nullptr, nullptr, &k_vq_layout<D, B, G>, nullptr, false, 0}}
// Per-row types (ggml-lite/rowq.cpp): 32-weight blocks after a row header.
#define ROWQ(NAME, T, SIZE, VT, FN, DOT, X16) \
    {T, {NAME, 32, SIZE, true, VT, 1, -1, -1, FN##_to_float, FN##_from_float, DOT, nullptr, nullptr, X16, T == GL_TYPE_A8_ROW ? GL_ROW_HEADER_A : GL_ROW_HEADER_W}}
static constexpr traits_entry k_traits_entries[] = {
    PLAIN("f32", GL_TYPE_F32, 1, 4, GL_TYPE_F32, 0, 0, f32, false),
    PLAIN("f16", GL_TYPE_F16, 1, 2, GL_TYPE_F16, 1, 1, f16, false),
    PLAIN("bf16", GL_TYPE_BF16, 1, 2, GL_TYPE_BF16, 30, 32, bf16, false),
    PLAIN("q8_0", GL_TYPE_Q8_0, GL_QK8_0, sizeof(gl_block_q8_0), GL_TYPE_Q8_0, 8, 7, q8_0, true),
    PLAIN("q4_0", GL_TYPE_Q4_0, GL_QK4_0, sizeof(gl_block_q4_0), GL_TYPE_Q8_0, 2, 2, q4_0, true),
    INTQ("q4_g128", GL_TYPE_Q4_G128, 4, 128),
    INTQ("q3_g128", GL_TYPE_Q3_G128, 3, 128),
    INTQ("q2_g128", GL_TYPE_Q2_G128, 2, 128),
    INTQ("q4_g64", GL_TYPE_Q4_G64, 4, 64),
    INTQ("q3_g64", GL_TYPE_Q3_G64, 3, 64),
    INTQ("q2_g64", GL_TYPE_Q2_G64, 2, 64),
    INTQ("q4_g32", GL_TYPE_Q4_G32, 4, 32),
    INTQ("q3_g32", GL_TYPE_Q3_G32, 3, 32),
    INTQ("q2_g32", GL_TYPE_Q2_G32, 2, 32),
    VQ("vq1_b2_g256", GL_TYPE_VQ1_B2_G256, 1, 2, 256),
    VQ("vq1_b2_g128", GL_TYPE_VQ1_B2_G128, 1, 2, 128),
    VQ("vq1_b3_g512", GL_TYPE_VQ1_B3_G512, 1, 3, 512),
    VQ("vq1_b4_g1024", GL_TYPE_VQ1_B4_G1024, 1, 4, 1024),
    VQ("vq2_b2_g2048", GL_TYPE_VQ2_B2_G2048, 2, 2, 2048),
    VQ("vq2_b2_g1024", GL_TYPE_VQ2_B2_G1024, 2, 2, 1024),
    VQ("vq2_b3_g8192", GL_TYPE_VQ2_B3_G8192, 2, 3, 8192),
    VQ("vq2_b4_g32768", GL_TYPE_VQ2_B4_G32768, 2, 4, 32768),
    VQ("vq4_b2_g65536", GL_TYPE_VQ4_B2_G65536, 4, 2, 65536),
    VQ("vq4_b2_g32768", GL_TYPE_VQ4_B2_G32768, 4, 2, 32768),
    ROWQ("a8_row", GL_TYPE_A8_ROW, 32, GL_TYPE_A8_ROW, a8_row, a8_row_vec_dot, false),
    ROWQ("q4_row", GL_TYPE_Q4_ROW, 16, GL_TYPE_F32, q4_row, q4_row_vec_dot_f32, false),
    ROWQ("q8_row", GL_TYPE_Q8_ROW, 32, GL_TYPE_F32, q8_row, q8_row_vec_dot_f32, false),
    ROWQ("q4_row_a8", GL_TYPE_Q4_ROW_A8, 16, GL_TYPE_A8_ROW, q4_row, q4_row_vec_dot_a8, true),
    ROWQ("q8_row_a8", GL_TYPE_Q8_ROW_A8, 32, GL_TYPE_A8_ROW, q8_row, q8_row_vec_dot_a8, true),
    ROWQ("q3_row", GL_TYPE_Q3_ROW, 12, GL_TYPE_F32, q3_row, q3_row_vec_dot_f32, false),
    ROWQ("q3_row_a8", GL_TYPE_Q3_ROW_A8, 12, GL_TYPE_A8_ROW, q3_row, q3_row_vec_dot_a8, false),
};
#undef ROWQ
#undef PLAIN
#undef INTQ
#undef VQ

struct traits_table {
    gl_type_traits at[GL_TYPE_COUNT] = {};
    bool           complete = false;  // every type listed exactly once
};
static constexpr traits_table make_traits_table() {
    traits_table t{};
    int seen[GL_TYPE_COUNT] = {};
    for (const traits_entry & e : k_traits_entries) {
        t.at[e.type] = e.tr;
        ++seen[e.type];
    }
    t.complete = true;
    for (int i = 0; i < (int) GL_TYPE_COUNT; ++i) t.complete = t.complete && seen[i] == 1;
    return t;
}
static constexpr traits_table k_traits_table = make_traits_table();
static_assert(k_traits_table.complete, "every gl_type needs exactly one entry in k_traits_entries");
static constexpr const gl_type_traits * k_traits = k_traits_table.at;

const gl_type_traits * gl_get_type_traits(gl_type t) {
    return (uint32_t) t < GL_TYPE_COUNT ? &k_traits[t] : nullptr;
}

bool gl_type_valid(uint32_t t) { return t < GL_TYPE_COUNT; }

const char * gl_type_name(gl_type t) { return gl_type_valid(t) ? k_traits[t].name : "invalid"; }

bool gl_type_from_name(const char * name, gl_type * out) {
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (strcasecmp(name, k_traits[t].name) == 0) {
            *out = (gl_type) t;
            return true;
        }
    }
    return false;
}

int64_t gl_act_row_elems(gl_type t, int64_t n) {
    const int64_t pad = gl_get_type_traits(t)->act_pad;
    return (n + pad - 1) / pad * pad;
}

size_t gl_act_row_size(gl_type t, int64_t n) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    return gl_row_size(tr->vec_dot_type, gl_act_row_elems(t, n));
}

gl_type gl_type_from_gguf(uint32_t id) {
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (k_traits[t].gguf_type >= 0 && (uint32_t) k_traits[t].gguf_type == id) return (gl_type) t;
    }
    return GL_TYPE_COUNT;
}

size_t gl_row_size(gl_type t, int64_t n) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    if (tr->vq) return (size_t) ((n + 31) / 32) * (size_t) (4 * tr->vq->bits);
    return tr->row_header + (size_t) (n / tr->block_size) * tr->type_size;
}

bool gl_nbytes_checked(gl_type t, const int64_t * ne, int n_dims, size_t * out) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    if (!tr || n_dims < 1 || n_dims > 4) return false;
    const uint64_t limit = (uint64_t) 1 << 48;  // 256 TiB: far above any real tensor, far below overflow
    for (int d = 0; d < n_dims; ++d) {
        if (ne[d] <= 0 || (uint64_t) ne[d] > limit) return false;
    }
    if (tr->vq) {  // 2-D only: the side section belongs to the whole matrix
        for (int d = 2; d < n_dims; ++d) {
            if (ne[d] != 1) return false;
        }
        gl_vq_geom g;
        if (!gl_vq_geometry(t, ne[0], n_dims > 1 ? ne[1] : 1, &g)) return false;
        *out = g.total_bytes;
        return true;
    }
    if (ne[0] % tr->block_size != 0) return false;
    unsigned __int128 bytes = (unsigned __int128) (ne[0] / tr->block_size) * tr->type_size + tr->row_header;
    for (int d = 1; d < n_dims; ++d) {
        bytes *= (uint64_t) ne[d];
        if (bytes > limit) return false;
    }
    *out = (size_t) bytes;
    return true;
}

// ---- the x16 layout (types.h) -------------------------------------------------------------------------------------

bool gl_x16_ok(gl_type t, int64_t ne0, int64_t ne1) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    return tr && tr->x16 && ne0 > 0 && ne0 % tr->block_size == 0 && ne1 > 0 && ne1 % 16 == 0;
}

// Byte j of block b of row r (0..15) of a group <-> its offset in the group's block b.
static inline size_t x16_offset(size_t bs, size_t j, int r) {
    return j < 2 ? 2 * (size_t) r + j : 32 + ((j - 2) / 4) * 64 + 4 * (size_t) r + (j - 2) % 4;
}

// Per-row types: a group is the 16 row headers, then dword d of the 16 rows' codes for every d in order.
static void x16_regroup_rows(gl_type t, int64_t ne0, int64_t ne1, const void * src, void * dst, bool pack) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    const size_t row = gl_row_size(t, ne0), h = tr->row_header, nd = (row - h) / 4;
#pragma omp parallel for schedule(static) if (ne1 * (int64_t) row >= (1 << 22))
    for (int64_t g = 0; g < ne1 / 16; ++g) {
        const uint8_t * s = (const uint8_t *) src + (size_t) g * 16 * row;
        uint8_t * d = (uint8_t *) dst + (size_t) g * 16 * row;
        for (int r = 0; r < 16; ++r) {
            const size_t plain = (size_t) r * row;
            if (pack) {
                memcpy(d + h * r, s + plain, h);
                for (size_t k = 0; k < nd; ++k) memcpy(d + 16 * h + 64 * k + 4 * r, s + plain + h + 4 * k, 4);
            } else {
                memcpy(d + plain, s + h * r, h);
                for (size_t k = 0; k < nd; ++k) memcpy(d + plain + h + 4 * k, s + 16 * h + 64 * k + 4 * r, 4);
            }
        }
    }
}

static void x16_regroup(gl_type t, int64_t ne0, int64_t ne1, const void * src, void * dst, bool pack) {
    GL_ASSERT(gl_x16_ok(t, ne0, ne1) && src != dst);
    const gl_type_traits * tr = gl_get_type_traits(t);
    if (tr->row_header) {
        x16_regroup_rows(t, ne0, ne1, src, dst, pack);
        return;
    }
    const size_t bs = tr->type_size, row = gl_row_size(t, ne0), nk = (bs - 2) / 4;
    const int64_t nb = ne0 / tr->block_size;
    // x16_offset's map, a scale and whole code dwords at a time (a 7B model regroups in seconds, not minutes).
#pragma omp parallel for schedule(static) if (ne1 * (int64_t) row >= (1 << 22))
    for (int64_t g = 0; g < ne1 / 16; ++g) {
        const uint8_t * s = (const uint8_t *) src + (size_t) g * 16 * row;
        uint8_t * d = (uint8_t *) dst + (size_t) g * 16 * row;
        for (int64_t b = 0; b < nb; ++b) {
            for (int r = 0; r < 16; ++r) {
                const size_t plain = (size_t) r * row + (size_t) b * bs, grouped = (size_t) b * 16 * bs;
                if (pack) {
                    memcpy(d + grouped + 2 * r, s + plain, 2);
                    for (size_t k = 0; k < nk; ++k) memcpy(d + grouped + 32 + 64 * k + 4 * r, s + plain + 2 + 4 * k, 4);
                } else {
                    memcpy(d + plain, s + grouped + 2 * r, 2);
                    for (size_t k = 0; k < nk; ++k) memcpy(d + plain + 2 + 4 * k, s + grouped + 32 + 64 * k + 4 * r, 4);
                }
            }
        }
    }
}

void gl_x16_pack(gl_type t, int64_t ne0, int64_t ne1, const void * src, void * dst) { x16_regroup(t, ne0, ne1, src, dst, true); }
void gl_x16_unpack(gl_type t, int64_t ne0, int64_t ne1, const void * src, void * dst) { x16_regroup(t, ne0, ne1, src, dst, false); }

void gl_x16_get_row(gl_type t, int64_t ne0, const void * data, int64_t row, void * dst) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    GL_ASSERT(tr->x16 && ne0 % tr->block_size == 0);
    const size_t bs = tr->type_size, rs = gl_row_size(t, ne0);
    const uint8_t * g = (const uint8_t *) data + (size_t) (row / 16) * 16 * rs;
    const int r = (int) (row % 16);
    if (tr->row_header) {
        const size_t h = tr->row_header;
        memcpy(dst, g + h * (size_t) r, h);
        for (size_t k = 0; k < (rs - h) / 4; ++k) memcpy((uint8_t *) dst + h + 4 * k, g + 16 * h + 64 * k + 4 * (size_t) r, 4);
        return;
    }
    for (int64_t b = 0; b < ne0 / tr->block_size; ++b)
        for (size_t j = 0; j < bs; ++j) ((uint8_t *) dst)[(size_t) b * bs + j] = g[(size_t) b * 16 * bs + x16_offset(bs, j, r)];
}

// ---- scalar kernel table (ggml-lite/cpu.h) ----------------------------------------------------------------------
// The reference functions above, plus a generic tiled product and axpy, as the scalar dispatch level.

#include "ggml-lite/cpu.h"

template <gl_vec_dot_fn DOT>
static void gemm_generic(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                         float * y, int64_t y_stride) {
    for (int64_t r = 0; r < nr; ++r) {
        for (int64_t t = 0; t < nt; ++t) DOT(n, &y[t * y_stride + r], (const uint8_t *) w + r * w_stride, (const uint8_t *) act + t * act_stride);
    }
}

// The x16 layout's reference: each group of 16 rows regrouped back to plain rows, then the type's own dot products
// (so it is bit-identical to gemm_generic on the plain rows).
template <gl_type T, gl_vec_dot_fn DOT>
static void gemm_x16_ref(int64_t n, int64_t nr, int64_t nt, const void * w, size_t w_stride, const void * act, size_t act_stride,
                         float * y, int64_t y_stride) {
    GL_ASSERT(nr % 16 == 0 && w_stride == gl_row_size(T, n));
    std::vector<uint8_t> row(w_stride);
    for (int64_t r = 0; r < nr; ++r) {
        gl_x16_get_row(T, n, (const uint8_t *) w + (size_t) (r / 16) * 16 * w_stride, r % 16, row.data());
        for (int64_t k = 0; k < nt; ++k) DOT(n, &y[k * y_stride + r], row.data(), (const uint8_t *) act + k * act_stride);
    }
}

static void f32_axpy(int64_t n, float a, const void * vx, float * y) {
    const float * x = (const float *) vx;
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}
static void f16_axpy(int64_t n, float a, const void * vx, float * y) {
    const uint16_t * x = (const uint16_t *) vx;
    for (int64_t i = 0; i < n; ++i) y[i] += a * gl_fp16_to_fp32(x[i]);
}
static void bf16_axpy(int64_t n, float a, const void * vx, float * y) {
    const uint16_t * x = (const uint16_t *) vx;
    for (int64_t i = 0; i < n; ++i) y[i] += a * gl_bf16_to_fp32(x[i]);
}

// Codebook types have no entry: their product needs the tensor's side section (gl_vq_gemm_scalar below).
static constexpr gl_type_entry<gl_type_kernels> k_scalar_entries[] = {
    {GL_TYPE_F32, {f32_vec_dot, f32_from_float, f32_to_float, gemm_generic<f32_vec_dot>, f32_axpy}},
    {GL_TYPE_F16, {f16_vec_dot, f16_from_float, f16_to_float, gemm_generic<f16_vec_dot>, f16_axpy}},
    {GL_TYPE_BF16, {bf16_vec_dot, bf16_from_float, bf16_to_float, gemm_generic<bf16_vec_dot>, bf16_axpy}},
    {GL_TYPE_Q8_0, {q8_0_vec_dot, q8_0_from_float, q8_0_to_float, gemm_generic<q8_0_vec_dot>, nullptr, gemm_x16_ref<GL_TYPE_Q8_0, q8_0_vec_dot>}},
    {GL_TYPE_Q4_0, {q4_0_vec_dot, q4_0_from_float, q4_0_to_float, gemm_generic<q4_0_vec_dot>, nullptr, gemm_x16_ref<GL_TYPE_Q4_0, q4_0_vec_dot>}},
#define INTQ_KERNELS(T, B, G) {T, {intq_vec_dot<B, G>, intq_from_float<B, G>, intq_to_float<B, G>, gemm_generic<intq_vec_dot<B, G>>, nullptr}}
    INTQ_KERNELS(GL_TYPE_Q4_G128, 4, 128),
    INTQ_KERNELS(GL_TYPE_Q3_G128, 3, 128),
    INTQ_KERNELS(GL_TYPE_Q2_G128, 2, 128),
    INTQ_KERNELS(GL_TYPE_Q4_G64, 4, 64),
    INTQ_KERNELS(GL_TYPE_Q3_G64, 3, 64),
    INTQ_KERNELS(GL_TYPE_Q2_G64, 2, 64),
    INTQ_KERNELS(GL_TYPE_Q4_G32, 4, 32),
    INTQ_KERNELS(GL_TYPE_Q3_G32, 3, 32),
    INTQ_KERNELS(GL_TYPE_Q2_G32, 2, 32),
#undef INTQ_KERNELS
    {GL_TYPE_A8_ROW, {a8_row_vec_dot, a8_row_from_float, a8_row_to_float, gemm_generic<a8_row_vec_dot>, nullptr, nullptr, a8_row_from_float_grid}},
    {GL_TYPE_Q4_ROW, {q4_row_vec_dot_f32, q4_row_from_float, q4_row_to_float, gemm_generic<q4_row_vec_dot_f32>, nullptr}},
    {GL_TYPE_Q8_ROW, {q8_row_vec_dot_f32, q8_row_from_float, q8_row_to_float, gemm_generic<q8_row_vec_dot_f32>, nullptr}},
    {GL_TYPE_Q4_ROW_A8, {q4_row_vec_dot_a8, q4_row_from_float, q4_row_to_float, gemm_generic<q4_row_vec_dot_a8>, nullptr,
                         gemm_x16_ref<GL_TYPE_Q4_ROW_A8, q4_row_vec_dot_a8>}},
    {GL_TYPE_Q8_ROW_A8, {q8_row_vec_dot_a8, q8_row_from_float, q8_row_to_float, gemm_generic<q8_row_vec_dot_a8>, nullptr,
                         gemm_x16_ref<GL_TYPE_Q8_ROW_A8, q8_row_vec_dot_a8>}},
    {GL_TYPE_Q3_ROW, {q3_row_vec_dot_f32, q3_row_from_float, q3_row_to_float, gemm_generic<q3_row_vec_dot_f32>, nullptr}},
    {GL_TYPE_Q3_ROW_A8, {q3_row_vec_dot_a8, q3_row_from_float, q3_row_to_float, gemm_generic<q3_row_vec_dot_a8>, nullptr}},
};
constexpr gl_type_table<gl_type_kernels> gl_kernels_scalar = gl_type_table_make(k_scalar_entries);
static_assert(!gl_kernels_scalar.dup, "a type is listed twice");

// ---- codebook types: the reference product ---------------------------------------------------------------------
// Per row and token: for every column group, the integer dot of each 32-weight chunk (int8 centroid values × int8
// activations) times the activation block's scale, summed in float over the group's chunks, then times the group's
// codebook scale and summed over the groups. SIMD kernels match this up to the order of the float sums.
static void vq_gemm_ref(const gl_vq_geom & g, const void * data, int64_t r0, int64_t nr, int64_t nt, const void * act, size_t act_stride,
                        float * y, int64_t y_stride) {
    const uint8_t * side = (const uint8_t *) data + (size_t) g.ne1 * g.row_bytes;
    const int8_t * cbs = (const int8_t *) (side + g.codebooks_offset);
    const int64_t n_chunks = (g.ne0 + 31) / 32;
    uint8_t idx[32];
    int8_t w[32];
    for (int64_t r = r0; r < r0 + nr; ++r) {
        const uint8_t * row = (const uint8_t *) data + (size_t) r * g.row_bytes;
        for (int64_t t = 0; t < nt; ++t) {
            const gl_block_q8_0 * a = (const gl_block_q8_0 *) ((const uint8_t *) act + (size_t) t * act_stride);
            float sum = 0.0f, acc = 0.0f;
            int64_t grp_prev = -1;
            float s_prev = 0.0f;
            for (int64_t c = 0; c < n_chunks; ++c) {
                const int64_t grp = (r / g.R) * g.n_col_groups + (c * 32) / g.C;
                if (grp != grp_prev) {
                    sum += acc * s_prev;
                    acc = 0.0f;
                    grp_prev = grp;
                    s_prev = gl_fp16_to_fp32((uint16_t) (side[g.scales_offset + 2 * grp] | (side[g.scales_offset + 2 * grp + 1] << 8)));
                }
                gl_vq_decode_chunk(g.dim, g.bits, row + (size_t) c * g.chunk_bytes, idx);
                const int8_t * cb = cbs + (size_t) grp * (size_t) g.k * (size_t) g.dim;
                for (int i = 0; i < 32; ++i) w[i] = c * 32 + i < g.ne0 ? cb[idx[i / g.dim] * g.dim + i % g.dim] : 0;
                int32_t isum = 0;
                for (int i = 0; i < 32; ++i) isum += (int32_t) w[i] * (int32_t) a[c].qs[i];
                acc += (float) isum * gl_fp16_to_fp32(a[c].d);
            }
            sum += acc * s_prev;
            y[t * y_stride + (r - r0)] = sum;
        }
    }
}

// The reference product serves every codebook type (its geometry comes from the traits): filled by the traits.
static constexpr gl_type_table<gl_vq_gemm_fn> make_vq_gemm_scalar() {
    gl_type_table<gl_vq_gemm_fn> t{};
    for (int i = 0; i < (int) GL_TYPE_COUNT; ++i) t.at[i] = k_traits[i].vq ? vq_gemm_ref : nullptr;
    return t;
}
constexpr gl_type_table<gl_vq_gemm_fn> gl_vq_gemm_scalar = make_vq_gemm_scalar();
