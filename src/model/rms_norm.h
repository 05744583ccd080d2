// RMSNorm through the fused CPU kernels (kernels/rms_norm_cpu.h), with or without autograd: the
// module (model/llama.h) takes it wherever it applies, so a checkpointed layer's forward (run
// without autograd) and its recompute (with it) compute the same bits, and so do eval and
// training.
#pragma once

#include <ATen/ATen.h>

namespace qlora::model {

// Whether the fused kernels serve x against weight: both on the CPU, float32 or bf16, the same
// dtype, x contiguous, the weight frozen (the kernels give no weight gradient).
bool fused_rms_norm_applies(const at::Tensor& x, const at::Tensor& weight);

// x [..., dim] -> y of x's shape and dtype: weight · T(x / sqrt(mean(x²) + eps)), transformers'
// roundings. Differentiable in x when grad mode is on.
at::Tensor fused_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace qlora::model
