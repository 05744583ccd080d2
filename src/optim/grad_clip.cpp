// Global gradient norm in float64-accumulated per-tensor norms, then one scale per gradient.
#include "optim/grad_clip.h"

#include <cmath>

namespace qlora::optim {

double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
    at::NoGradGuard no_grad;
    double sum_sq = 0.0;
    for (const at::Tensor& p : params) {
        const at::Tensor& g = p.grad();
        if (!g.defined()) continue;
        // One sync per tensor: fine for the few hundred LoRA tensors of a model.
        const double n = g.norm(2).item<double>();
        sum_sq += n * n;
    }
    const double norm = std::sqrt(sum_sq);
    if (!std::isfinite(norm) || max_norm <= 0.0) return norm;
    const double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        for (const at::Tensor& p : params) {
            if (p.grad().defined()) p.grad().mul_(coef);
        }
    }
    return norm;
}

}  // namespace qlora::optim
