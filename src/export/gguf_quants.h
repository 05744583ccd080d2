// ggml's tensor encodings for GGUF export: F32, F16, and the Q8_0 / Q4_0 blocks of 32, with scalar
// quantizers that follow ggml-quants.c's reference quantizers (quantize_row_q8_0_ref,
// quantize_row_q4_0_ref) operation for operation, so our bytes equal ggml's and gguf-py's.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>

namespace qlora::exporting {

// ggml_type numbers as they appear in a GGUF tensor info (ggml.h).
enum class GgmlType : uint32_t { kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ8_0 = 8 };

// Block layouts (ggml-common.h): Q8_0 = fp16 d + 32 int8 q (34 bytes), x = d * q.
// Q4_0 = fp16 d + 16 bytes of nibbles (18 bytes); byte j holds element j in its low nibble and
// element j + 16 in its high nibble, x = d * (nibble - 8).
inline constexpr int64_t kGgmlQBlock = 32;
inline constexpr int64_t kQ8_0BlockBytes = 2 + kGgmlQBlock;
inline constexpr int64_t kQ4_0BlockBytes = 2 + kGgmlQBlock / 2;

const char* ggml_type_name(GgmlType t);  // "F32", "F16", "Q4_0", "Q8_0"
int64_t ggml_block_size(GgmlType t);     // elements per block: 1 for F32/F16, 32 for Q*
int64_t ggml_block_bytes(GgmlType t);    // bytes per block
// Bytes of a row of n elements; n must be a multiple of the block size (TORCH_CHECK).
int64_t ggml_row_bytes(GgmlType t, int64_t n);

// IEEE binary16 bits <-> float, round to nearest even (ggml_compute_fp32_to_fp16; NaN stays NaN,
// overflow gives infinity, tiny values become subnormals or signed zero).
uint16_t fp32_to_fp16(float f);
float fp16_to_fp32(uint16_t h);

// k floats (k a multiple of 32) -> k/32 blocks. d = amax / 127 and q = roundf(x * (1/d)) (ties
// away from zero); an all-zero block gets d = 0 and q = 0.
void quantize_row_q8_0_ref(const float* x, uint8_t* y, int64_t k);
void dequantize_row_q8_0(const uint8_t* y, float* x, int64_t k);
// d = (the element of largest magnitude, first one on ties) / -8, q = min(15, (int8)(x*(1/d)
// + 8.5)).
void quantize_row_q4_0_ref(const float* x, uint8_t* y, int64_t k);
void dequantize_row_q4_0(const uint8_t* y, float* x, int64_t k);

// A float32 CPU tensor whose last dimension is the row -> its bytes in `type`, as a flat uint8
// tensor (rows one after the other, as ggml stores them). Runs rows in parallel. Throws
// qlora::Error naming `what` for a non-finite value or a row length that is not a whole number of
// blocks.
at::Tensor ggml_encode(const at::Tensor& values, GgmlType type, const std::string& what);
// The inverse: bytes of `type` -> float32 tensor of `shape` (torch order, row last).
at::Tensor ggml_decode(const at::Tensor& bytes, GgmlType type, at::IntArrayRef shape);

}  // namespace qlora::exporting
