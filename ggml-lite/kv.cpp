// KV-cache types: the registry, the scalar reference kernels and their resolution per dispatch level (see kv.h).
#include "ggml-lite/kv.h"

#include "ggml-lite/common.h"
#include "ggml-lite/cpu.h"
#include "ggml-lite/ops.h"

#include <cstdio>
#include <cstring>
#include <strings.h>

namespace {

// ---- float types: through the active level's weight kernels ------------------------------------------------

// Writes convert with the type's activation quantizer (f16: round to nearest even; q8_0/q4_0: ggml's reference
// quantizers, which every level reproduces bit for bit).
template <gl_type T> void write_row(const float * x, void * y, int64_t n) { gl_kernels(T).quantize_act(x, y, n); }

// q·k for any type with a row dot product: one vec_dot per stored row, at the active level.
template <gl_type T> void qk_rows(int64_t head_dim, int64_t n_kv, const void * q, const void * k, size_t stride, float * s) {
    const gl_vec_dot_fn dot = gl_kernels(T).vec_dot;
    for (int64_t j = 0; j < n_kv; ++j) dot(head_dim, &s[j], (const uint8_t *) k + (size_t) j * stride, q);
}

// p rounded through P, as a mul_mat with P activations would see it.
template <gl_type P> inline float round_p(float p) {
    if (P == GL_TYPE_F16) return gl_fp16_to_fp32(gl_fp32_to_fp16(p));
    if (P == GL_TYPE_BF16) return gl_bf16_to_fp32(gl_fp32_to_bf16(p));
    return p;
}

// p·v for float types: one axpy per stored row, at the active level.
template <gl_type T, gl_type P>
void pv_axpy(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out) {
    const gl_axpy_fn axpy = gl_kernels(T).axpy;
    for (int64_t j = 0; j < n_kv; ++j) axpy(head_dim, round_p<P>(p[j]), (const uint8_t *) v + (size_t) j * stride, out);
}

// ---- quantized values: dequantize each row to float and accumulate (llama.cpp's CPU flash-attention path) ----

// Any block type with a reference to_float: each stored row widened (value = code · scale), then out += value · p.
template <gl_type T> void pv_dequant(int64_t head_dim, int64_t n_kv, const float * p, const void * v, size_t stride, float * out) {
    const gl_to_float_fn to_float = gl_get_type_traits(T)->to_float;
    float row[GL_ATTENTION_MAX_HEAD_DIM];
    GL_ASSERT(head_dim <= GL_ATTENTION_MAX_HEAD_DIM);
    for (int64_t j = 0; j < n_kv; ++j) {
        to_float((const uint8_t *) v + (size_t) j * stride, row, head_dim);
        for (int64_t e = 0; e < head_dim; ++e) out[e] += row[e] * p[j];
    }
}

// The registry. q_type is the storage type's vec_dot_type (what ggml converts q to); p_type is the value type's
// activation format for float types (ggml's mul_mat of probabilities by values) and F32 for quantized values.
const gl_kv_type_traits k_kv_types[] = {
    {"f32", GL_TYPE_F32, 1, GL_TYPE_F32, GL_TYPE_F32,
     {write_row<GL_TYPE_F32>, qk_rows<GL_TYPE_F32>, pv_axpy<GL_TYPE_F32, GL_TYPE_F32>}},
    {"f16", GL_TYPE_F16, 1, GL_TYPE_F16, GL_TYPE_F16,
     {write_row<GL_TYPE_F16>, qk_rows<GL_TYPE_F16>, pv_axpy<GL_TYPE_F16, GL_TYPE_F16>}},
    {"bf16", GL_TYPE_BF16, 1, GL_TYPE_BF16, GL_TYPE_BF16,
     {write_row<GL_TYPE_BF16>, qk_rows<GL_TYPE_BF16>, pv_axpy<GL_TYPE_BF16, GL_TYPE_BF16>}},
    {"q8_0", GL_TYPE_Q8_0, GL_QK8_0, GL_TYPE_Q8_0, GL_TYPE_F32, {write_row<GL_TYPE_Q8_0>, qk_rows<GL_TYPE_Q8_0>, pv_dequant<GL_TYPE_Q8_0>}},
    {"q4_0", GL_TYPE_Q4_0, GL_QK4_0, GL_TYPE_Q8_0, GL_TYPE_F32, {write_row<GL_TYPE_Q4_0>, qk_rows<GL_TYPE_Q4_0>, pv_dequant<GL_TYPE_Q4_0>}},
};
constexpr int k_n_kv_types = (int) (sizeof(k_kv_types) / sizeof(k_kv_types[0]));

int index_of(gl_type t) {
    for (int i = 0; i < k_n_kv_types; ++i) {
        if (k_kv_types[i].type == t) return i;
    }
    return -1;
}

// ---- resolution: per level, each kernel from the highest level at or below it that has one ----------------------

struct Resolved {
    gl_kv_kernels k[GL_CPU_LEVEL_COUNT][k_n_kv_types];
};

template <typename F> void fill(F & dst, F src) {
    if (!dst) dst = src;
}

void fill_from(gl_kv_kernels & k, const gl_kv_level_entry * list, size_t n, gl_type t) {
    for (size_t e = 0; e < n; ++e) {
        if (list[e].type != t) continue;
        fill(k.write, list[e].kernels.write);
        fill(k.qk, list[e].kernels.qk);
        fill(k.pv, list[e].kernels.pv);
    }
}

Resolved resolve_all() {
    Resolved r = {};
    for (int level = 0; level < GL_CPU_LEVEL_COUNT; ++level) {
        for (int i = 0; i < k_n_kv_types; ++i) {
            gl_kv_kernels k = {};
            const gl_type t = k_kv_types[i].type;
            for (int l = level; l >= 0; --l) {
                if (l == GL_CPU_AVX512) fill_from(k, gl_kv_avx512, gl_kv_avx512_count, t);
                if (l == GL_CPU_AVX2) fill_from(k, gl_kv_avx2, gl_kv_avx2_count, t);
            }
            const gl_kv_kernels & s = k_kv_types[i].scalar;
            fill(k.write, s.write);
            fill(k.qk, s.qk);
            fill(k.pv, s.pv);
            GL_ASSERT(k.write && k.qk && k.pv);
            r.k[level][i] = k;
        }
    }
    return r;
}

}  // namespace

int gl_kv_type_count() { return k_n_kv_types; }

const gl_kv_type_traits * gl_kv_type_at(int i) { return i >= 0 && i < k_n_kv_types ? &k_kv_types[i] : nullptr; }

const gl_kv_type_traits * gl_kv_get(gl_type t) {
    const int i = index_of(t);
    return i < 0 ? nullptr : &k_kv_types[i];
}

bool gl_kv_type_from_name(const char * name, gl_type * out) {
    for (const gl_kv_type_traits & e : k_kv_types) {
        if (strcasecmp(name, e.name) == 0) {
            *out = e.type;
            return true;
        }
    }
    return false;
}

std::string gl_kv_type_names(const char * sep) {
    std::string s;
    for (const gl_kv_type_traits & e : k_kv_types) {
        if (!s.empty()) s += sep;
        s += e.name;
    }
    return s;
}

size_t gl_kv_row_size(gl_type t, int64_t n) {
    GL_ASSERT(gl_kv_get(t) != nullptr);
    return gl_row_size(t, n);
}

bool gl_kv_supports(gl_type t, int64_t head_dim, char * why, size_t why_size) {
    const gl_kv_type_traits * e = gl_kv_get(t);
    if (!e) {
        if (why) snprintf(why, why_size, "%s is not a KV cache type (one of %s)", gl_type_name(t), gl_kv_type_names().c_str());
        return false;
    }
    if (head_dim <= 0 || head_dim % e->head_multiple != 0) {
        if (why)
            snprintf(why, why_size, "KV cache type %s needs a head size that is a multiple of %lld (its blocks stay inside a head); this model's is %lld",
                     e->name, (long long) e->head_multiple, (long long) head_dim);
        return false;
    }
    return true;
}

const gl_kv_kernels & gl_kv_kernels_get(gl_type t) {
    static const Resolved r = resolve_all();
    const int i = index_of(t);
    GL_ASSERT(i >= 0);
    return r.k[gl_cpu_level_get()][i];
}

void gl_kv_write(gl_type t, const float * x, void * dst, int64_t n) { gl_kv_kernels_get(t).write(x, dst, n); }
