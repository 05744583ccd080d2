// SwiGLU, silu(g)·u, through the fused CPU kernels (kernels/swiglu_cpu.h), with or without
// autograd: the MLP (model/llama.h) takes it wherever it applies, so a checkpointed layer's forward
// and its recompute compute the same bits.
#pragma once

#include <ATen/ATen.h>

namespace qlora::model {

// Whether the fused kernels serve g and u: both on the CPU, float32 or bf16, one dtype and shape,
// contiguous.
bool fused_swiglu_applies(const at::Tensor& g, const at::Tensor& u);

// silu(g)·u with ATen's roundings; differentiable in g and u when grad mode is on.
at::Tensor fused_swiglu(const at::Tensor& g, const at::Tensor& u);

}  // namespace qlora::model
