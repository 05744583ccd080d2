// The fused RMSNorm's autograd function: forward saves x and each row's 1/rms (float32); backward
// is kernels::rms_norm_backward (derivation in kernels/rms_norm_cpu.h).
#include "model/rms_norm.h"

#include <torch/torch.h>

#include "kernels/rms_norm_cpu.h"

namespace qlora::model {

namespace {

kernels::NormRows rows_of(const at::Tensor& x, const at::Tensor& weight, double eps) {
    const int64_t dim = x.size(-1);
    return {x.data_ptr(),
            weight.data_ptr(),
            x.scalar_type() == at::kBFloat16,
            dim > 0 ? x.numel() / dim : 0,
            dim,
            static_cast<float>(eps)};
}

// y and inv [rows] of x.
std::pair<at::Tensor, at::Tensor> forward_rows(const at::Tensor& x, const at::Tensor& weight,
                                               double eps) {
    const kernels::NormRows n = rows_of(x, weight, eps);
    at::Tensor y = at::empty_like(x, at::MemoryFormat::Contiguous);
    at::Tensor inv = at::empty({n.rows}, at::kFloat);
    kernels::rms_norm_forward(n, y.data_ptr(), inv.data_ptr<float>());
    return {y, inv};
}

class FusedRmsNorm : public torch::autograd::Function<FusedRmsNorm> {
  public:
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                              const at::Tensor& weight, double eps) {
        auto [y, inv] = forward_rows(x, weight, eps);
        ctx->save_for_backward({x, weight, inv});  // eps lives on in inv
        return y;
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs) {
        const auto saved = ctx->get_saved_variables();
        const at::Tensor &x = saved[0], &weight = saved[1], &inv = saved[2];
        const at::Tensor dy = grad_outputs[0].to(x.scalar_type()).contiguous();
        at::Tensor dx = at::empty_like(x, at::MemoryFormat::Contiguous);
        // The backward reads 1/rms from inv, never eps.
        kernels::rms_norm_backward(rows_of(x, weight, /*eps=*/0.0), inv.data_ptr<float>(),
                                   dy.data_ptr(), dx.data_ptr());
        return {dx, at::Tensor(), at::Tensor()};
    }
};

}  // namespace

bool fused_rms_norm_applies(const at::Tensor& x, const at::Tensor& weight) {
    const auto t = x.scalar_type();
    return x.is_cpu() && weight.is_cpu() && (t == at::kFloat || t == at::kBFloat16) &&
           weight.scalar_type() == t && x.is_contiguous() && weight.is_contiguous() &&
           weight.dim() == 1 && x.dim() >= 1 && weight.size(0) == x.size(-1) &&
           !weight.requires_grad();
}

at::Tensor fused_rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
    if (at::GradMode::is_enabled() && x.requires_grad()) {
        return FusedRmsNorm::apply(x, weight, eps);
    }
    return forward_rows(x, weight, eps).first;
}

}  // namespace qlora::model
