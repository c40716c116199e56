// The kernel harness: every (dispatch variant × registry type × op) against the scalar reference.
//
// A dispatch variant is a level this CPU has, with its feature-gated extensions (gl_cpu_exts) off, and again with
// them on when the CPU has one. Types come from the registry (gl_get_type_traits over 0..GL_TYPE_COUNT), never from a
// list here; an op is checked for a type whenever the scalar table has it. Ops: vec_dot, gemm, quantize_act,
// quantize_act_grid, to_float, axpy, gemm_x16 (the x16 layout), vq_gemm, the float ops and the quantizers' dense
// kernels (gl_linalg_kernels).
//
// What must be bit-identical: the activation quantizers (the bytes decide which integer dot product runs) and every
// to_float. What may differ by rounding: dot products, gemm, axpy and the float ops, which sum in another order
// (vector lanes, FMA, float instead of double accumulators); their tolerances are relative to the sum of the
// magnitudes of the terms, the scale of any summation error.
//
// Every input and output lies in a GuardedBuf: it ends at a page that may not be touched (a read or write past the
// end faults), and starts after canary bytes that must come back unchanged. With CI=true a variant this CPU has that
// the harness did not check is a failure; and every -m flag CMakeLists.txt gives a kernel file must be a feature the
// probe checks for that file's level (or one of its extensions).
#include "tests/test_util.h"

#include "ggml-lite/cpu.h"
#include "ggml-lite/ops.h"
#include "ggml-lite/rowq.h"
#include "ggml-lite/types.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

// ---- guarded buffers -------------------------------------------------------------------------------------------

// n bytes that end exactly at a PROT_NONE page and start after 64 canary bytes.
class GuardedBuf {
  public:
    explicit GuardedBuf(size_t n) : n_(n) {
        const size_t page = (size_t) sysconf(_SC_PAGESIZE);
        const size_t body = (n + kCanary + page - 1) / page * page;
        map_len_ = body + page;
        base_ = (uint8_t *) mmap(nullptr, map_len_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        REQUIRE(base_ != (uint8_t *) MAP_FAILED);
        REQUIRE(mprotect(base_ + body, page, PROT_NONE) == 0);
        data_ = base_ + body - n;
        memset(base_, kFill, body - n);
    }
    ~GuardedBuf() { munmap(base_, map_len_); }
    GuardedBuf(const GuardedBuf &) = delete;
    GuardedBuf & operator=(const GuardedBuf &) = delete;

    uint8_t * data() { return data_; }
    float *   f() { return (float *) data_; }
    size_t    size() const { return n_; }
    // The canary bytes before the data are untouched.
    bool intact() const {
        for (const uint8_t * p = data_ - kCanary; p < data_; ++p)
            if (*p != kFill) return false;
        return true;
    }
    void fill(const void * src) { memcpy(data_, src, n_); }

  private:
    static constexpr size_t  kCanary = 64;
    static constexpr uint8_t kFill = 0xA5;
    size_t    n_, map_len_ = 0;
    uint8_t * base_ = nullptr;
    uint8_t * data_ = nullptr;
};

// ---- variants ----------------------------------------------------------------------------------------------------

struct Variant {
    gl_cpu_level level;
    bool         ext;
    std::string  name() const { return std::string(gl_cpu_level_name(level)) + (ext ? "+ext" : ""); }
    bool operator<(const Variant & o) const { return level != o.level ? level < o.level : ext < o.ext; }
};

bool cpu_has_ext_at(gl_cpu_level level) {
    for (int e = 0; e < gl_cpu_ext_count; ++e) {
        if (gl_cpu_exts[e].level <= level && gl_cpu_get_features().*(gl_cpu_exts[e].feature)) return true;
    }
    return false;
}

// Every variant this CPU has above the scalar reference.
std::vector<Variant> cpu_variants() {
    std::vector<Variant> out;
    for (int l = GL_CPU_SCALAR + 1; l <= (int) gl_cpu_max_level(); ++l) {
        out.push_back({(gl_cpu_level) l, false});
        if (cpu_has_ext_at((gl_cpu_level) l)) out.push_back({(gl_cpu_level) l, true});
    }
    return out;
}

std::set<Variant> & checked() {
    static std::set<Variant> s;
    return s;
}

// Sets a variant active for its scope, and puts back the level and extension state it found.
struct VariantScope {
    gl_cpu_level saved_level = gl_cpu_level_get();
    bool         saved_ext = gl_cpu_ext_enabled();
    explicit VariantScope(const Variant & v) {
        REQUIRE(gl_cpu_level_set(v.level));
        gl_cpu_ext_set_enabled(v.ext);
    }
    ~VariantScope() {
        gl_cpu_level_set(saved_level);
        gl_cpu_ext_set_enabled(saved_ext);
    }
};

// ---- inputs ------------------------------------------------------------------------------------------------------

uint32_t f32_bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
float bits_f32(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

std::vector<float> normal_floats(std::mt19937 & rng, int64_t n, float scale = 1.0f) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v((size_t) n);
    for (float & x : v) x = d(rng);
    return v;
}

// Types with row kernels (every type but the codebook ones), from the registry.
std::vector<gl_type> row_types() {
    std::vector<gl_type> out;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (gl_kernels_scalar.at[t].vec_dot) out.push_back((gl_type) t);
    }
    return out;
}

// Types that are some type's activation format (other than F32, which is used as is).
std::vector<gl_type> act_types() {
    std::set<gl_type> s;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        const gl_type vt = gl_get_type_traits((gl_type) t)->vec_dot_type;
        if (vt != GL_TYPE_F32) s.insert(vt);
    }
    return std::vector<gl_type>(s.begin(), s.end());
}

// The first byte of a block after its scale (and zero point): the codes (per-row types: the whole block).
size_t code_offset(const gl_type_traits * tr) { return tr->row_header ? 0 : tr->intq ? 3 : 2; }

// Per-row types: the header's code sum again, after a row's codes were changed in place.
void refresh_row_sums(gl_type t, int64_t n, uint8_t * row) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    if (!tr->row_header) return;
    if (t == GL_TYPE_A8_ROW) {
        gl_row_header_a8 h;
        memcpy(&h, row, sizeof h);
        h.csum = 0;
        for (int64_t i = 0; i < n; ++i) h.csum += (int8_t) row[GL_ROW_HEADER_A + i];
        memcpy(row, &h, sizeof h);
        return;
    }
    const int bits = (int) (tr->type_size * 8 / 32);
    std::vector<uint8_t> codes((size_t) n);
    uint16_t d16;
    uint8_t z;
    gl_row_unpack(bits, n, row, codes.data(), &d16, &z);
    gl_row_pack(bits, n, codes.data(), d16, z, row);
}

// A row of n elements of type t: reference-quantized random floats; for quantized types a third of the blocks get
// random code bytes (the full code range: -128 for Q8_0, every nibble for Q4_0).
std::vector<uint8_t> random_row(std::mt19937 & rng, gl_type t, int64_t n) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    std::vector<float> f = normal_floats(rng, n);
    std::vector<uint8_t> row(gl_row_size(t, n));
    tr->from_float(f.data(), row.data(), n);
    if (tr->is_quantized) {
        for (int64_t b = 0; b < n / tr->block_size; ++b) {
            if (rng() % 3 != 0) continue;
            uint8_t * blk = row.data() + tr->row_header + b * tr->type_size;
            for (size_t j = code_offset(tr); j < tr->type_size; ++j) blk[j] = (uint8_t) rng();
        }
        refresh_row_sums(t, n, row.data());
    }
    return row;
}

// Activations for weights of type t, in its vec_dot_type, from the reference quantizer.
std::vector<uint8_t> random_act(std::mt19937 & rng, gl_type t, int64_t n) {
    const gl_type vt = gl_get_type_traits(t)->vec_dot_type;
    std::vector<float> f = normal_floats(rng, n, 3.0f);
    std::vector<uint8_t> row(gl_row_size(vt, n));
    gl_get_type_traits(vt)->from_float(f.data(), row.data(), n);
    return row;
}

// Σ |x_i y_i| of the widened rows: the scale of any summation order's rounding error.
double sum_abs_products(gl_type t, const void * x, const void * y, int64_t n) {
    const gl_type vt = gl_get_type_traits(t)->vec_dot_type;
    std::vector<float> fx((size_t) n), fy((size_t) n);
    gl_get_type_traits(t)->to_float(x, fx.data(), n);
    gl_get_type_traits(vt)->to_float(y, fy.data(), n);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::fabs((double) fx[(size_t) i] * fy[(size_t) i]);
    return s;
}

// Random row lengths: whole blocks for quantized types (1, 2, 3, 7 and 129 blocks: 129 crosses a gemm's 64-block
// segments twice, capped near 16k elements), any length for float types (every tail of a 16- or 32-wide vector).
std::vector<int64_t> row_sizes(gl_type t) {
    const int64_t bs = gl_get_type_traits(t)->block_size;
    if (bs > 1) {
        std::vector<int64_t> out;
        for (int64_t nb : {1, 2, 3, 7, 129})
            if (nb * bs <= 16512) out.push_back(nb * bs);
        return out;
    }
    return {1, 2, 7, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 1001, 4096};
}

// Special floats for the bit-exact conversions: random bit patterns (NaNs, infinities, subnormals), rounding ties
// of fp16 and bf16, the edges of fp16's range.
std::vector<float> conversion_inputs(std::mt19937 & rng) {
    std::vector<float> v;
    for (int i = 0; i < 200000; ++i) v.push_back(bits_f32((uint32_t) rng()));
    for (int i = 0; i < 20000; ++i) v.push_back(normal_floats(rng, 1, 100.0f)[0]);
    for (int i = 0; i < 4000; ++i) {
        const float f = normal_floats(rng, 1, 100.0f)[0];
        v.push_back(bits_f32((f32_bits(f) & 0xffff0000u) | 0x8000u));  // exact bf16 ties
        v.push_back(bits_f32((f32_bits(f) & 0xffffe000u) | 0x1000u));  // exact fp16 ties
    }
    for (uint32_t base : {0x3f800000u, 0x40490000u, 0x38800000u, 0x33800000u, 0x477fe000u, 0x00000001u, 0x7f7f0000u}) {
        for (uint32_t sgn : {0u, 0x80000000u}) {
            for (uint32_t off : {0x0fffu, 0x1000u, 0x1001u, 0x3000u, 0x7fffu, 0x8000u, 0x8001u, 0x18000u, 0x2000u, 0u}) {
                v.push_back(bits_f32(sgn | (base + off)));
            }
        }
    }
    for (float f : {0.0f, -0.0f, 65504.0f, 65519.0f, 65519.99f, 65520.0f, -65520.0f, 5.9604645e-8f, 2.9802322e-8f, 8.940697e-8f, 1e-45f,
                    6.1e-5f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                    std::numeric_limits<float>::quiet_NaN(), bits_f32(0x7f800001u), bits_f32(0xffffffffu), bits_f32(0x7fc00001u),
                    bits_f32(0xffc12345u), bits_f32(0x7fbfffffu)}) {
        v.push_back(f);
    }
    return v;
}

// Rows for the block quantizers (Q8_0): random rows, exact halves, zero blocks, all-negative, huge, tiny, subnormal.
std::vector<std::vector<float>> block_quantizer_rows(std::mt19937 & rng) {
    std::vector<std::vector<float>> rows;
    for (int64_t n : {32, 64, 96, 224, 4096}) rows.push_back(normal_floats(rng, n, 3.0f));
    std::vector<float> r(64);
    for (int j = 0; j < 64; ++j) r[(size_t) j] = (float) (j - 32) + 0.5f;
    r[0] = 127.0f;
    r[32] = -127.0f;
    r[40] = -0.5f;
    r[41] = 0.5f;
    r[42] = -1.5f;
    rows.push_back(r);
    std::vector<float> q(32);
    for (int j = 0; j < 32; ++j) q[(size_t) j] = (j - 16) * 0.25f;
    q[5] = -63.5f;
    rows.push_back(q);
    std::vector<float> w(32);
    for (int j = 0; j < 32; ++j) w[(size_t) j] = ((float) (j - 16) + 0.5f) * 0.37f;
    w[3] = 127.0f * 0.37f;
    rows.push_back(w);
    rows.push_back(std::vector<float>(96, 0.0f));   // blocks of zeros: d = 0
    rows.push_back(std::vector<float>(32, -0.0f));  // negative zeros
    std::vector<float> m(128);
    for (int j = 0; j < 32; ++j) m[(size_t) j] = -std::fabs(normal_floats(rng, 1)[0]);    // negatives only
    for (int j = 32; j < 64; ++j) m[(size_t) j] = (j % 2 ? 1e30f : -3e38f) * (float) j / 64;  // huge
    for (int j = 64; j < 96; ++j) m[(size_t) j] = (float) (j - 80) * 1e-30f;                 // tiny
    m[70] = 1e-40f;                                                                            // subnormal
    m[71] = -3e-41f;
    for (int j = 96; j < 128; ++j) m[(size_t) j] = j == 100 ? -0.0f : (j == 101 ? 65504.0f : 0.0f);
    m[110] = std::numeric_limits<float>::max();
    m[111] = -std::numeric_limits<float>::max();
    rows.push_back(m);
    return rows;
}

bool same_bits(const float * a, const float * b, int64_t n, int64_t * where) {
    for (int64_t i = 0; i < n; ++i) {
        if (f32_bits(a[i]) != f32_bits(b[i])) {
            *where = i;
            return false;
        }
    }
    return true;
}

// ---- the ops -----------------------------------------------------------------------------------------------------

void check_vec_dot(std::mt19937 & rng, gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    const gl_type vt = tr->vec_dot_type;
    for (int64_t n : row_sizes(t)) {
        CAPTURE(n);
        for (int rep = 0; rep < 4; ++rep) {
            const std::vector<uint8_t> x = random_row(rng, t, n), y = random_act(rng, t, n);
            GuardedBuf gx(x.size()), gy(y.size());
            gx.fill(x.data());
            gy.fill(y.data());
            float ref = 0, got = 0;
            tr->vec_dot(n, &ref, x.data(), y.data());
            gl_kernels(t).vec_dot(n, &got, gx.data(), gy.data());
            // float accumulators over ~n/32 partial sums: a few ulp of the magnitude sum, far below one term
            CHECK(std::fabs((double) got - (double) ref) <= 1e-5 * sum_abs_products(t, x.data(), y.data(), n) + 1e-30);
        }
    }
    // With unit scales and small codes against Q8_0 activations every partial sum is an exact integer in float: any
    // order gives the same result, so a misplaced element cannot hide inside the tolerance.
    if (!tr->is_quantized || vt != GL_TYPE_Q8_0) return;
    for (int64_t n : row_sizes(t)) {
        CAPTURE(n);
        const int64_t nb = n / tr->block_size, na = n / 32;
        std::vector<uint8_t> x(gl_row_size(t, n));
        std::vector<gl_block_q8_0> y((size_t) na);
        const uint16_t one = 0x3c00;
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t * blk = x.data() + b * tr->type_size;
            memcpy(blk, &one, 2);
            if (tr->intq) blk[2] = (uint8_t) (rng() % (1u << tr->intq->bits));
            for (size_t j = code_offset(tr); j < tr->type_size; ++j)
                blk[j] = t == GL_TYPE_Q8_0 ? (uint8_t) (int8_t) ((int) (rng() % 33) - 16) : (uint8_t) rng();
        }
        for (int64_t b = 0; b < na; ++b) {
            y[(size_t) b].d = one;
            for (int j = 0; j < 32; ++j) y[(size_t) b].qs[j] = (int8_t) ((int) (rng() % 255) - 127);
        }
        GuardedBuf gx(x.size()), gy(y.size() * sizeof(gl_block_q8_0));
        gx.fill(x.data());
        gy.fill(y.data());
        float ref = 0, got = 0;
        tr->vec_dot(n, &ref, x.data(), y.data());
        gl_kernels(t).vec_dot(n, &got, gx.data(), gy.data());
        CHECK(got == ref);
    }
}

// The x16 layout's product: random plain rows, regrouped by gl_x16_pack (whose scalar product must equal the plain
// rows' dot products exactly), then the level's kernel against those. 240 rows = 15 groups, so decode's runs of
// 8, 4, 2 and 1 groups in step all run; 9 tokens cross the batch kernels' token tiles; 520 blocks cross decode's
// activation segment (512 blocks).
void check_gemm_x16(std::mt19937 & rng, gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    const gl_type vt = tr->vec_dot_type;
    const float guard_value = -12345.5f;
    std::vector<int64_t> sizes = row_sizes(t);
    sizes.push_back(301 * tr->block_size);
    sizes.push_back(520 * tr->block_size);
    for (int64_t n : sizes) {
        CAPTURE(n);
        const int64_t max_r = n > 301 * tr->block_size ? 16 : 240, max_t = 9;
        const size_t rs = gl_row_size(t, n), a_stride = gl_row_size(vt, n);
        std::vector<uint8_t> plain(rs * (size_t) max_r);
        for (int64_t r = 0; r < max_r; ++r) {
            const std::vector<uint8_t> row = random_row(rng, t, n);
            memcpy(plain.data() + r * rs, row.data(), rs);
        }
        GuardedBuf w(rs * (size_t) max_r), a(a_stride * (size_t) max_t);
        gl_x16_pack(t, n, max_r, plain.data(), w.data());
        for (int64_t k = 0; k < max_t; ++k) {
            const std::vector<uint8_t> row = random_act(rng, t, n);
            memcpy(a.data() + k * a_stride, row.data(), row.size());
        }
        std::vector<double> ref((size_t) (max_r * max_t)), tol((size_t) (max_r * max_t));
        for (int64_t r = 0; r < max_r; ++r) {
            for (int64_t k = 0; k < max_t; ++k) {
                float s = 0;
                tr->vec_dot(n, &s, plain.data() + r * rs, a.data() + k * a_stride);
                ref[(size_t) (r * max_t + k)] = s;
                tol[(size_t) (r * max_t + k)] = 1e-5 * sum_abs_products(t, plain.data() + r * rs, a.data() + k * a_stride, n) + 1e-30;
            }
        }
        for (bool scalar : {true, false}) {
            const gl_gemm_fn fn = scalar ? gl_kernels_scalar.at[t].gemm_x16 : gl_kernels(t).gemm_x16;
            CAPTURE(scalar);
            for (int64_t nt = 1; nt <= max_t; ++nt) {
                CAPTURE(nt);
                // The last nt tokens, so the last one ends at the guard page.
                const int64_t t0 = max_t - nt, ys = max_r + 3;
                GuardedBuf y((size_t) (ys * nt + 8) * sizeof(float));
                for (int64_t i = 0; i < ys * nt + 8; ++i) y.f()[i] = guard_value;
                fn(n, max_r, nt, w.data(), rs, a.data() + t0 * a_stride, a_stride, y.f() + 4, ys);
                int bad = 0;
                for (int64_t i = 0; i < ys * nt + 8; ++i) {
                    const int64_t off = i - 4, tok = off / ys, r = off % ys;
                    const float v = y.f()[i];
                    if (!(off >= 0 && tok < nt && r < max_r)) {
                        if (v != guard_value && bad++ < 3) FAIL_CHECK("wrote outside the tile at " << off);
                        continue;
                    }
                    const size_t ri = (size_t) (r * max_t + t0 + tok);
                    const bool ok = scalar ? (double) v == (double) (float) ref[ri] : std::fabs((double) v - ref[ri]) <= tol[ri];
                    if (!ok && bad++ < 3) FAIL_CHECK("row " << r << " token " << tok << ": " << v << " vs " << ref[ri]);
                }
            }
        }
    }
}

void check_gemm(std::mt19937 & rng, gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    const gl_type vt = tr->vec_dot_type;
    const float guard_value = -12345.5f;
    std::vector<int64_t> sizes = row_sizes(t);
    if (tr->block_size > 1 && 301 * tr->block_size <= 16512) sizes.push_back(301 * tr->block_size);
    for (int64_t n : sizes) {
        CAPTURE(n);
        // Rows with slack between them (strides are not row sizes), the last one ending at the guard page.
        const size_t w_stride = gl_row_size(t, n) + 2 * tr->type_size;
        const size_t a_stride = gl_row_size(vt, n) + 2 * gl_get_type_traits(vt)->type_size;
        const int64_t max_r = 16, max_t = 8;
        GuardedBuf w(w_stride * (max_r - 1) + gl_row_size(t, n)), a(a_stride * (max_t - 1) + gl_row_size(vt, n));
        std::vector<double> ref((size_t) (max_r * max_t)), tol((size_t) (max_r * max_t));
        for (int64_t r = 0; r < max_r; ++r) {
            const std::vector<uint8_t> row = random_row(rng, t, n);
            memcpy(w.data() + r * w_stride, row.data(), row.size());
        }
        for (int64_t k = 0; k < max_t; ++k) {
            const std::vector<uint8_t> row = random_act(rng, t, n);
            memcpy(a.data() + k * a_stride, row.data(), row.size());
        }
        for (int64_t r = 0; r < max_r; ++r) {
            for (int64_t k = 0; k < max_t; ++k) {
                float s = 0;
                tr->vec_dot(n, &s, w.data() + r * w_stride, a.data() + k * a_stride);
                ref[(size_t) (r * max_t + k)] = s;
                tol[(size_t) (r * max_t + k)] = 1e-5 * sum_abs_products(t, w.data() + r * w_stride, a.data() + k * a_stride, n) + 1e-30;
            }
        }
        for (int64_t nr : {1, 3, 4, 5, 16}) {
            for (int64_t nt : {1, 2, 3, 4, 5, 6, 7, 8}) {
                CAPTURE(nr);
                CAPTURE(nt);
                // The tile of the last nr rows and nt tokens, so the last ones touch the guard pages.
                const int64_t r0 = max_r - nr, t0 = max_t - nt, ys = nr + 3;
                GuardedBuf y((size_t) (ys * nt + 8) * sizeof(float));
                for (int64_t i = 0; i < ys * nt + 8; ++i) y.f()[i] = guard_value;
                gl_kernels(t).gemm(n, nr, nt, w.data() + r0 * w_stride, w_stride, a.data() + t0 * a_stride, a_stride, y.f() + 4, ys);
                int bad = 0;
                for (int64_t i = 0; i < ys * nt + 8; ++i) {
                    const int64_t off = i - 4, tok = off / ys, r = off % ys;
                    const bool inside = off >= 0 && tok < nt && r < nr;
                    const float v = y.f()[i];
                    if (!inside) {
                        if (v != guard_value && bad++ < 3) FAIL_CHECK("wrote outside the tile at " << off);
                        continue;
                    }
                    const size_t ri = (size_t) ((r0 + r) * max_t + t0 + tok);
                    if (!(std::fabs((double) v - ref[ri]) <= tol[ri]) && bad++ < 3)
                        FAIL_CHECK("row " << r << " token " << tok << ": " << v << " vs " << ref[ri]);
                }
                CHECK(bad == 0);
                CHECK(y.intact());
            }
        }
        CHECK(w.intact());
        CHECK(a.intact());
    }
}

// Byte-identical with the reference quantizer, nothing written past the end.
void check_quantize_act(std::mt19937 & rng, gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    std::vector<std::vector<float>> rows;
    if (tr->block_size == 1) {
        const std::vector<float> in = conversion_inputs(rng);
        rows.push_back(in);
        for (int64_t n : {1, 3, 7, 8, 9, 15, 17, 33}) rows.emplace_back(in.begin() + 5, in.begin() + 5 + n);
    } else {
        for (const std::vector<float> & r : block_quantizer_rows(rng)) {
            if ((int64_t) r.size() % tr->block_size == 0) rows.push_back(r);
        }
    }
    for (const std::vector<float> & r : rows) {
        const int64_t n = (int64_t) r.size();
        CAPTURE(n);
        std::vector<uint8_t> ref(gl_row_size(t, n));
        tr->from_float(r.data(), ref.data(), n);
        GuardedBuf in(r.size() * sizeof(float)), out(ref.size());
        in.fill(r.data());
        memset(out.data(), 0xcd, out.size());
        gl_kernels(t).quantize_act(in.f(), out.data(), n);
        size_t bad = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
            if (ref[i] != out.data()[i] && bad++ < 5) FAIL_CHECK("byte " << i << ": ref " << (int) ref[i] << " got " << (int) out.data()[i]);
        }
        CHECK(bad == 0);
        CHECK(out.intact());
    }
}

// On static grids (quantize_act_grid: a8_row): byte-identical with the reference, values past the grid clamped, NaN
// and infinities as the reference treats them, nothing written past the end.
void check_quantize_act_grid(std::mt19937 & rng, gl_type t) {
    const gl_from_float_grid_fn ref_fn = gl_kernels_scalar.at[t].quantize_act_grid;
    std::vector<std::vector<float>> rows;
    for (const std::vector<float> & r : block_quantizer_rows(rng)) {
        if ((int64_t) r.size() % gl_get_type_traits(t)->block_size == 0) rows.push_back(r);
    }
    std::vector<float> special(96, 0.5f);
    special[3] = NAN, special[17] = INFINITY, special[40] = -INFINITY, special[63] = 1e30f, special[80] = -1e30f;
    rows.push_back(special);
    const std::pair<float, int32_t> grids[] = {{0.01f, 0}, {0.05f, -128}, {0.003f, 127}, {1e-30f, -7}, {7.0f, 50}};
    for (const std::vector<float> & r : rows) {
        for (const auto & g : grids) {
            const int64_t n = (int64_t) r.size();
            CAPTURE(n);
            CAPTURE(g.first);
            CAPTURE(g.second);
            std::vector<uint8_t> ref(gl_row_size(t, n));
            ref_fn(r.data(), ref.data(), n, g.first, g.second);
            GuardedBuf in(r.size() * sizeof(float)), out(ref.size());
            in.fill(r.data());
            memset(out.data(), 0xcd, out.size());
            gl_kernels(t).quantize_act_grid(in.f(), out.data(), n, g.first, g.second);
            size_t bad = 0;
            for (size_t i = 0; i < ref.size(); ++i) {
                if (ref[i] != out.data()[i] && bad++ < 5) FAIL_CHECK("byte " << i << ": ref " << (int) ref[i] << " got " << (int) out.data()[i]);
            }
            CHECK(bad == 0);
            CHECK(out.intact());
        }
    }
}

void check_to_float(std::mt19937 & rng, gl_type t) {
    const gl_type_traits * tr = gl_get_type_traits(t);
    std::vector<std::vector<uint8_t>> inputs;
    if (tr->block_size == 1 && tr->type_size == 2) {  // every 16-bit pattern
        std::vector<uint8_t> all(65536 * 2);
        for (uint32_t i = 0; i < 65536; ++i) all[2 * i] = (uint8_t) i, all[2 * i + 1] = (uint8_t) (i >> 8);
        inputs.push_back(all);
    }
    for (int64_t n : row_sizes(t)) {
        std::vector<uint8_t> row(gl_row_size(t, n));
        for (uint8_t & b : row) b = (uint8_t) rng();
        inputs.push_back(row);
    }
    for (const std::vector<uint8_t> & row : inputs) {
        const int64_t n = (int64_t) ((row.size() - tr->row_header) / tr->type_size) * tr->block_size;
        CAPTURE(n);
        std::vector<float> ref((size_t) n);
        tr->to_float(row.data(), ref.data(), n);
        GuardedBuf in(row.size()), out((size_t) n * sizeof(float));
        in.fill(row.data());
        gl_kernels(t).to_float(in.data(), out.f(), n);
        int64_t where = -1;
        CHECK_MESSAGE(same_bits(ref.data(), out.f(), n, &where), "first difference at " << where);
        CHECK(out.intact());
    }
}

void check_axpy(std::mt19937 & rng, gl_type t) {
    for (int64_t n : {1, 7, 8, 9, 15, 16, 17, 33, 1001}) {
        CAPTURE(n);
        const std::vector<uint8_t> x = random_row(rng, t, n);
        const std::vector<float> y0 = normal_floats(rng, n);
        std::vector<float> ref = y0;
        const float a = 0.37f;
        gl_kernels_scalar.at[t].axpy(n, a, x.data(), ref.data());
        GuardedBuf gx(x.size()), gy(y0.size() * sizeof(float));
        gx.fill(x.data());
        gy.fill(y0.data());
        gl_kernels(t).axpy(n, a, gx.data(), gy.f());
        std::vector<float> fx((size_t) n);
        gl_get_type_traits(t)->to_float(x.data(), fx.data(), n);
        for (int64_t i = 0; i < n; ++i) {
            const double tol = 2.5e-7 * (std::fabs(y0[(size_t) i]) + std::fabs(a * fx[(size_t) i])) + 1e-30;
            CHECK(std::fabs((double) gy.f()[i] - ref[(size_t) i]) <= tol);
        }
        CHECK(gy.intact());
    }
}

// A random tensor of codebook type t (ne0 × ne1) in a guarded buffer, against rows of Q8_0 activations.
void check_vq_gemm(std::mt19937 & rng, gl_type t) {
    // 4352 and 12544 columns: more groups than one pass of the decode's lane walk holds (16 for 3-4 tokens, 48 for 1-2)
    for (int64_t ne0 : {32, 64, 172, 256, 288, 1024, 4352, 12544}) {
        for (int64_t ne1 : {1, 3, 17, 40}) {
            gl_vq_geom g;
            if (!gl_vq_geometry(t, ne0, ne1, &g)) continue;
            CAPTURE(ne0);
            CAPTURE(ne1);
            std::vector<uint8_t> idx((size_t) (ne1 * (ne0 / g.dim)));
            for (uint8_t & v : idx) v = (uint8_t) (rng() % (uint32_t) g.k);
            std::vector<int8_t> cb((size_t) (g.n_groups * g.k * g.dim));
            for (int8_t & v : cb) v = (int8_t) (rng() % 256);
            std::vector<uint16_t> sc((size_t) g.n_groups);
            for (uint16_t & v : sc) v = gl_fp32_to_fp16(0.001f + (float) (rng() % 1000) * 1e-5f);
            GuardedBuf w(g.total_bytes);
            gl_vq_pack(g, idx.data(), cb.data(), sc.data(), w.data());
            const int64_t ntmax = 5, act_n = gl_act_row_elems(t, ne0);
            const size_t act_row = gl_act_row_size(t, ne0);
            std::vector<float> xf((size_t) (ntmax * act_n), 0.0f);
            for (int64_t k = 0; k < ntmax; ++k) {
                const std::vector<float> r = normal_floats(rng, ne0, 2.0f);
                std::copy(r.begin(), r.end(), xf.begin() + k * act_n);  // the padding stays zero
            }
            GuardedBuf a(act_row * (size_t) ntmax);
            for (int64_t k = 0; k < ntmax; ++k) gl_get_type_traits(GL_TYPE_Q8_0)->from_float(&xf[(size_t) (k * act_n)], a.data() + k * act_row, act_n);
            for (const int64_t nt : {1, 2, 3, 4, 5}) {  // the decode kernels (1-4 tokens) and the batch kernel
                CAPTURE(nt);
                for (int64_t r0 : {(int64_t) 0, ne1 / 2}) {
                    const int64_t nr = ne1 - r0;
                    std::vector<float> ref((size_t) (nr * nt));
                    gl_vq_gemm_scalar.at[t](g, w.data(), r0, nr, nt, a.data(), act_row, ref.data(), nr);
                    GuardedBuf y((size_t) (nr * nt) * sizeof(float));
                    gl_vq_gemm(t)(g, w.data(), r0, nr, nt, a.data(), act_row, y.f(), nr);
                    std::vector<float> wf((size_t) ne0), af((size_t) act_n);
                    for (int64_t r = 0; r < nr; ++r) {
                        gl_vq_row_to_float(g, w.data(), r0 + r, wf.data());
                        for (int64_t k = 0; k < nt; ++k) {
                            gl_get_type_traits(GL_TYPE_Q8_0)->to_float(a.data() + k * act_row, af.data(), act_n);
                            double mag = 0;
                            for (int64_t i = 0; i < ne0; ++i) mag += std::fabs((double) wf[(size_t) i] * af[(size_t) i]);
                            CHECK(std::fabs((double) y.f()[k * nr + r] - ref[(size_t) (k * nr + r)]) <= 1e-5 * mag + 1e-30);
                        }
                    }
                    CHECK(y.intact());
                }
            }
            CHECK(w.intact());
            CHECK(a.intact());
        }
    }
}

void check_float_ops(std::mt19937 & rng) {
    const float inf = std::numeric_limits<float>::infinity();
    const gl_float_kernels & f = gl_float_ops();
    for (int64_t n : {1, 2, 7, 8, 9, 15, 16, 17, 33, 100, 4096}) {
        CAPTURE(n);
        const std::vector<float> xv = normal_floats(rng, n), wv = normal_floats(rng, n);
        GuardedBuf x(xv.size() * 4), w(wv.size() * 4);
        x.fill(xv.data());
        w.fill(wv.data());
        double sabs = 0;
        for (int64_t i = 0; i < n; ++i) sabs += std::fabs((double) xv[(size_t) i] * wv[(size_t) i]);
        CHECK(std::fabs((double) f.dot_f32(n, x.f(), w.f()) - gl_float_scalar.dot_f32(n, xv.data(), wv.data())) <= 1e-5 * sabs + 1e-30);
        // rms_norm, with and without weight
        for (bool weighted : {true, false}) {
            std::vector<float> ref((size_t) n);
            gl_float_scalar.rms_norm(xv.data(), weighted ? wv.data() : nullptr, n, 1e-5f, ref.data());
            GuardedBuf got((size_t) n * 4);
            f.rms_norm(x.f(), weighted ? w.f() : nullptr, n, 1e-5f, got.f());
            for (int64_t i = 0; i < n; ++i) CHECK(got.f()[i] == doctest::Approx(ref[(size_t) i]).epsilon(2e-6));
            CHECK(got.intact());
        }
        // swiglu over a wide range of gates (e^-g overflows and underflows at the ends)
        std::vector<float> gv = normal_floats(rng, n, 20.0f);
        if (n > 4) { gv[0] = 100.0f; gv[1] = -100.0f; gv[2] = -1000.0f; gv[3] = 0.0f; }
        GuardedBuf g(gv.size() * 4), got((size_t) n * 4);
        g.fill(gv.data());
        std::vector<float> ref((size_t) n);
        gl_float_scalar.swiglu(gv.data(), xv.data(), n, ref.data());
        f.swiglu(g.f(), x.f(), n, got.f());
        for (int64_t i = 0; i < n; ++i) {
            CAPTURE(gv[(size_t) i]);
            CHECK(std::fabs(got.f()[i] - ref[(size_t) i]) <= 1e-6 * std::fabs(ref[(size_t) i]) + 1e-37);
        }
        CHECK(got.intact());
        // softmax: plain, scaled, large inputs, -inf entries (masked positions)
        for (float scale : {1.0f, 0.125f, 30.0f}) {
            CAPTURE(scale);
            std::vector<float> s = normal_floats(rng, n, 10.0f);
            if (n > 3) { s[1] = 1000.0f; s[2] = -inf; s[3] = 999.0f; }
            std::vector<float> r1 = s;
            GuardedBuf r2(s.size() * 4);
            r2.fill(s.data());
            gl_float_scalar.softmax(r1.data(), n, scale);
            f.softmax(r2.f(), n, scale);
            double total = 0;
            for (int64_t i = 0; i < n; ++i) {
                CHECK(std::fabs(r2.f()[i] - r1[(size_t) i]) <= 2e-6 * r1[(size_t) i] + 1e-44);
                total += r2.f()[i];
            }
            CHECK(total == doctest::Approx(1.0).epsilon(1e-5));
            CHECK(r2.intact());
        }
    }
    // The exponential across its whole range, through softmax of {0, v}: e^v / (1 + e^v), down into the subnormal
    // results and up to where the other entry vanishes.
    int bad = 0;
    for (float v = -110.0f; v <= 110.0f; v += 0.0371f) {
        float r1[2] = {0.0f, v}, r2[2] = {0.0f, v};
        gl_float_scalar.softmax(r1, 2, 1.0f);
        f.softmax(r2, 2, 1.0f);
        for (int k = 0; k < 2; ++k) {
            if (!(std::fabs(r2[k] - r1[k]) <= 1e-6 * r1[k] + 3e-45) && bad++ < 5) FAIL_CHECK("v = " << v << ": " << r2[k] << " vs " << r1[k]);
        }
    }
    CHECK(bad == 0);
}

// Batched attention's products (cpu.h att_qk, att_pv): every output one FMA chain in index order, so every level
// gives the reference's bits; query-row counts that do not fill a tile, key and dim counts of 16 to 144 (the contract:
// multiples of 16), strides wider than the rows, and nothing written outside the outputs' rows.
void check_att_products(std::mt19937 & rng) {
    const gl_float_kernels & f = gl_float_ops();
    for (int64_t nq : {1, 3, 4, 7, 9}) {
        for (int64_t hd : {16, 48, 64, 80, 128}) {
            for (int64_t n : {16, 64, 80, 144}) {
                CAPTURE(nq);
                CAPTURE(hd);
                CAPTURE(n);
                const int64_t ldq = hd + 5, ldk = n + 3, lds = n + 7, ldv = hd + 2, ldo = hd + 9;
                const std::vector<float> q = normal_floats(rng, nq * ldq), kt = normal_floats(rng, hd * ldk), v = normal_floats(rng, n * ldv);
                std::vector<float> p = normal_floats(rng, nq * lds);
                std::vector<float> s_ref((size_t) (nq * lds), 7.0f), o_ref((size_t) (nq * ldo), 7.0f);
                gl_float_scalar.att_qk(nq, hd, n, q.data(), ldq, kt.data(), ldk, s_ref.data(), lds);
                gl_float_scalar.att_pv(nq, hd, n, p.data(), lds, v.data(), ldv, o_ref.data(), ldo);
                GuardedBuf S(s_ref.size() * 4), O(o_ref.size() * 4);
                std::vector<float> sevens(std::max(s_ref.size(), o_ref.size()), 7.0f);
                S.fill(sevens.data());
                O.fill(sevens.data());
                f.att_qk(nq, hd, n, q.data(), ldq, kt.data(), ldk, S.f(), lds);
                f.att_pv(nq, hd, n, p.data(), lds, v.data(), ldv, O.f(), ldo);
                CHECK(memcmp(S.f(), s_ref.data(), s_ref.size() * 4) == 0);  // the padding between rows untouched too
                CHECK(memcmp(O.f(), o_ref.data(), o_ref.size() * 4) == 0);
                CHECK(S.intact());
                CHECK(O.intact());
                double sq = 0;  // and the reference is the product
                for (int64_t d = 0; d < hd; ++d) sq += (double) q[(size_t) d] * kt[(size_t) (d * ldk + n - 1)];
                CHECK(std::fabs(s_ref[(size_t) (n - 1)] - sq) <= 1e-4 * (1 + std::fabs(sq)));
            }
        }
    }
}

// The quantizers' dense kernels against the scalar level's.
void check_linalg(std::mt19937 & rng) {
    const gl_linalg_kernels & L = gl_linalg_ops();
    const gl_linalg_kernels & S = gl_linalg_scalar;
    for (auto sh : {std::vector<int64_t>{1, 1, 1}, {5, 7, 3}, {13, 9, 33}, {70, 66, 130}, {3, 200, 1100}}) {
        const int64_t m = sh[0], n = sh[1], k = sh[2];
        CAPTURE(m);
        CAPTURE(n);
        CAPTURE(k);
        const std::vector<float> Av = normal_floats(rng, m * k), Bv = normal_floats(rng, n * k), C0 = normal_floats(rng, m * n);
        GuardedBuf A(Av.size() * 4), B(Bv.size() * 4), C(C0.size() * 4);
        A.fill(Av.data());
        B.fill(Bv.data());
        for (bool add : {false, true}) {
            std::vector<float> ref = C0;
            S.gemm_nt_block(m, n, k, Av.data(), k, Bv.data(), k, ref.data(), n, add);
            C.fill(C0.data());
            L.gemm_nt_block(m, n, k, A.f(), k, B.f(), k, C.f(), n, add);
            for (int64_t i = 0; i < m; ++i) {
                for (int64_t j = 0; j < n; ++j) {
                    double mag = add ? std::fabs(C0[(size_t) (i * n + j)]) : 0.0;
                    for (int64_t l = 0; l < k; ++l) mag += std::fabs((double) Av[(size_t) (i * k + l)] * Bv[(size_t) (j * k + l)]);
                    CHECK(std::fabs(C.f()[i * n + j] - ref[(size_t) (i * n + j)]) <= 1e-5 * mag + 1e-30);
                }
            }
            CHECK(C.intact());
        }
    }
    for (int64_t n : {1, 3, 4, 7, 8, 9, 33, 1001}) {
        CAPTURE(n);
        const std::vector<float> xf = normal_floats(rng, n), yf = normal_floats(rng, n);
        GuardedBuf gx(xf.size() * 4), gy(yf.size() * 4);
        gx.fill(xf.data());
        gy.fill(yf.data());
        std::vector<float> ref = yf;
        S.axpy_f32(n, -0.7f, xf.data(), ref.data());
        L.axpy_f32(n, -0.7f, gx.f(), gy.f());
        for (int64_t i = 0; i < n; ++i) CHECK(std::fabs(gy.f()[i] - ref[(size_t) i]) <= 2.5e-7 * (std::fabs(yf[(size_t) i]) + std::fabs(0.7f * xf[(size_t) i])));
        CHECK(gy.intact());
        std::vector<double> xd((size_t) n), yd((size_t) n);
        for (int64_t i = 0; i < n; ++i) xd[(size_t) i] = xf[(size_t) i], yd[(size_t) i] = yf[(size_t) i] * 1.25;
        GuardedBuf dx((size_t) n * 8), dy((size_t) n * 8);
        dx.fill(xd.data());
        dy.fill(yd.data());
        double mag = 0;
        for (int64_t i = 0; i < n; ++i) mag += std::fabs(xd[(size_t) i] * yd[(size_t) i]);
        CHECK(std::fabs(L.dot_f64(n, (const double *) dx.data(), (const double *) dy.data()) - S.dot_f64(n, xd.data(), yd.data())) <= 1e-14 * mag);
        std::vector<double> rd = yd;
        S.axpy_f64(n, 0.3, xd.data(), rd.data());
        L.axpy_f64(n, 0.3, (const double *) dx.data(), (double *) dy.data());
        for (int64_t i = 0; i < n; ++i) CHECK(std::fabs(((double *) dy.data())[i] - rd[(size_t) i]) <= 1e-15 * (std::fabs(yd[(size_t) i]) + 1));
        CHECK(dy.intact());
    }
    // Cholesky row tiles: full 4×4 tiles and the ragged last rows, updating columns [j0, i] from the panel
    // [k0, k0 + kb) to their left (the blocked Cholesky's use: the panel is never written).
    for (int64_t n : {5, 8, 13, 37}) {
        CAPTURE(n);
        std::vector<double> A0((size_t) (n * n));
        for (double & v : A0) v = normal_floats(rng, 1)[0];
        const int64_t k0 = 0, kb = (n + 1) / 2, j0 = kb;
        for (int64_t i0 = j0; i0 < n; i0 += 4) {
            std::vector<double> ref = A0;
            GuardedBuf got(A0.size() * 8);
            got.fill(A0.data());
            S.syrk_tile_f64(ref.data(), n, i0, j0, k0, kb);
            L.syrk_tile_f64((double *) got.data(), n, i0, j0, k0, kb);
            for (int64_t i = 0; i < n * n; ++i) CHECK(std::fabs(((double *) got.data())[i] - ref[(size_t) i]) <= 1e-13 * (double) n);
            CHECK(got.intact());
        }
    }
    // Nearest centroid: the index may differ only between distances that tie within float rounding.
    for (int d : {1, 2, 4}) {
        CAPTURE(d);
        for (int k : {1, 4, 16, 256}) {
            CAPTURE(k);
            int ib = 0;
            while ((1 << ib) < k) ++ib;
            const int64_t n = 37;
            const std::vector<float> X = normal_floats(rng, n * d), cent = normal_floats(rng, k * d);
            std::vector<float> w((size_t) d);
            for (float & v : w) v = 0.5f + (float) (rng() % 100) / 100.0f;
            std::vector<float> cA((size_t) (k * (d + 1)));
            for (int m = 0; m < k; ++m) {
                double s = 0;
                for (int t = 0; t < d; ++t) s += w[(size_t) t] * cent[(size_t) (m * d + t)] * cent[(size_t) (m * d + t)];
                cA[(size_t) (m * (d + 1))] = (float) s;
                for (int t = 0; t < d; ++t) cA[(size_t) (m * (d + 1) + 1 + t)] = cent[(size_t) (m * d + t)];
            }
            const int di = d == 1 ? 0 : d == 2 ? 1 : 2;
            std::vector<int32_t> ref((size_t) n);
            std::vector<float> ref2((size_t) n);
            S.vq_nearest[di](n, X.data(), w.data(), k, ib, cA.data(), ref.data(), ref2.data());
            GuardedBuf gX(X.size() * 4), out((size_t) n * 4), sec((size_t) n * 4);
            gX.fill(X.data());
            L.vq_nearest[di](n, gX.f(), w.data(), k, ib, cA.data(), (int32_t *) out.data(), sec.f());
            for (int64_t i = 0; i < n; ++i) {
                auto dist = [&](int m) {
                    double s = 0;
                    for (int t = 0; t < d; ++t) {
                        const double e = (double) X[(size_t) (i * d + t)] - cent[(size_t) (m * d + t)];
                        s += w[(size_t) t] * e * e;
                    }
                    return s;
                };
                const int got = ((const int32_t *) out.data())[i];
                REQUIRE((got >= 0 && got < k));
                CHECK(dist(got) <= dist(ref[(size_t) i]) * (1 + 1e-4) + 1e-5);
                if (std::isinf(ref2[(size_t) i])) CHECK(std::isinf(sec.f()[i]));
                else CHECK(std::fabs(sec.f()[i] - ref2[(size_t) i]) <= 1e-4 * (1 + std::fabs(ref2[(size_t) i])));
            }
            CHECK(out.intact());
        }
    }
}

std::string read_text(const std::string & path) {
    std::ifstream f(path);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("kernel harness: every dispatch variant × registry type × op matches the scalar reference") {
    const std::vector<Variant> variants = cpu_variants();
    if (variants.empty()) MESSAGE("this CPU has no SIMD dispatch level: only the scalar reference runs");
    const std::vector<gl_type> types = row_types(), acts = act_types();
    for (const Variant & v : variants) {
        const std::string variant = v.name();
        CAPTURE(variant);
        VariantScope scope(v);
        std::mt19937 rng(1234 + (unsigned) v.level * 2 + v.ext);
        int ops = 0;
        for (uint32_t ti = 0; ti < GL_TYPE_COUNT; ++ti) {
            const gl_type t = (gl_type) ti;
            const std::string type_name = gl_type_name(t);
            CAPTURE(type_name);
            const gl_type_kernels & ref = gl_kernels_scalar.at[t];
            if (ref.vec_dot) {
                std::string op = "vec_dot";
                CAPTURE(op);
                check_vec_dot(rng, t);
                op = "gemm";
                check_gemm(rng, t);
                op = "to_float";
                check_to_float(rng, t);
                ops += 3;
                if (ref.gemm_x16) {
                    op = "gemm_x16";
                    check_gemm_x16(rng, t);
                    ++ops;
                }
                if (ref.axpy) {
                    op = "axpy";
                    check_axpy(rng, t);
                    ++ops;
                }
                if (std::find(acts.begin(), acts.end(), t) != acts.end()) {
                    op = "quantize_act";
                    check_quantize_act(rng, t);
                    ++ops;
                }
                if (ref.quantize_act_grid) {
                    op = "quantize_act_grid";
                    check_quantize_act_grid(rng, t);
                    ++ops;
                }
            }
            if (gl_vq_gemm_scalar.at[t]) {
                std::string op = "vq_gemm";
                CAPTURE(op);
                check_vq_gemm(rng, t);
                ++ops;
            }
        }
        {
            std::string op = "float ops";
            CAPTURE(op);
            check_float_ops(rng);
            check_att_products(rng);
            op = "linalg";
            check_linalg(rng);
            ops += 2;
        }
        CHECK(ops > (int) types.size());
        checked().insert(v);
    }
    // Every variant the CPU has was checked: with CI=true a missing one fails (a harness that skipped it, or a CPU
    // probe that no longer reports it).
    for (int l = GL_CPU_SCALAR + 1; l < GL_CPU_LEVEL_COUNT; ++l) {
        const gl_cpu_level level = (gl_cpu_level) l;
        bool has = true;
        for (const gl_cpu_feature_info * fi = gl_cpu_level_features(level); fi->name; ++fi) has = has && gl_cpu_get_features().*(fi->has);
        if (!has) {
            MESSAGE("SKIP: this CPU lacks level " << gl_cpu_level_name(level) << ": its kernels were not run");
            continue;
        }
        for (bool ext : {false, true}) {
            if (ext && !cpu_has_ext_at(level)) continue;
            const Variant v{level, ext};
            if (checked().count(v)) continue;
            if (ci_mode()) FAIL("CI: this CPU has " << v.name() << " but the harness did not check it");
            else MESSAGE("not checked: " << v.name());
        }
    }
    for (int e = 0; e < gl_cpu_ext_count; ++e) {
        if (!(gl_cpu_get_features().*(gl_cpu_exts[e].feature))) MESSAGE("SKIP: this CPU lacks " << std::string(gl_cpu_exts[e].name) << ": its entries were not run");
    }
}

// Each kernel file's -m flags (CMakeLists.txt) are features the CPU probe checks before that file's code can run:
// all of them in one level's feature list, or the rest in the extensions of that level.
TEST_CASE("kernel harness: the CPU probe checks every feature the kernel files are built with") {
    const std::string cmake = read_text(std::string(QUILL_SOURCE_DIR) + "/CMakeLists.txt");
    REQUIRE(!cmake.empty());
    const std::regex props(R"(set_source_files_properties\(([^)]*?)PROPERTIES\s+COMPILE_OPTIONS\s*"([^"]*)\")");
    int files = 0;
    for (auto it = std::sregex_iterator(cmake.begin(), cmake.end(), props); it != std::sregex_iterator(); ++it) {
        const std::string srcs = (*it)[1], opts = (*it)[2];
        CAPTURE(srcs);
        std::set<std::string> flags;
        std::stringstream ss(opts);
        for (std::string f; std::getline(ss, f, ';');) {
            if (f.rfind("-m", 0) == 0) flags.insert(f.substr(2));
        }
        if (flags.empty()) continue;
        ++files;
        // The lowest level whose features plus extensions cover the flags.
        bool covered = false;
        for (int l = GL_CPU_SCALAR + 1; l < GL_CPU_LEVEL_COUNT && !covered; ++l) {
            std::set<std::string> have;
            for (const gl_cpu_feature_info * fi = gl_cpu_level_features((gl_cpu_level) l); fi->name; ++fi) have.insert(fi->name);
            for (int e = 0; e < gl_cpu_ext_count; ++e) {
                if (gl_cpu_exts[e].level <= l) have.insert(gl_cpu_exts[e].name);
            }
            covered = std::includes(have.begin(), have.end(), flags.begin(), flags.end());
        }
        CHECK_MESSAGE(covered, "flags " << opts << " are not all checked by the CPU probe at any level");
    }
    CHECK(files >= 3);
}
