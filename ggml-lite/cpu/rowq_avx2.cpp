// The per-row types (ggml-lite/types.h: q3_row, q4_row, q8_row, their _a8 forms, a8_row) at the avx2 level (AVX2,
// FMA, F16C). Built with per-file flags (CMakeLists.txt); the functions at the end are listed in avx2.cpp's table,
// everything else has internal linkage.
// The scalar reference is ggml-lite/rowq.cpp; as at the avx512 level (rowq_avx512.cpp), a8_row quantization and the
// A8 products are bit-identical to it (exact integer sums: vpmaddubsw of 4-bit codes × int8 cannot saturate, and
// 8-bit codes go as two nibbles), the float-activation products equal it up to the order of the sums.
#include "ggml-lite/cpu.h"

#include <immintrin.h>

#include "ggml-lite/cpu/simd_common.h"
#include "ggml-lite/rowq_common.h"

#include <cmath>
#include <cstring>

namespace {

// ---- a8_row activations -------------------------------------------------------------------------------------------

// The codes and header of a row on grid g (a8_row_quantize: the row's own grid; gl_a8_row_quantize_grid_avx2: a
// tensor's static one).
void a8_row_quantize_on(const float * x, void * vy, int64_t n, const A8Grid & g) {
    int8_t * c = (int8_t *) ((uint8_t *) vy + GL_ROW_HEADER_A);
    if (g.zero) {
        a8_finish_row(vy, n, g, 0);
        return;
    }
    const float inv = g.inv, zp = g.zp;
    const __m256 vinv = _mm256_set1_ps(inv), vzp = _mm256_set1_ps(zp), v255 = _mm256_set1_ps(255.0f), v0 = _mm256_setzero_ps();
    const __m256i k128 = _mm256_set1_epi32(128);
    __m256i vsum = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 q = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm256_max_ps(_mm256_min_ps(_mm256_add_ps(q, vzp), v255), v0);  // NaN -> 255
        const __m256i ci = _mm256_sub_epi32(_mm256_cvttps_epi32(q), k128);
        vsum = _mm256_add_epi32(vsum, ci);
        const __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(ci), _mm256_extracti128_si256(ci, 1));
        _mm_storel_epi64((__m128i *) (c + i), _mm_packs_epi16(p16, p16));
    }
    alignas(32) int32_t sv[8];
    _mm256_store_si256((__m256i *) sv, vsum);
    int32_t csum = 0;
    for (int k = 0; k < 8; ++k) csum += sv[k];
    for (; i < n; ++i) {
        c[i] = a8_code(x[i], g);
        csum += c[i];
    }
    a8_finish_row(vy, n, g, csum);
}

void a8_row_quantize(const float * x, void * vy, int64_t n) {
    __m256 vmn = _mm256_setzero_ps(), vmx = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        vmn = _mm256_min_ps(v, vmn);  // a NaN lane keeps the running value, as fminf does
        vmx = _mm256_max_ps(v, vmx);
    }
    alignas(32) float a[8], b[8];
    _mm256_store_ps(a, vmn);
    _mm256_store_ps(b, vmx);
    float mn = 0.0f, mx = 0.0f;
    for (int k = 0; k < 8; ++k) {
        mn = fminf(mn, a[k]);
        mx = fmaxf(mx, b[k]);
    }
    for (int64_t j = i; j < n; ++j) {
        mn = fminf(mn, x[j]);
        mx = fmaxf(mx, x[j]);
    }
    a8_row_quantize_on(x, vy, n, a8_grid(mn, mx));  // rowq_common.h, as the reference
}

// ---- A8 products ----------------------------------------------------------------------------------------------------

inline int chunk_len(int64_t n, int64_t c0) { return n - c0 >= 128 ? 128 : (n - c0 >= 64 ? 64 : 32); }

// A chunk of m codes as m/32 units of 32 unsigned codes: U[u] = codes 32u .. 32u+31 of the chunk.
template <int BITS> inline void load_units(const uint8_t * q, int64_t c0, int m, __m256i U[4]) {
    if (BITS == 3) {
        // rowq_common.h (Q3Consts): the low part (m/4 bytes) and the high part (m/8) broadcast at their periods
        const uint8_t * b = q + c0 * 3 / 8;
        const int mi = q3_chunk_index(m);
        __m256i L, H;
        if (m == 128) {
            L = _mm256_loadu_si256((const __m256i *) b);
            H = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) (b + 32)));
        } else if (m == 64) {
            L = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *) b));
            H = _mm256_set1_epi64x(load_i64(b + 16));
        } else {
            L = _mm256_set1_epi64x(load_i64(b));
            H = _mm256_set1_epi32(load_i32(b + 8));
        }
        const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
        for (int u = 0; u < m / 32; ++u) {
            const __m256i lo = _mm256_and_si256(_mm256_srlv_epi32(L, _mm256_load_si256((const __m256i *) (k_q3.shift32[mi] + 8 * u))), m3);
            const __m256i sel = _mm256_load_si256((const __m256i *) (k_q3.sel[mi] + 32 * u));
            const __m256i hb = _mm256_cmpeq_epi8(_mm256_and_si256(H, sel), sel);
            U[u] = _mm256_or_si256(lo, _mm256_and_si256(hb, four));
        }
        return;
    }
    if (BITS == 8) {
        for (int u = 0; u < m / 32; ++u) U[u] = _mm256_loadu_si256((const __m256i *) (q + c0 + 32 * u));
        return;
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const uint8_t * b = q + c0 / 2;
    if (m == 32) {
        const __m128i x = _mm_loadu_si128((const __m128i *) b), m4h = _mm_set1_epi8(0x0F);
        U[0] = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(x, 4), m4h), _mm_and_si128(x, m4h));
        return;
    }
    // m = 64: bytes 0..31 are codes 0..31 (low) and 32..63 (high); m = 128: bytes 32j .. are codes 32j.. and 64+32j..
    for (int j = 0; j < m / 64; ++j) {
        const __m256i x = _mm256_loadu_si256((const __m256i *) (b + 32 * j));
        U[j] = _mm256_and_si256(x, m4);
        U[j + m / 64] = _mm256_and_si256(_mm256_srli_epi16(x, 4), m4);
    }
}

// acc += Σ code·c over one unit, in int32 lanes.
template <int BITS> inline __m256i unit_dot(__m256i acc, __m256i w, __m256i a) {
    const __m256i ones = _mm256_set1_epi16(1);
    if (BITS <= 4) return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), ones));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i lo = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(w, m4), a), ones);
    const __m256i hi = _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_and_si256(_mm256_srli_epi16(w, 4), m4), a), ones);
    return _mm256_add_epi32(acc, _mm256_add_epi32(lo, _mm256_slli_epi32(hi, 4)));
}

inline int64_t hsum_epi32(__m256i v) {
    alignas(32) int32_t s[8];
    _mm256_store_si256((__m256i *) s, v);
    int64_t t = 0;
    for (int k = 0; k < 8; ++k) t += s[k];
    return t;
}

template <int BITS, int R, int T>
inline void tile_a8(int64_t n, const uint8_t * w, size_t ws, const uint8_t * act, size_t as, float * y, int64_t ys) {
    __m256i acc[R][T];
    for (int r = 0; r < R; ++r)
        for (int t = 0; t < T; ++t) acc[r][t] = _mm256_setzero_si256();
    for (int64_t c0 = 0; c0 < n;) {
        const int m = chunk_len(n, c0);
        __m256i U[R][4];
        GL_UNROLL
        for (int r = 0; r < R; ++r) load_units<BITS>(w + r * ws + GL_ROW_HEADER_W, c0, m, U[r]);
        for (int u = 0; u < m / 32; ++u) {
            GL_UNROLL
            for (int t = 0; t < T; ++t) {
                const __m256i a = _mm256_loadu_si256((const __m256i *) (act + t * as + GL_ROW_HEADER_A + c0 + 32 * u));
                GL_UNROLL
                for (int r = 0; r < R; ++r) acc[r][t] = unit_dot<BITS>(acc[r][t], U[r][u], a);
            }
        }
        c0 += m;
    }
    for (int t = 0; t < T; ++t)
        for (int r = 0; r < R; ++r) y[t * ys + r] = row_dot_a8(n, w + r * ws, act + t * as, hsum_epi32(acc[r][t]));
}

template <int BITS>
void gemm_a8(int64_t n, int64_t nr, int64_t nt, const void * vw, size_t ws, const void * vact, size_t as, float * y, int64_t ys) {
    const uint8_t * w = (const uint8_t *) vw, * act = (const uint8_t *) vact;
    int64_t r = 0;
    for (; r + 2 <= nr; r += 2) {
        int64_t t = 0;
        for (; t + 2 <= nt; t += 2) tile_a8<BITS, 2, 2>(n, w + r * ws, ws, act + t * as, as, y + t * ys + r, ys);
        for (; t < nt; ++t) tile_a8<BITS, 2, 1>(n, w + r * ws, ws, act + t * as, as, y + t * ys + r, ys);
    }
    for (; r < nr; ++r)
        for (int64_t t = 0; t < nt; ++t) tile_a8<BITS, 1, 1>(n, w + r * ws, ws, act + t * as, as, y + t * ys + r, ys);
}

template <int BITS> void vec_dot_a8(int64_t n, float * s, const void * x, const void * y) { gemm_a8<BITS>(n, 1, 1, x, 0, y, 0, s, 1); }

// ---- A16 products (float activations) ---------------------------------------------------------------------------

template <int BITS> void vec_dot_f32(int64_t n, float * s, const void * vx, const void * vy) {
    const uint8_t * w = (const uint8_t *) vx;
    const float * x = (const float *) vy;
    gl_row_header h;
    memcpy(&h, w, sizeof h);
    const __m256 zf = _mm256_set1_ps((float) h.z);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (int64_t c0 = 0; c0 < n;) {
        const int m = chunk_len(n, c0);
        __m256i U[4];
        load_units<BITS>(w + GL_ROW_HEADER_W, c0, m, U);
        for (int u = 0; u < m / 32; ++u) {
            alignas(32) uint8_t b[32];
            _mm256_store_si256((__m256i *) b, U[u]);
            for (int k = 0; k < 4; k += 2) {
                const __m256 w0 = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (b + 8 * k)))), zf);
                const __m256 w1 = _mm256_sub_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) (b + 8 * k + 8)))), zf);
                acc0 = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x + c0 + 32 * u + 8 * k), acc0);
                acc1 = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + c0 + 32 * u + 8 * k + 8), acc1);
            }
        }
        c0 += m;
    }
    alignas(32) float a[8];
    _mm256_store_ps(a, _mm256_add_ps(acc0, acc1));
    float sum = 0.0f;
    for (int k = 0; k < 8; ++k) sum += a[k];
    *s = _cvtsh_ss(h.d) * sum;
}

template <int BITS>
void gemm_f32(int64_t n, int64_t nr, int64_t nt, const void * vw, size_t ws, const void * vact, size_t as, float * y, int64_t ys) {
    for (int64_t r = 0; r < nr; ++r)
        for (int64_t t = 0; t < nt; ++t)
            vec_dot_f32<BITS>(n, y + t * ys + r, (const uint8_t *) vw + r * ws, (const uint8_t *) vact + t * as);
}

// ---- the x16 layout (types.h; see rowq_avx512.cpp): rows 0..7 and 8..15 of a group dword in two registers ------

inline void x16_finish(int64_t n, const uint8_t * g, const __m256i acc[2], const uint8_t * arow, float * y) {
    alignas(32) int32_t s[16];
    _mm256_store_si256((__m256i *) s, acc[0]);
    _mm256_store_si256((__m256i *) (s + 8), acc[1]);
    for (int r = 0; r < 16; ++r) y[r] = row_dot_a8(n, g + GL_ROW_HEADER_W * r, arow, s[r]);
}

template <int BITS, int T>
void x16_group(int64_t n, const uint8_t * g, const uint8_t * act, size_t as, float * y, int64_t ys) {
    __m256i acc[T][2];
    for (int t = 0; t < T; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_si256();
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t c0 = 0; c0 < n;) {
        const int m = BITS == 8 ? (int) (n - c0 < 128 ? n - c0 : 128) : chunk_len(n, c0);
        const int nd = BITS == 8 ? m / 4 : m / 8;
        const int64_t d0 = BITS == 8 ? c0 / 4 : c0 / 8;
        for (int k = 0; k < nd; ++k) {
            const uint8_t * p = g + 16 * GL_ROW_HEADER_W + 64 * (d0 + k);
            const __m256i v[2] = {_mm256_loadu_si256((const __m256i *) p), _mm256_loadu_si256((const __m256i *) (p + 32))};
            for (int t = 0; t < T; ++t) {
                const int8_t * a = (const int8_t *) (act + t * as + GL_ROW_HEADER_A);
                const __m256i b0 = _mm256_set1_epi32(load_i32(a + c0 + 4 * k));
                if (BITS == 4) {
                    const __m256i b1 = _mm256_set1_epi32(load_i32(a + c0 + m / 2 + 4 * k));
                    for (int h = 0; h < 2; ++h) {
                        acc[t][h] = unit_dot<4>(acc[t][h], _mm256_and_si256(v[h], m4), b0);
                        acc[t][h] = unit_dot<4>(acc[t][h], _mm256_and_si256(_mm256_srli_epi16(v[h], 4), m4), b1);
                    }
                } else {
                    for (int h = 0; h < 2; ++h) acc[t][h] = unit_dot<8>(acc[t][h], v[h], b0);
                }
            }
        }
        c0 += m;
    }
    for (int t = 0; t < T; ++t) x16_finish(n, g, acc[t], act + t * as, y + t * ys);
}

template <int BITS>
void gemm_x16(int64_t n, int64_t nr, int64_t nt, const void * vw, size_t ws, const void * vact, size_t as, float * y, int64_t ys) {
    const uint8_t * w = (const uint8_t *) vw, * act = (const uint8_t *) vact;
    int64_t t = 0;
    for (; t + 4 <= nt; t += 4)
        for (int64_t g = 0; g < nr / 16; ++g) x16_group<BITS, 4>(n, w + (size_t) g * 16 * ws, act + t * as, as, y + t * ys + 16 * g, ys);
    for (; t < nt; ++t)
        for (int64_t g = 0; g < nr / 16; ++g) x16_group<BITS, 1>(n, w + (size_t) g * 16 * ws, act + t * as, as, y + t * ys + 16 * g, ys);
}

}  // namespace

void gl_a8_row_quantize_avx2(const float * x, void * y, int64_t n) { a8_row_quantize(x, y, n); }
void gl_a8_row_quantize_grid_avx2(const float * x, void * y, int64_t n, float s, int32_t z) {
    a8_row_quantize_on(x, y, n, a8_grid_static(s, z));  // rowq_common.h, as the reference
}
void gl_q3_row_vec_dot_a8_avx2(int64_t n, float * s, const void * x, const void * y) { vec_dot_a8<3>(n, s, x, y); }
void gl_q3_row_gemm_a8_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_a8<3>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q3_row_vec_dot_f32_avx2(int64_t n, float * s, const void * x, const void * y) { vec_dot_f32<3>(n, s, x, y); }
void gl_q3_row_gemm_f32_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_f32<3>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q4_row_vec_dot_a8_avx2(int64_t n, float * s, const void * x, const void * y) { vec_dot_a8<4>(n, s, x, y); }
void gl_q8_row_vec_dot_a8_avx2(int64_t n, float * s, const void * x, const void * y) { vec_dot_a8<8>(n, s, x, y); }
void gl_q4_row_gemm_a8_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_a8<4>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q8_row_gemm_a8_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_a8<8>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q4_row_vec_dot_f32_avx2(int64_t n, float * s, const void * x, const void * y) { vec_dot_f32<4>(n, s, x, y); }
void gl_q8_row_vec_dot_f32_avx2(int64_t n, float * s, const void * x, const void * y) { vec_dot_f32<8>(n, s, x, y); }
void gl_q4_row_gemm_f32_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_f32<4>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q8_row_gemm_f32_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_f32<8>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q4_row_gemm_x16_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_x16<4>(n, nr, nt, w, ws, a, as, y, ys);
}
void gl_q8_row_gemm_x16_avx2(int64_t n, int64_t nr, int64_t nt, const void * w, size_t ws, const void * a, size_t as, float * y, int64_t ys) {
    gemm_x16<8>(n, nr, nt, w, ws, a, as, y, ys);
}
