// MergeAwareLinearFunction: forward and the hand-written STE backward (derivation in the header).
#include "lora/merge_aware_function.h"

namespace qlora::lora {
namespace {

// M = W0 + s·B·A in float32 [out, in].
at::Tensor merged(const at::Tensor& w0, const at::Tensor& lora_a, const at::Tensor& lora_b,
                  double scale) {
    return at::addmm(w0.to(at::kFloat), lora_b.to(at::kFloat), lora_a.to(at::kFloat), /*beta=*/1,
                     /*alpha=*/scale);
}

}  // namespace

at::Tensor merge_aware_weight(const at::Tensor& w0, const at::Tensor& lora_a,
                              const at::Tensor& lora_b, double scale,
                              const quant::QatScheme& scheme) {
    TORCH_CHECK(w0.dim() == 2 && lora_a.dim() == 2 && lora_b.dim() == 2 &&
                    lora_a.size(1) == w0.size(1) && lora_b.size(0) == w0.size(0) &&
                    lora_b.size(1) == lora_a.size(0),
                "merge_aware_weight: need W0 [out, in], A [r, in], B [out, r], got ", w0.sizes(),
                ", ", lora_a.sizes(), ", ", lora_b.sizes());
    return quant::fake_quantize_weight(merged(w0, lora_a, lora_b, scale), scheme);
}

at::Tensor MergeAwareLinearFunction::forward(torch::autograd::AutogradContext* ctx,
                                             const at::Tensor& x, const at::Tensor& lora_a,
                                             const at::Tensor& lora_b,
                                             const std::shared_ptr<const FrozenBase>& base,
                                             double scale) {
    TORCH_CHECK(base != nullptr && base->fake_quant,
                "merge_aware_linear: needs a base with a fake-quant scheme");
    const int64_t in = base->in_features;
    TORCH_CHECK(x.dim() >= 1 && x.size(-1) == in, "merge_aware_linear: x must be [..., ", in,
                "], got ", x.sizes());
    const auto dtype = x.scalar_type();
    at::Tensor y;
    {
        at::Tensor wq = merge_aware_weight(base->dequantized(at::kFloat), lora_a, lora_b, scale,
                                           *base->fake_quant)
                            .to(dtype);  // [out, in], dropped at the end of this scope
        y = at::linear(x, wq, base->bias.defined() ? base->bias.to(dtype) : at::Tensor());
    }
    ctx->save_for_backward({x, lora_a, lora_b});
    ctx->saved_data["base"] = base_capsule(base);
    ctx->saved_data["scale"] = scale;
    return y;
}

torch::autograd::variable_list MergeAwareLinearFunction::backward(
    torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& lora_a = saved[1];
    const at::Tensor& lora_b = saved[2];
    const FrozenBase& base = base_of_capsule(ctx->saved_data["base"]);
    const double scale = ctx->saved_data["scale"].toDouble();

    const int64_t in = base.in_features, out = base.out_features;
    const auto dtype = x.scalar_type();
    at::Tensor g2 = grad_outputs[0].to(dtype).reshape({-1, out});  // [N, out]
    at::Tensor x2 = x.reshape({-1, in});                           // [N, in]
    // Recomputed, not saved: one layer's M, Q(M) and mask live only inside this call.
    quant::FakeQuantized q = quant::fake_quantize_weight_masked(
        merged(base.dequantized(at::kFloat), lora_a, lora_b, scale), *base.fake_quant);
    at::Tensor dx2 = ctx->needs_input_grad(0) ? g2.mm(q.value.to(dtype)) : at::Tensor();  // [N, in]
    q.value = at::Tensor();

    at::Tensor a = lora_a.to(at::kFloat), b = lora_b.to(at::kFloat);
    at::Tensor g32 = g2.to(at::kFloat), x32 = x2.to(at::kFloat);
    at::Tensor da, db;
    if (q.mask.defined()) {
        at::Tensor dm = at::mm(g32.t(), x32).mul_(q.mask);  // K ⊙ (Gᵀ·X) [out, in]
        if (ctx->needs_input_grad(2)) db = at::mm(dm, a.t()).mul_(scale);  // [out, r]
        if (ctx->needs_input_grad(1)) da = at::mm(b.t(), dm).mul_(scale);  // [r, in]
    } else {
        if (ctx->needs_input_grad(2)) db = at::mm(g32.t(), x32.mm(a.t())).mul_(scale);  // [out, r]
        if (ctx->needs_input_grad(1)) da = at::mm(g32.mm(b).t(), x32).mul_(scale);      // [r, in]
    }
    if (da.defined()) da = da.to(lora_a.scalar_type());
    if (db.defined()) db = db.to(lora_b.scalar_type());
    at::Tensor dx = dx2.defined() ? dx2.view(x.sizes()) : at::Tensor();
    // one entry per forward argument: x, A, B, base, scale
    return {dx, da, db, at::Tensor(), at::Tensor()};
}

at::Tensor merge_aware_linear(const at::Tensor& x, const std::shared_ptr<const FrozenBase>& base,
                              const at::Tensor& lora_a, const at::Tensor& lora_b, double scale) {
    return MergeAwareLinearFunction::apply(x, lora_a, lora_b, base, scale);
}

}  // namespace qlora::lora
