// Fused CPU matmuls with a 4-bit (NF4/FP4, optionally double-quantized) weight W [rows, cols],
// stored as bitsandbytes stores it: the rows*cols elements flattened row-major, packed two per byte
// (element 2j in the high nibble of byte j), one scale per `blocksize` consecutive flat elements
// (a block may straddle two rows when cols is not a multiple of blocksize).
//
// Exactness: every kernel uses deq(W)[o, k] = code[nibble] * scale[block] rounded once to float32,
// bit for bit the value dequantize_4bit writes; only the order of the fp32 sums differs from a
// plain x·deq(W)ᵀ. With K terms per output and unit roundoff u = 2^-24, any summation order obeys
//     |y - Σ_k x_k·deq(w_k)| <= γ_K · Σ_k |x_k·deq(w_k)|,   γ_K = K·u / (1 - K·u)
// (Higham, Accuracy and Stability of Numerical Algorithms, eq. 3.5); the tests check exactly this
// bound against the double-precision sum of the fp32 products (the reference twins below).
//
// Raw pointers, no tensors; threads through at::parallel_for. The AVX2+FMA paths live in
// quant4_matmul_cpu_avx2.cpp (compiled with -mavx2 -mfma), the AVX-512 ones in
// quant4_matmul_cpu_avx512.cpp (-mavx512f); the best the CPU supports is chosen at run time.
#pragma once

#include <cstdint>

#include "kernels/bnb_quant.h"

namespace qlora::kernels {

// A 4-bit matrix as stored. Exactly one of absmax (float32 per block) or the double-quant triple
// (absmax_codes + nested + map, with offset) is set.
struct Packed4bitMatrix {
    const uint8_t* packed = nullptr;        // [(rows*cols + 1) / 2], any alignment
    const float* absmax = nullptr;          // [n_blocks] or null
    const uint8_t* absmax_codes = nullptr;  // [n_blocks]            (double quant)
    const float* nested = nullptr;          // [ceil(n_blocks/256)]  (double quant)
    const float* map = nullptr;             // [256]                 (double quant)
    float offset = 0.0f;                    //                       (double quant)
    const float* code_values = nullptr;     // [16]: the codebook (bnb::Codebook::values)
    int64_t rows = 0;
    int64_t cols = 0;
    int64_t blocksize = bnb::kDefaultBlocksize;
};

// The scale of block b, with double quantization undone exactly as dequantize_4bit does it:
// map[codes[b]] * nested[b/256] rounded, then + offset rounded (two float32 roundings, no FMA).
[[gnu::always_inline]] inline float block_scale(const Packed4bitMatrix& w, int64_t b) {
    if (w.absmax != nullptr) return w.absmax[b];
    // b >= 0: the unsigned division is a shift (the signed one needs a fix-up for negatives)
    const auto nested = static_cast<uint64_t>(b) / static_cast<uint64_t>(bnb::kNestedBlocksize);
    const float scaled = w.map[w.absmax_codes[b]] * w.nested[nested];
    return scaled + w.offset;
}

// Ordered: a CPU that runs one runs every lower one.
enum class CpuIsa { kPortable = 0, kAvx2 = 1, kAvx512 = 2 };
// The best the CPU offers (checked once with __builtin_cpu_supports): kAvx512 (AVX-512F), kAvx2
// (AVX2 + FMA) or kPortable. QLORA_CPU_ISA=portable|avx2 in the environment caps it.
CpuIsa best_cpu_isa();
const char* cpu_isa_name(CpuIsa isa);
// kAvx512 where the CPU has AVX-512 F + BW + VL and best_cpu_isa() is kAvx512 (QLORA_CPU_ISA does
// not cap it), else kPortable: the bodies of the fused training kernels (rms_norm_cpu,
// swiglu_cpu, cross_entropy_cpu).
CpuIsa avx512_bw_vl_isa();

// y[i*ldy + o] = Σ_k x[i*ldx + k] · deq(W)[o, k] for i < n, o < rows: the decode (GEMV-like)
// kernel. Reads the packed codes and block scales once per group of up to 4 x rows and
// dequantizes in registers; never writes W anywhere. Scratch: n*cols floats (x regrouped).
void quant4_gemv_xwt(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx, float* y,
                     int64_t ldy, CpuIsa isa);

// Dequantizes the tile W[r0:r1, c0:c1] into out[(r - r0)*ldo + (c - c0)] (float32): what the tiled
// large-row-count matmuls feed to a GEMM. Runs on the calling thread.
void quant4_dequant_tile(const Packed4bitMatrix& w, int64_t r0, int64_t r1, int64_t c0, int64_t c1,
                         float* out, int64_t ldo, CpuIsa isa);
// The same tile rounded to bfloat16 (to nearest even, as c10::BFloat16 rounds the float32 value and
// so as dequantize(bf16) writes it), stored as raw bf16 bits: the tiles of the bf16 matmuls.
void quant4_dequant_tile_bf16(const Packed4bitMatrix& w, int64_t r0, int64_t r1, int64_t c0,
                              int64_t c1, uint16_t* out, int64_t ldo, CpuIsa isa);

// True when the CPU has bfloat16 dot products (AVX512_BF16). With them ATen's bf16 GEMM (oneDNN)
// ran 2.7x faster than its float32 one on this project's 2-core Zen 4 (433 vs 161 GFLOP/s at
// 256x2048x5632); without them it falls back to slower code than float32.
bool cpu_has_bf16_dot();

// Scalar reference twins ("the truth"): each output is the double-precision sum of the float32
// products x·deq(w), rounded to float32 once. Single-threaded; for tests.
// y[i, o] = Σ_k x[i, k]·deq(W)[o, k]
void quant4_matmul_xwt_ref(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx,
                           float* y, int64_t ldy);
// dx[i, k] = Σ_o g[i, o]·deq(W)[o, k]
void quant4_matmul_gw_ref(const Packed4bitMatrix& w, const float* g, int64_t n, int64_t ldg,
                          float* dx, int64_t lddx);
// Σ_k |x[i, k]·deq(W)[o, k]|: the scale of the error bound above, per output (same layout as y).
void quant4_matmul_xwt_abs_ref(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx,
                               float* y, int64_t ldy);

// ---- Optional int8-activation matmul: inference only, off by default ---------------------------
// Like llama.cpp's Q8 activation dot products, for a 4-bit weight: each x row is quantized per
// group of 64 columns, q = round-half-even(x · 127/amax) in [-127, 127] with amax the group's
// largest |x|; the 16 code values become int8, c8 = round-half-even(127 · value); and
//     y[i, o] ≈ Σ_blocks scale(block) · Σ_groups (amax / 127²) · Σ_k c8[code_k] · q_k,
// the inner sums exact in int32 (AVX-512 VNNI vpdpbusd on 64 weights at once). Any row count:
// decode and prefill.
// Approximation against the exact y = Σ_k deq(w_k)·x_k: with x̃_k = q_k·amax/127 (|x_k - x̃_k| <=
// amax/254) and the int8 code off its value by at most 0.5/127,
//     |y8 - y| <= Σ_k |scale_k|·(0.5/127)·|x̃_k| + |deq(w_k)|·|x_k - x̃_k|   (+ float32 rounding)
// (tests/quant/test_quant4_int8_matmul.cpp checks this). The float32 rounding of y8 against its
// exact value (the reference twin below) obeys the header's bound with K + 2 terms (each term
// also carries the rounding of scale·amax/127²).

// One group's worth of int8 columns.
constexpr int64_t kInt8Group = 64;

// From this many activation rows on, the int8 matmul takes the prefill kernel (tiles of W decoded
// once to int8 and reused by every activation row) instead of the decode one (W decoded in
// registers, used by at most 4 activation rows).
constexpr int64_t kInt8GemmMinRows = 16;

// x rows quantized for quant4_gemv_xwt_int8. Per row i and group g (row_group = i*groups + g):
// codes[row_group*64 ...] = q as int8, signed (vpdpbusd's signed operand: the kernels feed it
// the weights as unsigned c8 + 128 and take 128 · code_sum back off), with the 64 columns in
// octet order: each run of 8 columns as 0, 2, 4, 6, 1, 3, 5, 7 (4 bytes of packed W hold 8
// columns, high nibbles first); code_sum = Σ q over the group; dot_scale = amax / 127².
struct Int8Activations {
    int64_t rows = 0;
    int64_t cols = 0;  // a multiple of kInt8Group
    int8_t* codes = nullptr;
    int32_t* code_sum = nullptr;
    float* dot_scale = nullptr;
    // Bytes that Int8Activations::layout needs for rows x cols (codes, sums, then scales).
    static int64_t bytes_for(int64_t rows, int64_t cols);
    // Points the three arrays into storage (bytes_for(rows, cols) bytes, 64-byte aligned).
    static Int8Activations layout(void* storage, int64_t rows, int64_t cols);
};

// The quantization rule's two factors for a group whose largest |x| is amax: q = round-half-even(
// x · inverse), and the group's dot products are scaled by dot_scale (always_inline: the ISA
// units include this header too, see block_scale).
[[gnu::always_inline]] inline float int8_inverse(float amax) {
    return amax > 0.0f ? 127.0f / amax : 0.0f;
}
[[gnu::always_inline]] inline float int8_dot_scale(float amax) { return amax / (127.0f * 127.0f); }

// Where column k (< 64) of a group goes in Int8Activations' octet order.
constexpr int64_t int8_code_position(int64_t k) { return k / 8 * 8 + k % 2 * 4 + k % 8 / 2; }

// The int8 code of each of the 16 code values: round-half-even(127 · value).
void int8_code_table(const float* code_values, int8_t out[16]);

// True when quant4_gemv_xwt_int8 serves w on this CPU: AVX-512 BW + VNNI (not capped below
// AVX-512 by QLORA_CPU_ISA), rows of whole blocks and blocks of whole groups (cols % blocksize
// == 0, blocksize % 64 == 0: bitsandbytes' default 64 and every larger power of two) and block
// indices that fit the kernels' int32 gathers (rows · cols / blocksize < 2^31).
bool quant4_int8_gemv_supported(const Packed4bitMatrix& w);

// Quantizes n rows of x (row stride ldx, out.cols columns) into out. Returns false, leaving out
// unspecified, when a group holds a NaN or an infinity (the caller takes the exact path). The
// AVX-512 body where the CPU has it (the int8 matmul needs it anyway), else the reference twin;
// both write the same bytes.
bool quantize_activations_int8(const float* x, int64_t n, int64_t ldx, Int8Activations& out);
// Reference twin of quantize_activations_int8: plain loops, one element at a time.
bool quantize_activations_int8_ref(const float* x, int64_t n, int64_t ldx, Int8Activations& out);

// y[i*ldy + o] for i < xq.rows, o < w.rows, as above. Requires quant4_int8_gemv_supported(w) and
// xq.cols == w.cols. Threads through at::parallel_for over rows of W: the decode kernel (one row
// of W, decoded in registers, against up to 4 activation rows at a time) below kInt8GemmMinRows
// rows, else the prefill kernel (tiles of 16 rows of W decoded once to int8 per call, the 16 rows
// as the lanes of the accumulators, against 8 activation rows at a time).
void quant4_gemv_xwt_int8(const Packed4bitMatrix& w, const Int8Activations& xq, float* y,
                          int64_t ldy);

// Reference twin of the int8 path, from the float x (plain loops, its own grouping): each output
// the double sum of scale · (amax / 127²) · c8 · q over the elements, rounded once; abs_sum
// (nullable) gets Σ|scale · amax/127² · c8 · q|, the scale of the rounding bound.
void quant4_matmul_xwt_int8_ref(const Packed4bitMatrix& w, const float* x, int64_t n, int64_t ldx,
                                float* y, int64_t ldy, float* abs_sum);

namespace detail {
// The vector bodies (quant4_matmul_cpu_avx2.cpp, quant4_matmul_cpu_avx512.cpp), for a group width G
// of 16 (AVX2) or 32 (AVX-512) weights. gemv: rows [o0, o1) against x regrouped per G columns as
// [even columns, odd columns] (requires cols % G == 0). dequant_segment: flat elements [e0, e1)
// of one block, e0 and e1 multiples of G, into out[0, e1 - e0); table16 = codes times the scale.
void gemv_rows_avx2(const Packed4bitMatrix& w, const float* xg, int64_t n, int64_t o0, int64_t o1,
                    float* y, int64_t ldy);
void dequant_segment_avx2(const uint8_t* packed, int64_t e0, int64_t e1, const float* table16,
                          float* out);
void gemv_rows_avx512(const Packed4bitMatrix& w, const float* xg, int64_t n, int64_t o0, int64_t o1,
                      float* y, int64_t ldy);
void dequant_segment_avx512(const uint8_t* packed, int64_t e0, int64_t e1, const float* table16,
                            float* out);
// bf16 outputs: table16 holds values already rounded to bf16 (low 16 bits zero).
void dequant_segment_avx2(const uint8_t* packed, int64_t e0, int64_t e1, const float* table16,
                          uint16_t* out);
// quant4_matmul_cpu_bf16_avx512.cpp (-mavx512f -mavx512bw): flat elements [e0, e1) of W, both
// multiples of 64, blocksize a multiple of 64, rounded to bf16 into out[0, e1 - e0); each block's
// scale, table and rounding in vector registers.
void dequant_span_bf16_avx512bw(const Packed4bitMatrix& w, int64_t e0, int64_t e1, uint16_t* out);
bool cpu_has_avx512bw();
// quant4_matmul_cpu_vnni.cpp (-mavx512bw -mavx512vnni). c8 is int8_code_table of w's codebook.
constexpr int64_t kInt8TileRows = 16;
// The prefill kernel's scratch for one tile of kInt8TileRows rows of W (cols columns): weights
// [groups][16 steps][16 rows][4] uint8 (c8 + 128; step 2k holds the high nibbles of octet k, step
// 2k + 1 the low ones) and per group the 16 rows' block scales.
struct Int8Tile {
    uint8_t* weights = nullptr;  // [cols * 16], 64-byte aligned
    float* scale = nullptr;      // [cols / 64 * 16]
};
// The decode kernel: rows [o0, o1) of W against every activation row (fewer than
// kInt8GemmMinRows).
void gemv_int8_rows_vnni(const Packed4bitMatrix& w, const Int8Activations& xq, const int8_t* c8,
                         int64_t o0, int64_t o1, float* y, int64_t ldy);
// The prefill kernel: tiles [t0, t1) of 16 rows of W (the last one may be short) against every
// activation row; tile is its scratch.
void gemm_int8_tiles_vnni(const Packed4bitMatrix& w, const Int8Activations& xq, const int8_t* c8,
                          int64_t t0, int64_t t1, const Int8Tile& tile, float* y, int64_t ldy);
bool quantize_activations_int8_vnni(const float* x, int64_t n, int64_t ldx, Int8Activations& out);
bool cpu_has_avx512_vnni();
}  // namespace detail

}  // namespace qlora::kernels
