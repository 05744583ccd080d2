// Fast CPU paths for 4-bit quantize/dequantize: multi-threaded over blocks (at::parallel_for),
// table-driven inner loops the compiler vectorizes. Same results as nf4_ref, bit for bit.
#pragma once

#include <ATen/ATen.h>

#include "kernels/bnb_quant.h"

namespace qlora::quant {

// x: contiguous CPU fp32/fp16/bf16, n = x.numel(). Writes packed [(n+1)/2] and absmax [n_blocks].
void quantize_4bit_cpu(const at::Tensor& x, int64_t blocksize, const bnb::Codebook& cb,
                       at::Tensor& packed, at::Tensor& absmax);

// Per-block scales, with double quantization undone when codes are given:
// absmax_f32 defined -> used as is; else map[codes[b]] * nested[b/256] + offset.
// Writes n elements of `out` (contiguous CPU, fp32/fp16/bf16).
void dequantize_4bit_cpu(const at::Tensor& packed, const at::Tensor& absmax_f32,
                         const at::Tensor& absmax_codes, const at::Tensor& nested,
                         const at::Tensor& map, float offset, int64_t n, int64_t blocksize,
                         const bnb::Codebook& cb, at::Tensor& out);

}  // namespace qlora::quant
