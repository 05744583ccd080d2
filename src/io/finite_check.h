// A cheap per-tensor NaN/Inf check (one reduction) for weights loaded from or written to files:
// a non-finite weight is refused naming the tensor and the file instead of surfacing later as a
// NaN loss, a {"loss": null} or a broken export.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include <optional>
#include <string>

namespace qlora::io {

// true for integer/bool tensors (packed 4-bit data holds no floats) and finite float tensors.
bool all_finite(const at::Tensor& t);

// Throws qlora::Error (exit 2): "<source>: tensor '<name>' holds NaN or Inf (<count> of <numel>
// values)...". `action` says what was refused, e.g. "refusing to load it".
void check_finite(const at::Tensor& t, const std::string& name, const std::string& source,
                  const std::string& action = "refusing to load it");

// The first parameter or buffer of `model` holding NaN or Inf, by name (one reduction per tensor).
std::optional<std::string> first_nonfinite_tensor(const torch::nn::Module& model);

}  // namespace qlora::io
