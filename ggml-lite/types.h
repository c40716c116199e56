// ggml-lite tensor types: one traits entry per type, indexed by gl_type.
//
// The enum values are stored in quill files, so they are append-only. Nothing outside ggml-lite/types.cpp lists
// the types: readers, ops and tools go through gl_type_traits. Adding a type means adding an enum value, its
// traits entry and its kernel files.
//
// Tensor shape convention (as ggml): ne[0] is the number of elements in a row (contiguous), ne[1] the number of
// rows, ne[2], ne[3] outer dimensions. A weight matrix of a linear layer y = W x with in_features K and
// out_features N has ne = {K, N}.
#pragma once

#include <cstddef>
#include <cstdint>

enum gl_type : uint32_t {
    GL_TYPE_F32  = 0,
    GL_TYPE_F16  = 1,
    GL_TYPE_BF16 = 2,
    GL_TYPE_Q8_0 = 3,  // ggml's Q8_0 block layout, bit for bit
    GL_TYPE_Q4_0 = 4,  // ggml's Q4_0 block layout, bit for bit
    // Uniform asymmetric integer types (GPTQ / RTN baselines): b-bit codes, one fp16 scale and an integer zero point
    // per group of g weights along the row. The group is part of the type; see gl_block_intq below.
    GL_TYPE_Q4_G128 = 5,
    GL_TYPE_Q3_G128 = 6,
    GL_TYPE_Q2_G128 = 7,
    GL_TYPE_Q4_G64  = 8,
    GL_TYPE_Q3_G64  = 9,
    GL_TYPE_Q2_G64  = 10,
    GL_TYPE_Q4_G32  = 11,
    GL_TYPE_Q3_G32  = 12,
    GL_TYPE_Q2_G32  = 13,
    // Vector-quantized types (GPTVQ): d-dimensional codebooks of 2^(b·d) int8 centroids shared by groups of about l
    // weights, named vq<d>_b<b>_g<l>. A row is NOT self-contained: see gl_vq_layout below and formats/SPEC.md.
    GL_TYPE_VQ1_B2_G256   = 14,  // 2.125 bits per weight (+ 16 bits of scale per group)
    GL_TYPE_VQ1_B2_G128   = 15,  // 2.25
    GL_TYPE_VQ1_B3_G512   = 16,  // 3.125
    GL_TYPE_VQ1_B4_G1024  = 17,  // 4.125
    GL_TYPE_VQ2_B2_G2048  = 18,  // 2.125
    GL_TYPE_VQ2_B2_G1024  = 19,  // 2.25
    GL_TYPE_VQ2_B3_G8192  = 20,  // 3.125 (the paper's mobile format: 6-bit index per pair)
    GL_TYPE_VQ2_B4_G32768 = 21,  // 4.125
    GL_TYPE_VQ4_B2_G65536 = 22,  // 2.125
    GL_TYPE_VQ4_B2_G32768 = 23,  // 2.25
    // Per-row ("per-channel") types (LRQ, and the RTN/GPTQ --per-channel baselines): every row starts with a small
    // header (gl_row_header below) holding its one asymmetric grid; then the codes, in blocks of 32. The weight
    // bytes of q4_row and q4_row_a8 (q8_row and q8_row_a8) are the same; the type also names the activation format:
    GL_TYPE_A8_ROW    = 24,  // activations: int8 per token (asymmetric, one grid per row); also usable as a weight
    GL_TYPE_Q4_ROW    = 25,  // 4-bit weights, float activations (W4A16)
    GL_TYPE_Q8_ROW    = 26,  // 8-bit weights, float activations (W8A16)
    GL_TYPE_Q4_ROW_A8 = 27,  // 4-bit weights, a8_row activations (W4A8): integer dot over the whole row
    GL_TYPE_Q8_ROW_A8 = 28,  // 8-bit weights, a8_row activations (W8A8 per token)
    GL_TYPE_Q3_ROW    = 29,  // 3-bit weights, float activations (W3A16)
    GL_TYPE_Q3_ROW_A8 = 30,  // 3-bit weights, a8_row activations (W3A8)
    GL_TYPE_COUNT
};

#define GL_QK8_0 32
#define GL_QK4_0 32

// Q8_0: 32 weights, one fp16 scale.      value[j] = qs[j] * d
//   byte 0..1  d (IEEE fp16, little-endian)
//   byte 2..33 qs[0..31] (int8)
struct gl_block_q8_0 {
    uint16_t d;
    int8_t   qs[GL_QK8_0];
};
static_assert(sizeof(gl_block_q8_0) == 34, "Q8_0 block must be 34 bytes");

// Q4_0: 32 weights, one fp16 scale, 4-bit unsigned codes with an implicit offset of 8.
//   byte 0..1  d (IEEE fp16)
//   byte 2+j   low nibble: code of weight j, high nibble: code of weight j+16   (j = 0..15)
//   value = (code - 8) * d
struct gl_block_q4_0 {
    uint16_t d;
    uint8_t  qs[GL_QK4_0 / 2];
};
static_assert(sizeof(gl_block_q4_0) == 18, "Q4_0 block must be 18 bytes");

// Uniform asymmetric integer blocks ("q<b>_g<g>", b in {2, 3, 4}, g in {32, 64, 128}): GPTQ's grid, stored.
//   One block = one group of g weights of a row (g = 32·S: S sub-blocks of 32, matching the 32-wide Q8_0
//   activation blocks the dot product runs against). 3 + 4·b·S bytes, byte-aligned (no padding):
//   byte 0..1  d   scale, IEEE fp16, little-endian, >= 0
//   byte 2     z   zero point, an integer 0 .. 2^b-1
//   byte 3..   S sub-blocks of 32 codes (weights 32s .. 32s+31 of the group), 4·b bytes each:
//     b = 4: 16 bytes; byte j (0..15): low nibble = code of weight j, high nibble = code of weight j+16 (Q4_0's order)
//     b = 2:  8 bytes; byte j (0..7):  bits 2k, 2k+1 = code of weight j + 8k (k = 0..3)
//     b = 3:  8 bytes of the low 2 bits of each code, laid out as b = 2, then 4 bytes of high bits:
//             bit i (0..31) of that little-endian 32-bit word = bit 2 of the code of weight i
//   value = d · (code − z)
// Bits per weight: b + 24/g (g128: b + 0.1875; g64: b + 0.375; g32: b + 0.75).
// A row must be a whole number of groups; quantize/ picks the largest group <= the requested one that divides the
// row (so a 64-wide row asked for g128 gets g64, as GPTQ would use one group for the whole row), and rows that are
// not a multiple of 32 (stories260K's 172-wide ffn_down) cannot take Q8_0 activations at all: see formats/SPEC.md.
template <int BITS, int GROUP> struct gl_block_intq {
    static_assert(BITS >= 2 && BITS <= 4 && GROUP % 32 == 0, "2..4 bits, groups of 32·S");
    uint8_t d[2];                    // fp16 scale
    uint8_t z;                       // zero point
    uint8_t qs[GROUP / 32 * 4 * BITS];  // S sub-blocks of 4·b bytes
};
typedef gl_block_intq<4, 128> gl_block_q4_g128;
typedef gl_block_intq<3, 128> gl_block_q3_g128;
typedef gl_block_intq<2, 128> gl_block_q2_g128;
static_assert(sizeof(gl_block_q4_g128) == 67 && sizeof(gl_block_q3_g128) == 51 && sizeof(gl_block_q2_g128) == 35, "intq g128 sizes");
static_assert(sizeof(gl_block_intq<4, 32>) == 19 && sizeof(gl_block_intq<3, 32>) == 15 && sizeof(gl_block_intq<2, 32>) == 11, "intq g32 sizes");

// Per-row types: a row of n weights (n a multiple of 32) is a header and n/32 blocks of codes.
//   weights (q3_row, q4_row, q8_row and their _a8 forms): value[j] = d · (code[j] − z), code in 0 .. 2^b − 1
//     header (8 bytes): byte 0..1 d (IEEE fp16, >= 0), byte 2 z, byte 3 zero, byte 4..7 qsum = Σ code[j] (int32 LE)
//     codes:  b = 8: byte j = code j (unsigned)
//             b = 4: the row's codes in chunks of 128 (then one of 64 and/or one of 32 for the rest); a chunk of m
//             codes is m/2 bytes, byte j = code j of the chunk (low nibble) | code j + m/2 (high nibble), so that
//             one 64-byte (32-byte) load splits into 64 (32) consecutive codes and the 64 (32) after the half
//             chunk
//             b = 3: the same chunks; a chunk of m codes is 3m/8 bytes: m/4 bytes of the codes' low two bits, byte j =
//             Σ_k (code j + k·m/4 & 3) << 2k (k = 0..3), then m/8 bytes of their third bit, byte j = Σ_k (code
//             j + k·m/8 >> 2) << k (k = 0..7), so that a broadcast of either part and per-lane shifts give 64 (32)
//             consecutive codes
//   activations (a8_row): value[j] = s · (c[j] − z), c[j] int8 (the unsigned 8-bit code minus 128)
//     header (16 bytes): byte 0..3 s (fp32), byte 4..7 z (int32, −128 .. 127), byte 8..11 csum = Σ c[j] (int32),
//             byte 12..15 zero
//     blocks: 32 bytes per 32 values, byte j = c[j]
// so that a row's dot product is one integer sum and the scales once:
//   Σ_j d(q_j − z_w)·s(c_j − z_a) = d·s·(Σ q_j c_j − z_a·qsum − z_w·csum + n·z_w·z_a)
struct gl_row_header {
    uint16_t d;
    uint8_t  z;
    uint8_t  pad;
    int32_t  qsum;
};
struct gl_row_header_a8 {
    float   s;
    int32_t z;
    int32_t csum;
    int32_t reserved;
};
static_assert(sizeof(gl_row_header) == 8 && sizeof(gl_row_header_a8) == 16, "per-row header sizes");
#define GL_ROW_HEADER_W 8   // weights
#define GL_ROW_HEADER_A 16  // a8_row

typedef void (*gl_to_float_fn)(const void * x, float * y, int64_t n);
typedef void (*gl_from_float_fn)(const float * x, void * y, int64_t n);
// s = dot(x, y) over n elements; x is a row of the weight type, y the activations in the type's vec_dot_type.
typedef void (*gl_vec_dot_fn)(int64_t n, float * s, const void * x, const void * y);

// Codebook types (GPTVQ): vectors of `dim` consecutive weights of a row are `bits·dim`-bit indices into a codebook of
// k = 2^(bits·dim) entries of `dim` int8 values times one fp16 scale. One codebook serves a group of about
// `group` weights: C = min(ne0, 256, group) columns × R = max(1, group / C) rows (the last row group and the last
// column group may be partial). A tensor is its ne1 index rows followed by a side section of scales and codebooks
// (gl_vq_geometry). Activations are Q8_0, the last block of a row zero-padded when ne0 is not a multiple of 32.
struct gl_vq_layout {
    int     dim, bits;
    int64_t group;
};

struct gl_intq_params;
// Bits and group of a uniform integer type (q<b>_g<g>) and its row packers (gl_intq_pack_row / unpack_row).
struct gl_intq_layout {
    int bits, group;
    void (*pack)(int64_t n, const uint8_t * codes, const gl_intq_params * groups, void * dst);
    void (*unpack)(int64_t n, const void * src, uint8_t * codes, gl_intq_params * groups);
};

struct gl_type_traits {
    const char *     name;          // lower-case, as used on the command line ("q4_0")
    int64_t          block_size;    // elements per block (1 for plain float types)
    size_t           type_size;     // bytes per block
    bool             is_quantized;
    // The activation format: rows of activations are converted to vec_dot_type (F32, F16, BF16 or Q8_0) before the
    // dot product, each row zero-padded to a multiple of act_pad elements (1: not padded). gl_act_row_size below.
    gl_type          vec_dot_type;
    int64_t          act_pad;
    int32_t          gguf_type;     // ggml's type id (ggml.h) when GGUF files can hold the type, else -1
    int32_t          gguf_ftype;    // llama.cpp's general.file_type of a model mostly of this type, else -1
    gl_to_float_fn   to_float;      // dequantize / widen (null for codebook types: rows need the side section)
    gl_from_float_fn from_float;    // reference quantizer (round to nearest), bit-exact with ggml for Q8_0/Q4_0;
                                    // null for codebook types (quantize/gptvq.h builds them)
    gl_vec_dot_fn    vec_dot;       // scalar reference dot product (null for codebook types: gl_vq_gemm_ref)
    const gl_vq_layout * vq;        // codebook types only; their rows are padded to whole blocks of 32
    const gl_intq_layout * intq;    // uniform integer types only
    // Rows can be stored 16-interleaved (the x16 layout, gl_x16_* below): the block is an fp16 scale followed by
    // codes in whole dwords (Q4_0, Q8_0), or the row a header and codes in whole dwords (q4_row_a8, q8_row_a8).
    bool             x16;
    // Bytes at the start of every row before its blocks (per-row types: GL_ROW_HEADER_W or _A; 0 for the others).
    size_t           row_header;
};

const gl_type_traits * gl_get_type_traits(gl_type t);
bool        gl_type_valid(uint32_t t);
const char * gl_type_name(gl_type t);
// Type from its name ("f32", "Q4_0", ...); returns false when unknown. Iterate the registry with
// `for (uint32_t t = 0; t < GL_TYPE_COUNT; ++t)`: every value below GL_TYPE_COUNT is a type.
bool        gl_type_from_name(const char * name, gl_type * out);

// Bytes of one row of n elements (with its header, for per-row types). n must be a multiple of the block size
// (checked by gl_nbytes_checked), except for codebook types, whose rows are padded to whole 32-weight chunks.
size_t gl_row_size(gl_type t, int64_t n);
// Elements and bytes of one activation row for a weight of type t with rows of n elements (the padded length in
// the weight's vec_dot_type). The one place that says how activations are laid out.
int64_t gl_act_row_elems(gl_type t, int64_t n);
size_t  gl_act_row_size(gl_type t, int64_t n);
// The type GGUF files store as ggml type id `id`, or GL_TYPE_COUNT when quill has none.
gl_type gl_type_from_gguf(uint32_t id);
// Exact storage size of a tensor; returns false when the shape is invalid for the type (row not a whole number
// of blocks, negative or zero dims) or the size overflows. Readers use it to validate files.
bool   gl_nbytes_checked(gl_type t, const int64_t * ne, int n_dims, size_t * out);

// ---- the uniform integer family (GPTQ / RTN) -------------------------------------------------------------------
// Grid parameters of one group: value(code) = d · (code − z), d the fp16-rounded scale (as a float).
struct gl_intq_params {
    float    d = 0.0f;
    uint16_t d16 = 0;
    uint8_t  z = 0;
};
// Bits and group of an intq type; false for other types.
bool    gl_intq_info(gl_type t, int * bits, int * group);
// The intq type of b bits and group g, or GL_TYPE_COUNT when there is none.
gl_type gl_intq_type(int bits, int group);
// GPTQ's asymmetric min/max grid for n values (its range forced to include 0): scale = (max − min)/(2^b − 1),
// rounded to fp16; z = round(−min/d) clamped to [0, 2^b − 1]. All-zero input gives d = 0, z = 0.
gl_intq_params gl_intq_fit(const float * x, int64_t n, int bits);
// Round-to-nearest code of x on the grid (ties to even, as torch.round), clamped to [0, 2^b − 1].
int   gl_intq_code(float x, const gl_intq_params & p, int bits);
// The value a code stands for; bit-identical to what to_float returns.
inline float gl_intq_value(int code, const gl_intq_params & p) { return p.d * (float) (code - (int) p.z); }
// Packs one row of n codes (0..2^b−1) with the grid of each of its n/g groups into t's blocks (t an intq type).
void gl_intq_pack_row(gl_type t, int64_t n, const uint8_t * codes, const gl_intq_params * groups, void * dst);
// The inverse: codes and group grids of a packed row.
void gl_intq_unpack_row(gl_type t, int64_t n, const void * src, uint8_t * codes, gl_intq_params * groups);

// ---- the x16 layout: 16 rows interleaved ------------------------------------------------------------------------
// Decode streams every weight once; 16 rows stored apart are 16 streams per thread, and a kernel that puts 16 rows in
// the lanes of a register must gather and transpose them. In the x16 layout a group of 16 consecutive rows is stored
// as one run of "group blocks", one per block column b, each the 16 rows' block b with the same bytes regrouped:
//   [16 fp16 scales, row 0..15] [dword 0 of the codes of rows 0..15] [dword 1 of rows 0..15] ...
// (Q4_0: 32 + 4·64 = 288 bytes = 16 blocks; Q8_0: 32 + 8·64 = 544 bytes). Per-row types (q4_row_a8, q8_row_a8): a
// group is the 16 row headers (128 bytes), then dword d of the 16 rows' codes for each d in order (the whole row is
// one "block"; lane r of dword d of a q4 chunk holds its codes 4d'.. and m/2 + 4d'..). A kernel loads a code dword of 16 rows in
// one 64-byte load, and each thread reads its rows as a few sequential streams. Row r of the tensor still starts at
// byte r·row_size when r is a multiple of 16 (a group is 16 rows' bytes), so row ranges on 16-row boundaries keep
// their offsets. Only types with traits.x16 and tensors of ne1 % 16 == 0 take it; the layout is a property of the
// tensor (gl_tensor::x16), not a type: the weights' values and every result are the type's.
bool gl_x16_ok(gl_type t, int64_t ne0, int64_t ne1);
// Regroups a whole ne1 × ne0 tensor of type t from rows to the x16 layout (dst != src, same size), and back.
void gl_x16_pack(gl_type t, int64_t ne0, int64_t ne1, const void * src, void * dst);
void gl_x16_unpack(gl_type t, int64_t ne0, int64_t ne1, const void * src, void * dst);
// Row `row` of an x16 tensor, as the type's plain row bytes (gl_row_size(t, ne0) of them).
void gl_x16_get_row(gl_type t, int64_t ne0, const void * data, int64_t row, void * dst);

// ---- codebook (vector-quantized) types -------------------------------------------------------------------------
// Layout of a tensor of a codebook type with rows of ne0 weights and ne1 rows:
//   [ne1 index rows of row_bytes] [scales: n_groups fp16, padded to a multiple of 64 bytes] [codebooks: n_groups ×
//   k × dim int8]; group (gr, gc) = rows [gr·R, ..) × columns [gc·C, ..) has index gr·n_col_groups + gc.
// An index row is ceil(ne0/32) chunks of 4·bits bytes (32 weights = 32/dim indices of bits·dim bits), see SPEC.md.
struct gl_vq_geom {
    int     dim = 0, bits = 0, k = 0;
    int64_t ne0 = 0, ne1 = 0, C = 0, R = 0, n_col_groups = 0, n_row_groups = 0, n_groups = 0;
    size_t  row_bytes = 0, chunk_bytes = 0;
    size_t  scales_offset = 0, codebooks_offset = 0;  // from the start of the side section
    size_t  side_bytes = 0, total_bytes = 0;
};
// False for other types or shapes a codebook type cannot hold (ne0 not a multiple of dim, non-positive sizes).
bool gl_vq_geometry(gl_type t, int64_t ne0, int64_t ne1, gl_vq_geom * g);
const gl_vq_layout * gl_vq_info(gl_type t);
// The codebook type of dimension d, b bits per dimension and group l, or GL_TYPE_COUNT when there is none.
gl_type gl_vq_type(int dim, int bits, int64_t group);
// The indices of one 32-weight chunk (32/dim of them) from its 4·bits bytes, and the inverse.
void gl_vq_decode_chunk(int dim, int bits, const uint8_t * src, uint8_t * idx);
void gl_vq_encode_chunk(int dim, int bits, const uint8_t * idx, uint8_t * dst);
// Writes a whole tensor: idx = ne1 × (ne0/dim) indices (row-major), codebooks = n_groups × k × dim int8,
// scales = n_groups fp16 bits. dst holds g.total_bytes.
void gl_vq_pack(const gl_vq_geom & g, const uint8_t * idx, const int8_t * codebooks, const uint16_t * scales, void * dst);
// Row `row` of a packed tensor, widened to floats: scale(group) · int8 entry, exactly what the kernels use.
void gl_vq_row_to_float(const gl_vq_geom & g, const void * data, int64_t row, float * out);

// Scalar conversions (round to nearest even, like F16C / ggml).
float    gl_fp16_to_fp32_ref(uint16_t h);  // bit manipulation; builds gl_fp16_table
extern float gl_fp16_table[1 << 16];
inline float gl_fp16_to_fp32(uint16_t h) { return gl_fp16_table[h]; }
uint16_t gl_fp32_to_fp16(float f);
float    gl_bf16_to_fp32(uint16_t h);
uint16_t gl_fp32_to_bf16(float f);
