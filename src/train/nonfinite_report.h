// The message for a non-finite loss or gradient: when a weight of the model (frozen base or
// adapter) already holds NaN/Inf, that tensor is the cause and is named; only otherwise is the
// learning rate the likely culprit.
#pragma once

#include <torch/nn/module.h>

#include <cstdint>
#include <optional>
#include <string>

namespace qlora::train {

std::string nonfinite_step_message(const torch::nn::Module& model, int64_t step, double loss,
                                   double grad_norm);

}  // namespace qlora::train
