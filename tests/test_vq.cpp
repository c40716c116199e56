// Codebook (vector-quantized, GPTVQ) types of ggml-lite: geometry and sizes, the chunk bit layouts, packing, the
// scalar reference product against a double-precision dot of the decoded weights, and every SIMD level against the
// scalar one on random shapes (odd row counts, rows of 172 that end inside a chunk, partial groups).
#include "tests/test_util.h"

#include "ggml-lite/cpu.h"
#include "ggml-lite/ops.h"
#include "ggml-lite/types.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace {

std::vector<gl_type> vq_types() {
    std::vector<gl_type> v;
    for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t) {
        if (gl_get_type_traits((gl_type) t)->vq) v.push_back((gl_type) t);
    }
    return v;
}

struct LevelGuard {
    gl_cpu_level saved = gl_cpu_level_get();
    ~LevelGuard() { gl_cpu_level_set(saved); }
};

// A random packed tensor of type t: random indices, random int8 codebooks (the full range, -128 included) and
// random positive fp16 scales; idx/cb/sc hold what was packed.
struct RandomVq {
    gl_vq_geom g;
    std::vector<uint8_t> idx, data;
    std::vector<int8_t> cb;
    std::vector<uint16_t> sc;
};

RandomVq random_vq(std::mt19937 & rng, gl_type t, int64_t ne0, int64_t ne1) {
    RandomVq r;
    REQUIRE(gl_vq_geometry(t, ne0, ne1, &r.g));
    std::uniform_int_distribution<int> ui(0, r.g.k - 1), ub(-128, 127);
    std::uniform_real_distribution<float> us(0.001f, 0.05f);
    r.idx.resize((size_t) (ne1 * (ne0 / r.g.dim)));
    for (uint8_t & x : r.idx) x = (uint8_t) ui(rng);
    r.cb.resize((size_t) r.g.n_groups * (size_t) r.g.k * (size_t) r.g.dim);
    for (int8_t & x : r.cb) x = (int8_t) ub(rng);
    r.sc.resize((size_t) r.g.n_groups);
    for (uint16_t & x : r.sc) x = gl_fp32_to_fp16(us(rng));
    r.data.resize(r.g.total_bytes);
    gl_vq_pack(r.g, r.idx.data(), r.cb.data(), r.sc.data(), r.data.data());
    return r;
}

float expected_weight(const RandomVq & r, int64_t row, int64_t col) {
    const gl_vq_geom & g = r.g;
    const int64_t grp = (row / g.R) * g.n_col_groups + col / g.C;
    const int m = r.idx[(size_t) (row * (g.ne0 / g.dim) + col / g.dim)];
    return gl_fp16_to_fp32(r.sc[(size_t) grp]) * (float) r.cb[((size_t) grp * g.k + (size_t) m) * g.dim + (size_t) (col % g.dim)];
}

}  // namespace

TEST_CASE("vq: ten types, geometry and exact bits per weight") {
    const std::vector<gl_type> types = vq_types();
    REQUIRE(types.size() == 10);
    for (gl_type t : types) {
        const gl_vq_layout * l = gl_vq_info(t);
        REQUIRE(l);
        CHECK(gl_vq_type(l->dim, l->bits, l->group) == t);
        gl_type back;
        REQUIRE(gl_type_from_name(gl_type_name(t), &back));
        CHECK(back == t);
        CHECK(!gl_get_type_traits(t)->from_float);  // built by quantize/gptvq, never by rounding
        // A 4096 x 4096 layer: bits per weight = b + (k·d·8 + 16)/l (the codebooks and their fp16 scales).
        gl_vq_geom g;
        REQUIRE(gl_vq_geometry(t, 4096, 4096, &g));
        const double bpw = 8.0 * (double) g.total_bytes / (4096.0 * 4096.0);
        const double want = l->bits + ((double) g.k * l->dim * 8 + 16) / (double) l->group;
        CHECK(bpw == doctest::Approx(want).epsilon(0.002));
        CHECK(g.C * g.R == (l->group < 256 ? l->group : (l->group / 256) * 256));
        int64_t ne[2] = {4096, 4096};
        size_t nb = 0;
        REQUIRE(gl_nbytes_checked(t, ne, 2, &nb));
        CHECK(nb == g.total_bytes);
        // stories260K's 172-wide ffn_down: one column group of the whole row (two, 128 + 44, for the 1D g128 type),
        // rows padded to 6 chunks.
        REQUIRE(gl_vq_geometry(t, 172, 64, &g));
        CHECK(g.C == (l->group < 172 ? l->group : 172));
        CHECK(g.n_col_groups == (l->group < 172 ? 2 : 1));
        CHECK(g.row_bytes == 6 * (size_t) (4 * l->bits));
        // Shapes a codebook type cannot hold.
        CHECK(!gl_vq_geometry(t, 0, 4, &g));
        if (l->dim > 1) CHECK(!gl_vq_geometry(t, 4097, 4, &g));
        int64_t ne3[3] = {256, 4, 2};
        CHECK(!gl_nbytes_checked(t, ne3, 3, &nb));
    }
    CHECK(gl_vq_type(3, 2, 256) == GL_TYPE_COUNT);
}

TEST_CASE("vq: chunk encode/decode round-trips, and the documented bit layout") {
    std::mt19937 rng(7);
    for (gl_type t : vq_types()) {
        const gl_vq_layout * l = gl_vq_info(t);
        const int n = 32 / l->dim, k = 1 << (l->bits * l->dim);
        for (int rep = 0; rep < 50; ++rep) {
            uint8_t idx[32] = {0}, back[32] = {0}, q[16];
            for (int i = 0; i < n; ++i) idx[i] = (uint8_t) (rng() % (unsigned) k);
            gl_vq_encode_chunk(l->dim, l->bits, idx, q);
            gl_vq_decode_chunk(l->dim, l->bits, q, back);
            CHECK(memcmp(idx, back, (size_t) n) == 0);
        }
    }
    // 2D 6-bit: low nibbles of pairs j / j+8 in bytes 0..7, high bit pairs of j + 4k in byte 8 + j.
    uint8_t idx[16], q[12];
    for (int i = 0; i < 16; ++i) idx[i] = (uint8_t) (i == 5 ? 0x3A : 0);
    gl_vq_encode_chunk(2, 3, idx, q);
    CHECK(q[5] == 0x0A);
    CHECK(q[8 + 1] == (0x3 << 2));  // pair 5 = j 1 + 4·1
    // 2D 4-bit: pair 9's index in the high nibble of byte 1.
    for (int i = 0; i < 16; ++i) idx[i] = (uint8_t) (i == 9 ? 0xC : 0);
    gl_vq_encode_chunk(2, 2, idx, q);
    CHECK(q[1] == 0xC0);
}

TEST_CASE("vq: packed rows decode to scale x centroid; gl_get_row agrees") {
    std::mt19937 rng(11);
    for (gl_type t : vq_types()) {
        for (const int64_t ne0 : {(int64_t) 64, (int64_t) 172, (int64_t) 544}) {
            const int64_t ne1 = 37;
            RandomVq r = random_vq(rng, t, ne0, ne1);
            const gl_tensor w = gl_tensor_make(t, ne0, ne1, r.data.data());
            CHECK(gl_tensor_nbytes(w) == r.g.total_bytes);
            std::vector<float> row((size_t) ne0);
            for (int64_t i = 0; i < ne1; ++i) {
                gl_get_row(w, i, row.data());
                for (int64_t c = 0; c < ne0; ++c) {
                    if (row[(size_t) c] != expected_weight(r, i, c)) {
                        FAIL_CHECK(gl_type_name(t) << " ne0 " << ne0 << " row " << i << " col " << c);
                        break;
                    }
                }
            }
        }
    }
}

TEST_CASE("vq: gl_mul_mat at every level matches a double dot of the decoded weights and Q8_0-decoded activations") {
    LevelGuard guard;
    std::mt19937 rng(13);
    const int64_t shapes[][2] = {{64, 64}, {172, 64}, {64, 172}, {256, 33}, {544, 21}, {2048, 40}, {96, 1}};
    for (gl_type t : vq_types()) {
        for (const auto & sh : shapes) {
            const int64_t ne0 = sh[0], ne1 = sh[1];
            if (ne0 % gl_vq_info(t)->dim != 0) continue;
            RandomVq r = random_vq(rng, t, ne0, ne1);
            const gl_tensor w = gl_tensor_make(t, ne0, ne1, r.data.data());
            for (const int64_t nt : {(int64_t) 1, (int64_t) 3, (int64_t) 7}) {
                std::normal_distribution<float> nd(0.0f, 1.0f);
                std::vector<float> x((size_t) (nt * ne0));
                for (float & v : x) v = nd(rng);
                // The reference: the activations as their Q8_0 blocks decode, times the decoded weights, in double.
                std::vector<uint8_t> scratch(gl_mul_mat_scratch_size(w, nt));
                const gl_block_q8_0 * aq = (const gl_block_q8_0 *) gl_quantize_activations(w, x.data(), nt, scratch.data());
                const int64_t nblk = (ne0 + 31) / 32;
                std::vector<double> want((size_t) (nt * ne1)), mag((size_t) (nt * ne1));
                for (int64_t tk = 0; tk < nt; ++tk) {
                    for (int64_t i = 0; i < ne1; ++i) {
                        double s = 0, m = 0;
                        for (int64_t c = 0; c < ne0; ++c) {
                            const gl_block_q8_0 & b = aq[tk * nblk + c / 32];
                            const double a = (double) gl_fp16_to_fp32(b.d) * b.qs[c % 32];
                            s += a * expected_weight(r, i, c);
                            m += fabs(a * expected_weight(r, i, c));
                        }
                        want[(size_t) (tk * ne1 + i)] = s;
                        mag[(size_t) (tk * ne1 + i)] = m;
                    }
                }
                std::vector<float> ref((size_t) (nt * ne1));
                REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
                gl_mul_mat(w, x.data(), nt, ref.data(), scratch.data());
                for (size_t i = 0; i < ref.size(); ++i) REQUIRE(fabs(ref[i] - want[i]) <= 1e-5 * mag[i] + 1e-6);
                for (int l = GL_CPU_AVX2; l <= (int) gl_cpu_max_level(); ++l) {
                    REQUIRE(gl_cpu_level_set((gl_cpu_level) l));
                    std::vector<float> got((size_t) (nt * ne1), NAN);
                    gl_mul_mat(w, x.data(), nt, got.data(), scratch.data());
                    for (size_t i = 0; i < got.size(); ++i) {
                        if (!(fabs(got[i] - ref[i]) <= 1e-5 * mag[i] + 1e-6)) {
                            FAIL_CHECK(gl_type_name(t) << " " << ne0 << "x" << ne1 << " nt " << nt << " level " << gl_cpu_level_name((gl_cpu_level) l)
                                                       << " out " << i << ": " << got[i] << " vs " << ref[i]);
                            break;
                        }
                    }
                }
                REQUIRE(gl_cpu_level_set(GL_CPU_SCALAR));
            }
        }
    }
}

TEST_CASE("vq: the kernels read only the tensor's bytes (exact-size buffer, no slack)") {
    // Every SIMD level on a tensor allocated to its exact size: reads past the end would show under ASan/valgrind
    // and, more to the point here, the result must not depend on the bytes after it.
    LevelGuard guard;
    std::mt19937 rng(17);
    for (gl_type t : vq_types()) {
        RandomVq r = random_vq(rng, t, 172, 5);
        std::vector<uint8_t> a(r.data), b(r.data);
        a.push_back(0x00);
        b.push_back(0xFF);
        const gl_tensor wa = gl_tensor_make(t, 172, 5, a.data()), wb = gl_tensor_make(t, 172, 5, b.data());
        std::vector<float> x(172 * 2, 0.5f), ya(10), yb(10);
        std::vector<uint8_t> scratch(gl_mul_mat_scratch_size(wa, 2));
        for (int l = 0; l <= (int) gl_cpu_max_level(); ++l) {
            REQUIRE(gl_cpu_level_set((gl_cpu_level) l));
            gl_mul_mat(wa, x.data(), 2, ya.data(), scratch.data());
            gl_mul_mat(wb, x.data(), 2, yb.data(), scratch.data());
            CHECK(memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)) == 0);
        }
    }
}
