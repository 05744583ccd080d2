// The LoRA dropout keep-mask: which elements of a layer input reach lora_A.
#pragma once

#include <ATen/ATen.h>

namespace qlora::lora {

// A bool mask of x's shape on x's device, each element kept (true) with probability keep. On the
// CPU: kernels::dropout_mask, seeded by one 64-bit draw from the CPU default generator, so that
// manual_seed, the checkpointed recompute (which replays the generator's state) and the trainer's
// saved RNG state all give the same masks. Elsewhere ATen's bernoulli_ on x's device.
at::Tensor dropout_keep_mask(const at::Tensor& x, double keep);

// x ⊙ mask (mask bool, x's shape): x.mul(mask)'s values, on the CPU for contiguous float32 and
// bfloat16 inputs without ATen's per-element promotion of the mask (kernels::apply_keep_mask);
// the in-place form writes into x.
at::Tensor apply_keep_mask(const at::Tensor& x, const at::Tensor& mask);
at::Tensor& apply_keep_mask_(at::Tensor& x, const at::Tensor& mask);

}  // namespace qlora::lora
