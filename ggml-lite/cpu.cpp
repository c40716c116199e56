#include "ggml-lite/cpu.h"

#include "ggml-lite/common.h"

#include <cpuid.h>
#include <cstdlib>
#include <cstring>
#include <strings.h>

static uint64_t xgetbv0() {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t) hi << 32) | lo;
}

static gl_cpu_features detect() {
    gl_cpu_features f;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = c & (1u << 27);
    const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    const bool ymm_os = (xcr0 & 0x6) == 0x6;     // SSE and AVX state enabled by the OS
    const bool zmm_os = (xcr0 & 0xe6) == 0xe6;   // plus opmask and ZMM state
    f.avx = ymm_os && (c & (1u << 28));
    f.fma = f.avx && (c & (1u << 12));
    f.f16c = f.avx && (c & (1u << 29));
    if (__get_cpuid_count(7, 0, &a, &b, &c, &d)) {
        f.avx2 = f.avx && (b & (1u << 5));
        f.avx512f = zmm_os && (b & (1u << 16));
        f.avx512dq = f.avx512f && (b & (1u << 17));
        f.avx512bw = f.avx512f && (b & (1u << 30));
        f.avx512vl = f.avx512f && (b & (1u << 31));
        f.avx512vnni = f.avx512f && (c & (1u << 11));
        f.avx512vbmi = f.avx512f && (c & (1u << 1));
    }
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
        f.avxvnni = f.avx2 && (a & (1u << 4));
        f.avx512bf16 = f.avx512f && (a & (1u << 5));
    }
    return f;
}

const gl_cpu_features & gl_cpu_get_features() {
    static const gl_cpu_features f = detect();
    return f;
}

// Every feature a level's files are built with (CMakeLists.txt's -m flags; a level needs the ones below it too).
#define GL_FEATURE(x) {#x, &gl_cpu_features::x}
static const gl_cpu_feature_info k_level_features[GL_CPU_LEVEL_COUNT][10] = {  // each row ends with a null name
    /* scalar */ {{nullptr, nullptr}},
    /* avx2   */ {GL_FEATURE(avx), GL_FEATURE(avx2), GL_FEATURE(fma), GL_FEATURE(f16c), {nullptr, nullptr}},
    /* avx512 */ {GL_FEATURE(avx), GL_FEATURE(avx2), GL_FEATURE(fma), GL_FEATURE(f16c), GL_FEATURE(avx512f), GL_FEATURE(avx512bw),
                  GL_FEATURE(avx512vl), GL_FEATURE(avx512vnni), GL_FEATURE(avx512dq), {nullptr, nullptr}},
};
#undef GL_FEATURE

const gl_cpu_feature_info * gl_cpu_level_features(gl_cpu_level level) {
    return k_level_features[(unsigned) level < GL_CPU_LEVEL_COUNT ? level : 0];
}

gl_cpu_level gl_cpu_max_level() {
    const gl_cpu_features & f = gl_cpu_get_features();
    gl_cpu_level best = GL_CPU_SCALAR;
    for (int l = GL_CPU_SCALAR + 1; l < GL_CPU_LEVEL_COUNT; ++l) {
        bool ok = true;
        for (const gl_cpu_feature_info * fi = gl_cpu_level_features((gl_cpu_level) l); fi->name; ++fi) ok = ok && f.*(fi->has);
        if (!ok) break;
        best = (gl_cpu_level) l;
    }
    return best;
}

// ---- extensions: kernels gated on one more feature ----------------------------------------------------------------

const gl_cpu_ext gl_cpu_exts[] = {
    {"avx512vbmi", GL_CPU_AVX512, &gl_cpu_features::avx512vbmi, nullptr, &gl_vq_gemm_avx512},
    {"avx512bf16", GL_CPU_AVX512, &gl_cpu_features::avx512bf16, &gl_kernels_avx512_bf16, nullptr},
};
const int gl_cpu_ext_count = (int) (sizeof(gl_cpu_exts) / sizeof(gl_cpu_exts[0]));
static bool g_ext_enabled = true;

const char * gl_cpu_level_name(gl_cpu_level level) {
    static const char * names[] = {"scalar", "avx2", "avx512"};
    return (unsigned) level < GL_CPU_LEVEL_COUNT ? names[level] : "invalid";
}

bool gl_cpu_level_from_name(const char * name, gl_cpu_level * out) {
    for (int l = 0; l < GL_CPU_LEVEL_COUNT; ++l) {
        if (strcasecmp(name, gl_cpu_level_name((gl_cpu_level) l)) == 0) {
            *out = (gl_cpu_level) l;
            return true;
        }
    }
    return false;
}

// ---- resolved tables ------------------------------------------------------------------------------------------

static gl_type_kernels g_kernels[GL_TYPE_COUNT];
static gl_vq_gemm_fn g_vq[GL_TYPE_COUNT];
static gl_float_kernels g_float;
static gl_cpu_level g_level = GL_CPU_SCALAR;

template <typename T> static void fill(T & dst, const T & src) {
    if (!dst) dst = src;
}

static void fill_kernels(gl_type_kernels & k, const gl_type_kernels & s) {
    fill(k.vec_dot, s.vec_dot);
    fill(k.quantize_act, s.quantize_act);
    fill(k.to_float, s.to_float);
    fill(k.gemm, s.gemm);
    fill(k.axpy, s.axpy);
    fill(k.gemm_x16, s.gemm_x16);
    fill(k.quantize_act_grid, s.quantize_act_grid);
}

static gl_linalg_kernels g_linalg;

static void resolve(gl_cpu_level level) {
    const gl_type_table<gl_type_kernels> * tables[] = {&gl_kernels_scalar, &gl_kernels_avx2, &gl_kernels_avx512};
    const gl_type_table<gl_vq_gemm_fn> * vtables[] = {&gl_vq_gemm_scalar, &gl_vq_gemm_avx2, nullptr};
    const gl_float_kernels * ftables[] = {&gl_float_scalar, &gl_float_avx2, &gl_float_avx512};
    const gl_linalg_kernels * ltables[] = {&gl_linalg_scalar, &gl_linalg_avx2, &gl_linalg_avx512};
    const gl_cpu_features & cf = gl_cpu_get_features();
    for (int t = 0; t < (int) GL_TYPE_COUNT; ++t) {
        gl_type_kernels k = {};
        gl_vq_gemm_fn vq = nullptr;
        for (int l = level; l >= 0; --l) {
            // A level's extensions (the CPU has their feature) come before its own table.
            for (int e = 0; e < gl_cpu_ext_count && g_ext_enabled; ++e) {
                const gl_cpu_ext & x = gl_cpu_exts[e];
                if (x.level != l || !(cf.*(x.feature))) continue;
                if (x.kernels) fill_kernels(k, x.kernels->at[t]);
                if (x.vq) fill(vq, x.vq->at[t]);
            }
            fill_kernels(k, tables[l]->at[t]);
            if (vtables[l]) fill(vq, vtables[l]->at[t]);
        }
        if (gl_get_type_traits((gl_type) t)->vq) {
            GL_ASSERT(vq);
        } else {
            GL_ASSERT(k.vec_dot && k.quantize_act && k.to_float && k.gemm);
            GL_ASSERT(!gl_get_type_traits((gl_type) t)->x16 || k.gemm_x16);
        }
        g_kernels[t] = k;
        g_vq[t] = vq;
    }
    gl_float_kernels f = {};
    for (int l = level; l >= 0; --l) {
        fill(f.dot_f32, ftables[l]->dot_f32);
        fill(f.rms_norm, ftables[l]->rms_norm);
        fill(f.softmax, ftables[l]->softmax);
        fill(f.swiglu, ftables[l]->swiglu);
        fill(f.geglu, ftables[l]->geglu);
        fill(f.add, ftables[l]->add);
        fill(f.att_qk, ftables[l]->att_qk);
        fill(f.att_pv, ftables[l]->att_pv);
    }
    g_float = f;
    gl_linalg_kernels lk = {};
    for (int l = level; l >= 0; --l) {
        if (!ltables[l]) continue;
        fill(lk.gemm_nt_block, ltables[l]->gemm_nt_block);
        fill(lk.axpy_f32, ltables[l]->axpy_f32);
        fill(lk.axpy_f64, ltables[l]->axpy_f64);
        fill(lk.dot_f64, ltables[l]->dot_f64);
        fill(lk.syrk_tile_f64, ltables[l]->syrk_tile_f64);
        for (int d = 0; d < 3; ++d) fill(lk.vq_nearest[d], ltables[l]->vq_nearest[d]);
    }
    g_linalg = lk;
    g_level = level;
}

bool gl_cpu_level_set(gl_cpu_level level) {
    if ((unsigned) level >= GL_CPU_LEVEL_COUNT || level > gl_cpu_max_level()) return false;
    resolve(level);
    return true;
}

gl_cpu_level gl_cpu_level_get() { return g_level; }

void gl_cpu_ext_set_enabled(bool on) {
    g_ext_enabled = on;
    resolve(g_level);
}
bool gl_cpu_ext_enabled() { return g_ext_enabled; }

// At start-up: the best level, or QUILL_CPU's. A bad QUILL_CPU is reported once and ignored rather than
// aborting a library user's program.
static const bool g_init = [] {
    gl_cpu_level level = gl_cpu_max_level();
    if (const char * env = getenv("QUILL_CPU")) {
        gl_cpu_level want;
        if (!gl_cpu_level_from_name(env, &want)) {
            fprintf(stderr, "quill: QUILL_CPU=%s is not one of scalar, avx2, avx512; using %s\n", env, gl_cpu_level_name(level));
        } else if (want > level) {
            fprintf(stderr, "quill: QUILL_CPU=%s: this CPU lacks it; using %s\n", env, gl_cpu_level_name(level));
        } else {
            level = want;
        }
    }
    if (const char * env = getenv("QUILL_CPU_EXT")) g_ext_enabled = strcmp(env, "off") != 0;
    resolve(level);
    return true;
}();

const gl_type_kernels & gl_kernels(gl_type t) { return g_kernels[t]; }
gl_vq_gemm_fn gl_vq_gemm(gl_type t) { return g_vq[t]; }
const gl_float_kernels & gl_float_ops() { return g_float; }
const gl_linalg_kernels & gl_linalg_ops() { return g_linalg; }
