// Rotary position embedding in Hugging Face's rotate_half convention: element j of a head pairs
// with j + D/2 under the same angle. inv_freq follows transformers' ROPE_INIT_FUNCTIONS exactly.
#pragma once

#include <ATen/ATen.h>

#include <utility>

#include "model/llama_config.h"

namespace qlora::model {

// inv_freq [head_dim / 2], float32 on the CPU: 1 / theta^(2i / D), then rescaled for "linear"
// (divide by factor) or "llama3" (divide low frequencies by factor, smooth in between).
at::Tensor rope_inv_freq(const LlamaConfig& config);

// cos and sin [N, T, D] (N = 1 or B, as positions is [T] or [B, T]) in `dtype`, on inv_freq's
// device: angles are positions·inv_freq in float32, duplicated over both halves of the head.
std::pair<at::Tensor, at::Tensor> rope_cos_sin(const at::Tensor& inv_freq,
                                               const at::Tensor& positions, c10::ScalarType dtype);

// x [B, H, T, D] rotated by cos/sin [N, T, D]: x·cos + rotate_half(x)·sin.
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);

}  // namespace qlora::model
