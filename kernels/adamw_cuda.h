// Launchers for the fused AdamW kernels in adamw.cu: raw pointers + sizes + stream, no LibTorch, no
// validation (src/optim/adamw_ops.cpp validates). Same contracts as the CPU reference,
// src/optim/adamw_ref.h.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "kernels/adamw_format.h"

namespace qlora::kernels {

// fp32 states: p, m, v [n] updated in place from g [n]; bit-exact with adamw_step_ref.
cudaError_t adamw_step_cuda(const float* g, float* p, float* m, float* v, int64_t n,
                            const adamw::AdamwScalars& s, cudaStream_t stream);

// 8-bit blockwise states (blocksize 256): codes [n] uint8, absmax [ceil(n/256)] fp32; the maps and
// midpoints are device pointers. One CTA per block; bit-exact with adamw8bit_step_ref.
cudaError_t adamw8bit_step_cuda(const float* g, float* p, uint8_t* m_codes, uint8_t* v_codes,
                                float* m_absmax, float* v_absmax,
                                const adamw::Blockwise8bitMaps& maps, int64_t n,
                                const adamw::AdamwScalars& s, cudaStream_t stream);

}  // namespace qlora::kernels
