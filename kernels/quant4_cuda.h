// Launchers for the 4-bit kernels in quant4.cu: raw pointers + sizes + stream, no LibTorch, no
// validation (the binding in src/quant/quant4_ops.cpp validates). Same contracts as
// src/quant/quant4_ref.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/bnb_quant.h"

namespace qlora::kernels {

enum class FloatType : int32_t { kFloat32 = 0, kFloat16 = 1, kBFloat16 = 2 };

// x [n] of x_type -> packed [(n+1)/2], absmax [n_blocks]; one warp per quantization block.
cudaError_t quantize_4bit_cuda(const void* x, FloatType x_type, const bnb::Codebook& cb,
                               uint8_t* packed, float* absmax, int64_t n, int64_t blocksize,
                               cudaStream_t stream);

// Double quantization of absmax [n] around offset: codes [n], nested absmax [ceil(n/256)].
cudaError_t absmax_quantize_cuda(const float* absmax, const float* map_midpoints /* [255] */,
                                 float offset, uint8_t* codes, float* nested, int64_t n,
                                 cudaStream_t stream);

// packed [(n+1)/2] -> out [n] of out_type. Scales from absmax_f32 when non-null, else from
// map[codes[b]] * nested[b/256] + offset (double quantization undone on the fly).
cudaError_t dequantize_4bit_cuda(const uint8_t* packed, const float* absmax_f32,
                                 const uint8_t* codes, const float* nested, const float* map,
                                 float offset, const bnb::Codebook& cb, void* out,
                                 FloatType out_type, int64_t n, int64_t blocksize,
                                 cudaStream_t stream);

}  // namespace qlora::kernels
