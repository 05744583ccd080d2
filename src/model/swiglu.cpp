// The fused SwiGLU's autograd function: forward saves g and u (the composite form also keeps
// silu(g)); backward is kernels::swiglu_backward (formulas in kernels/swiglu_cpu.h).
#include "model/swiglu.h"

#include <torch/torch.h>

#include "kernels/swiglu_cpu.h"

namespace qlora::model {

namespace {

kernels::SwigluData data_of(const at::Tensor& g, const at::Tensor& u) {
    return {g.data_ptr(), u.data_ptr(), g.scalar_type() == at::kBFloat16, g.numel()};
}

at::Tensor forward_values(const at::Tensor& g, const at::Tensor& u) {
    at::Tensor h = at::empty_like(g, at::MemoryFormat::Contiguous);
    kernels::swiglu_forward(data_of(g, u), h.data_ptr());
    return h;
}

class FusedSwiglu : public torch::autograd::Function<FusedSwiglu> {
  public:
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& g,
                              const at::Tensor& u) {
        ctx->save_for_backward({g, u});
        return forward_values(g, u);
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs) {
        const auto saved = ctx->get_saved_variables();
        const at::Tensor &g = saved[0], &u = saved[1];
        const at::Tensor dh = grad_outputs[0].to(g.scalar_type()).contiguous();
        at::Tensor dg = at::empty_like(g, at::MemoryFormat::Contiguous);
        at::Tensor du = at::empty_like(u, at::MemoryFormat::Contiguous);
        kernels::swiglu_backward(data_of(g, u), dh.data_ptr(), dg.data_ptr(), du.data_ptr());
        return {dg, du};
    }
};

}  // namespace

bool fused_swiglu_applies(const at::Tensor& g, const at::Tensor& u) {
    const auto t = g.scalar_type();
    return g.is_cpu() && u.is_cpu() && (t == at::kFloat || t == at::kBFloat16) &&
           u.scalar_type() == t && g.sizes() == u.sizes() && g.is_contiguous() && u.is_contiguous();
}

at::Tensor fused_swiglu(const at::Tensor& g, const at::Tensor& u) {
    if (at::GradMode::is_enabled() && (g.requires_grad() || u.requires_grad())) {
        return FusedSwiglu::apply(g, u);
    }
    return forward_values(g, u);
}

}  // namespace qlora::model
