// Validating LibTorch entry points for one parameter's AdamW update: dispatch to the CUDA kernels
// (kernels/adamw.cu) for CUDA tensors and to the threaded CPU reference otherwise.
#pragma once

#include <ATen/ATen.h>

#include "optim/adamw_ref.h"

namespace qlora::optim {

// param, grad, m, v: same numel, fp32, contiguous, one device. Updated in place.
void adamw_step(const at::Tensor& grad, at::Tensor& param, at::Tensor& m, at::Tensor& v,
                const AdamwScalars& s);

// 8-bit blockwise states: m_codes, v_codes [numel] uint8; m_absmax, v_absmax [ceil(numel/256)]
// fp32.
void adamw8bit_step(const at::Tensor& grad, at::Tensor& param, at::Tensor& m_codes,
                    at::Tensor& v_codes, at::Tensor& m_absmax, at::Tensor& v_absmax,
                    const AdamwScalars& s);

}  // namespace qlora::optim
