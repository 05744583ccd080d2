// Tensor-level 4-bit ops with validation, dispatching to the CUDA kernels (kernels/quant4.cu) for
// CUDA tensors and to the fast CPU paths (quant4_cpu.cpp) otherwise. TORCH_CHECK names op and
// values.
#pragma once

#include <ATen/ATen.h>

#include "kernels/bnb_quant.h"

namespace qlora::quant {

const bnb::Codebook& codebook(bnb::QuantType type);

struct Quantized4bit {
    at::Tensor packed;  // uint8 [(n+1)/2]
    at::Tensor absmax;  // float32 [n_blocks]
};
// x: fp32/fp16/bf16 on CPU or CUDA (made contiguous, flattened row-major).
Quantized4bit quantize_4bit(const at::Tensor& x, bnb::QuantType type, int64_t blocksize);

struct QuantizedAbsmax {
    at::Tensor codes;   // uint8 [n_blocks]
    at::Tensor nested;  // float32 [ceil(n_blocks/256)]
    float offset = 0;   // mean of absmax (computed on the CPU with at::mean, as bitsandbytes does)
};
// Double quantization of a float32 absmax vector with the given sorted 256-entry map.
QuantizedAbsmax quantize_absmax(const at::Tensor& absmax, const at::Tensor& map);
// float32 [n_blocks] = map[codes] * nested[b/256] + offset.
at::Tensor dequantize_absmax(const at::Tensor& codes, const at::Tensor& nested,
                             const at::Tensor& map, float offset);

// Writes into `out` (contiguous, n elements, float32/float16/bfloat16, on packed's device): no
// allocation, so no page faults on a fresh buffer (they cost more than the dequantization on CPU).
void dequantize_4bit_into(const at::Tensor& packed, const at::Tensor& absmax_f32,
                          const at::Tensor& codes, const at::Tensor& nested, const at::Tensor& map,
                          float offset, int64_t n, int64_t blocksize, bnb::QuantType type,
                          at::Tensor& out);

// packed -> [n] of out_dtype, on packed's device. Pass absmax_f32, or codes + nested + map +
// offset.
at::Tensor dequantize_4bit(const at::Tensor& packed, const at::Tensor& absmax_f32,
                           const at::Tensor& codes, const at::Tensor& nested, const at::Tensor& map,
                           float offset, int64_t n, int64_t blocksize, bnb::QuantType type,
                           c10::ScalarType out_dtype);

}  // namespace qlora::quant
