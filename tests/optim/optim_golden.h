// Inputs of the optimizer goldens (scripts/gen_optim_golden.py), recomputed here bit for bit so the
// files hold only outputs: an integer hash k/32768 - 1 in [-1, 1), times a scale, rounded to fp32.
#pragma once

#include <torch/torch.h>

#include <sstream>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "optim/optimizer.h"

namespace qlora::optim::golden {

inline constexpr int kSteps = 10;

// Names built by streaming: GCC 12 at -O3 warns falsely (stringop-overflow) on "p" + to_string.
inline std::string indexed(const char* prefix, size_t i, const char* suffix = "") {
    std::ostringstream out;
    out << prefix << i << suffix;
    return out.str();
}

inline at::Tensor pattern(int64_t numel, int64_t tensor, int64_t step, double scale) {
    at::Tensor out = at::empty({numel}, at::kFloat);
    float* o = out.data_ptr<float>();
    for (int64_t i = 0; i < numel; ++i) {
        const int64_t k = (i * 2654435761LL + step * 40503 + tensor * 9973 + 12345) % 65536;
        o[i] = static_cast<float>((static_cast<double>(k) / 32768.0 - 1.0) * scale);
    }
    return out;
}

inline at::Tensor initial_param(int64_t numel, int64_t tensor) {
    return pattern(numel, tensor, 1000, 1.0);
}
inline at::Tensor grad_at(int64_t numel, int64_t tensor, int64_t step) {
    return pattern(numel, tensor, step, 0.1 * static_cast<double>(tensor + 1));
}

// The lr sequence of the script: warmup over 3 steps, then a 5%-per-step decay.
inline double lr_at(int64_t step) {
    return 1e-3 * std::min(1.0, static_cast<double>(step + 1) / 3.0) *
           (1.0 - 0.05 * static_cast<double>(step));
}

// The hyperparameters a golden file was made with ("hyper": beta1, beta2, eps, weight_decay).
inline OptimOptions options_from(const io::SafetensorsReader& golden) {
    at::Tensor hyper = golden.load("hyper");
    OptimOptions o;
    o.beta1 = hyper[0].item<double>();
    o.beta2 = hyper[1].item<double>();
    o.eps = hyper[2].item<double>();
    o.weight_decay = hyper[3].item<double>();
    return o;
}

// The golden's parameters at their initial values, ready for an optimizer.
inline std::vector<at::Tensor> initial_params(const io::SafetensorsReader& golden) {
    at::Tensor numels = golden.load("shapes");
    std::vector<at::Tensor> params;
    for (int64_t t = 0; t < numels.numel(); ++t) {
        params.push_back(initial_param(numels[t].item<int64_t>(), t).requires_grad_(true));
    }
    return params;
}

}  // namespace qlora::optim::golden
