// ggml's tensor encodings, declared once for GGUF export and import: the ggml_type numbers, the
// block layouts of ggml-common.h, encoders for the types we write (F32, F16, Q8_0, Q4_0, following
// ggml-quants.c's reference quantizers operation for operation, so our bytes equal ggml's and
// gguf-py's; Q4_0's codes come from quant/int4_codes.h, shared with the int4 QAT scheme) and
// decoders for every type llama.cpp's common quant mixes use (F32, F16, BF16, Q4_0, Q4_1, Q5_0,
// Q5_1, Q8_0, Q2_K..Q6_K) with the arithmetic of ggml's dequantize_row_*.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <bit>
#include <cstdint>
#include <string>

namespace qlora::quant {

static_assert(std::endian::native == std::endian::little,
              "GGUF blocks are little-endian; the block structs below assume a little-endian host");

// ggml_type numbers as they appear in a GGUF tensor info (ggml.h). Numbers ggml retired (4, 5,
// 31-33, 36-38) are absent.
enum class GgmlType : uint32_t {
    kF32 = 0,
    kF16 = 1,
    kQ4_0 = 2,
    kQ4_1 = 3,
    kQ5_0 = 6,
    kQ5_1 = 7,
    kQ8_0 = 8,
    kQ8_1 = 9,
    kQ2_K = 10,
    kQ3_K = 11,
    kQ4_K = 12,
    kQ5_K = 13,
    kQ6_K = 14,
    kQ8_K = 15,
    kIQ2_XXS = 16,
    kIQ2_XS = 17,
    kIQ3_XXS = 18,
    kIQ1_S = 19,
    kIQ4_NL = 20,
    kIQ3_S = 21,
    kIQ2_S = 22,
    kIQ4_XS = 23,
    kI8 = 24,
    kI16 = 25,
    kI32 = 26,
    kI64 = 27,
    kF64 = 28,
    kIQ1_M = 29,
    kBF16 = 30,
    kTQ1_0 = 34,
    kTQ2_0 = 35,
    kMXFP4 = 39,
};

// ---- block layouts (ggml-common.h) -------------------------------------------------------------
// fp16 fields are kept as their IEEE bits. Blocks are read by memcpy into these structs, so a
// block need not be aligned in the file.

inline constexpr int64_t kQK = 32;     // elements per block of the legacy quants
inline constexpr int64_t kQK_K = 256;  // elements per super-block of the K-quants
inline constexpr int64_t kKScaleSize = 12;

struct BlockQ4_0 {  // x = d * (nibble - 8); byte j: element j low, element j + 16 high
    uint16_t d;
    uint8_t qs[kQK / 2];
};
struct BlockQ4_1 {  // x = d * nibble + m
    uint16_t d, m;
    uint8_t qs[kQK / 2];
};
struct BlockQ5_0 {  // x = d * ((nibble | fifth bit << 4) - 16); qh bit j: element j, fifth bit
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {  // x = d * (nibble | fifth bit << 4) + m
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {  // x = d * q
    uint16_t d;
    int8_t qs[kQK];
};
struct BlockQ2_K {  // 16 sub-blocks of 16: x = d * (scale & 15) * q - dmin * (scale >> 4)
    uint8_t scales[kQK_K / 16];
    uint8_t qs[kQK_K / 4];
    uint16_t d, dmin;
};
struct BlockQ3_K {  // 16 sub-blocks of 16, 6-bit signed scales packed in 12 bytes
    uint8_t hmask[kQK_K / 8];
    uint8_t qs[kQK_K / 4];
    uint8_t scales[kKScaleSize];
    uint16_t d;
};
struct BlockQ4_K {  // 8 sub-blocks of 32, 6-bit scales and mins packed in 12 bytes
    uint16_t d, dmin;
    uint8_t scales[kKScaleSize];
    uint8_t qs[kQK_K / 2];
};
struct BlockQ5_K {
    uint16_t d, dmin;
    uint8_t scales[kKScaleSize];
    uint8_t qh[kQK_K / 8];
    uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {  // 16 sub-blocks of 16, int8 scales
    uint8_t ql[kQK_K / 2];
    uint8_t qh[kQK_K / 4];
    int8_t scales[kQK_K / 16];
    uint16_t d;
};
static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210);

// ---- type traits -------------------------------------------------------------------------------

struct GgmlTypeTraits {
    GgmlType type;
    const char* name;     // ggml's spelling: "Q4_K", "BF16", ...
    int64_t block_size;   // elements per block
    int64_t block_bytes;  // bytes per block
    bool decodable;       // ggml_decode supports it
};

// The traits of a type number read from a file, or nullptr when ggml has no such type.
const GgmlTypeTraits* ggml_type_traits(uint32_t type);
// For a valid GgmlType (TORCH_CHECK otherwise).
const GgmlTypeTraits& ggml_traits(GgmlType t);
inline const char* ggml_type_name(GgmlType t) { return ggml_traits(t).name; }
inline int64_t ggml_block_size(GgmlType t) { return ggml_traits(t).block_size; }
inline int64_t ggml_block_bytes(GgmlType t) { return ggml_traits(t).block_bytes; }
// Bytes of a row of n elements; n must be a multiple of the block size (TORCH_CHECK).
int64_t ggml_row_bytes(GgmlType t, int64_t n);
// "F32, F16, BF16, Q4_0, ..." (for error messages).
std::string ggml_decodable_type_names();

// IEEE binary16 / bfloat16 bits <-> float via c10 (round to nearest even, NaN stays NaN, overflow
// gives infinity), the conversions ggml_compute_fp32_to_fp16 and GGML_BF16_TO_FP32 perform.
inline uint16_t fp32_to_fp16(float f) { return c10::Half(f).x; }
inline float fp16_to_fp32(uint16_t h) {
    return static_cast<float>(c10::Half(h, c10::Half::from_bits()));
}
inline float bf16_to_fp32(uint16_t h) {
    return static_cast<float>(c10::BFloat16(h, c10::BFloat16::from_bits()));
}

// ---- rows --------------------------------------------------------------------------------------
// k elements (a multiple of the block size) from / to k / block_size blocks.

// d = amax / 127 and q = roundf(x * (1/d)) (ties away from zero); an all-zero block gets d = 0.
void quantize_row_q8_0_ref(const float* x, uint8_t* y, int64_t k);
// Any decodable type (TORCH_CHECK otherwise).
void dequantize_row(GgmlType t, const uint8_t* y, float* x, int64_t k);
inline void dequantize_row_q8_0(const uint8_t* y, float* x, int64_t k) {
    dequantize_row(GgmlType::kQ8_0, y, x, k);
}
inline void dequantize_row_q4_0(const uint8_t* y, float* x, int64_t k) {
    dequantize_row(GgmlType::kQ4_0, y, x, k);
}

// ---- whole tensors -----------------------------------------------------------------------------

// A float32 CPU tensor whose last dimension is the row -> its bytes in `type` (F32, F16, Q8_0 or
// Q4_0), as a flat uint8 tensor (rows one after the other, as ggml stores them). Runs rows in
// parallel. Throws qlora::Error naming `what` for a non-finite value or a row length that is not a
// whole number of blocks.
at::Tensor ggml_encode(const at::Tensor& values, GgmlType type, const std::string& what);
// The inverse for every decodable type: `bytes` of `type` -> float32 tensor of `shape` (torch
// order, row last), rows in parallel. Throws qlora::Error naming `what` (a tensor name) for a type
// we cannot decode, a row that is not whole blocks, or a byte count that does not match.
at::Tensor ggml_decode(const uint8_t* bytes, int64_t nbytes, GgmlType type, at::IntArrayRef shape,
                       const std::string& what);
at::Tensor ggml_decode(const at::Tensor& bytes, GgmlType type, at::IntArrayRef shape,
                       const std::string& what = "tensor");

}  // namespace qlora::quant
