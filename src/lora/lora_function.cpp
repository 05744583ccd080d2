// LoraLinearFunction: forward and the hand-written backward (derivation in the header).
#include "lora/lora_function.h"

#include "lora/dropout_mask.h"
#include "quant/quant4_matmul.h"

namespace qlora::lora {

namespace {

struct BaseCapsule : torch::CustomClassHolder {
    explicit BaseCapsule(std::shared_ptr<const FrozenBase> b) : base(std::move(b)) {}
    std::shared_ptr<const FrozenBase> base;
};

// X ⊙ M in one pass (the bool mask is promoted inside the multiply), or X itself. Inverted
// dropout's D = X ⊙ M / q is never formed: the 1/q goes onto the small [N, r] and [r, in]
// products instead of another pass (and another fresh [N, in] buffer) over the input.
at::Tensor masked(const at::Tensor& x2, const at::Tensor& mask2) {
    return mask2.defined() ? apply_keep_mask(x2, mask2) : x2;
}

// LibTorch 2.11's Function::apply records metadata of every tensor argument and rejects undefined
// ones, so absent A/B/mask travel as empty tensors and turn back into undefined here.
// An NF4 base used as stored (no QAT) goes through the fused CPU kernels: no dense copy of W.
bool fused_base(const FrozenBase& base, const at::Tensor& x) {
    return base.nf4.defined() && !base.fake_quant && quant::quant4_matmul_fused(x, base.nf4);
}

at::Tensor present(const at::Tensor& t) { return t.defined() && t.numel() > 0 ? t : at::Tensor(); }
at::Tensor placeholder(const at::Tensor& t) { return t.defined() ? t : at::empty({0}); }

}  // namespace

c10::IValue base_capsule(std::shared_ptr<const FrozenBase> base) {
    return c10::IValue::make_capsule(c10::make_intrusive<BaseCapsule>(std::move(base)));
}

const FrozenBase& base_of_capsule(const c10::IValue& capsule) {
    return *static_cast<BaseCapsule*>(capsule.toCapsule().get())->base;
}

at::Tensor FrozenBase::dequantized(c10::ScalarType dtype) const {
    if (nf4.defined()) return nf4.dequantize(dtype);
    TORCH_CHECK(dense.defined(), "lora_linear: the base weight was never loaded");
    return dense.scalar_type() == dtype ? dense : dense.to(dtype);
}

at::Tensor FrozenBase::weight(c10::ScalarType dtype) const {
    if (!fake_quant) return dequantized(dtype);
    return quant::fake_quantize_weight(dequantized(at::kFloat), *fake_quant).to(dtype);
}

at::Tensor LoraLinearFunction::forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                       const at::Tensor& lora_a_in, const at::Tensor& lora_b_in,
                                       const at::Tensor& mask_in,
                                       const std::shared_ptr<const FrozenBase>& base, double scale,
                                       double keep) {
    const at::Tensor lora_a = present(lora_a_in), lora_b = present(lora_b_in),
                     mask = present(mask_in);
    TORCH_CHECK(base != nullptr, "lora_linear: no base");
    const int64_t in = base->in_features, out = base->out_features;
    TORCH_CHECK(x.dim() >= 1 && x.size(-1) == in, "lora_linear: x must be [..., ", in, "], got ",
                x.sizes());
    const bool has_lora = lora_a.defined();
    TORCH_CHECK(has_lora == lora_b.defined(),
                "lora_linear: lora_A and lora_B must both be set or both unset");
    if (has_lora) {
        TORCH_CHECK(lora_a.dim() == 2 && lora_a.size(1) == in, "lora_linear: lora_A must be [r, ",
                    in, "], got ", lora_a.sizes());
        TORCH_CHECK(lora_b.dim() == 2 && lora_b.size(0) == out && lora_b.size(1) == lora_a.size(0),
                    "lora_linear: lora_B must be [", out, ", ", lora_a.size(0), "], got ",
                    lora_b.sizes());
    }
    TORCH_CHECK(!mask.defined() || (mask.sizes() == x.sizes() && mask.scalar_type() == at::kBool),
                "lora_linear: the dropout mask must be bool of x's shape ", x.sizes(), ", got ",
                mask.scalar_type(), " ", mask.sizes());
    TORCH_CHECK(keep > 0.0 && keep <= 1.0, "lora_linear: keep probability must lie in (0, 1], got ",
                keep);

    const auto dtype = x.scalar_type();
    at::Tensor y;  // [..., out], contiguous
    if (fused_base(*base, x)) {
        y = quant::quant4_linear(x, base->nf4, base->bias).contiguous();
    } else {
        at::Tensor w = base->weight(dtype);  // [out, in], dropped at the end of this scope
        at::Tensor b = base->bias.defined() ? base->bias.to(dtype) : at::Tensor();
        y = at::linear(x, w, b).contiguous();
    }
    if (has_lora) {
        at::Tensor a = lora_a.to(dtype), bmat = lora_b.to(dtype);
        at::Tensor x2 = x.reshape({-1, in});  // [N, in]
        at::Tensor mask2 = mask.defined() ? mask.reshape({-1, in}) : at::Tensor();
        at::Tensor u = masked(x2, mask2).mm(a.t());  // (X ⊙ M)·Aᵀ [N, r]; D·Aᵀ = that / q
        const double s = mask2.defined() ? scale / keep : scale;
        y.view({-1, out}).addmm_(u, bmat.t(), /*beta=*/1, /*alpha=*/s);
    }
    ctx->save_for_backward({x, lora_a, lora_b, mask});
    ctx->saved_data["base"] = base_capsule(base);
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["keep"] = keep;
    return y;
}

torch::autograd::variable_list LoraLinearFunction::backward(
    torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grad_outputs) {
    auto saved = ctx->get_saved_variables();
    const at::Tensor& x = saved[0];
    const at::Tensor& lora_a = saved[1];
    const at::Tensor& lora_b = saved[2];
    const at::Tensor& mask = saved[3];
    const FrozenBase& base = base_of_capsule(ctx->saved_data["base"]);
    const double scale = ctx->saved_data["scale"].toDouble();
    const double keep = ctx->saved_data["keep"].toDouble();

    const int64_t in = base.in_features, out = base.out_features;
    const auto dtype = x.scalar_type();
    at::Tensor g2 = grad_outputs[0].to(dtype).reshape({-1, out});  // [N, out]
    at::Tensor x2 = x.reshape({-1, in});                           // [N, in]
    const bool has_lora = lora_a.defined();

    at::Tensor dx2;  // [N, in]
    if (ctx->needs_input_grad(0) && fused_base(base, g2)) {
        dx2 = quant::quant4_matmul_grad_input(g2, base.nf4);  // G·deq(W), tile by tile
    } else if (ctx->needs_input_grad(0)) {
        at::Tensor w = base.weight(dtype);  // re-dequantized for dX only and freed below
        dx2 = g2.mm(w);
    }
    at::Tensor da, db;
    if (has_lora) {
        at::Tensor a = lora_a.to(dtype), bmat = lora_b.to(dtype);
        at::Tensor mask2 = mask.defined() ? mask.reshape({-1, in}) : at::Tensor();
        at::Tensor gb = g2.mm(bmat);  // G·B [N, r]
        // s·(G·B)·A is dL/dD; dL/dX gets it through D = X ⊙ M / q, i.e. times M / q.
        const double s = mask2.defined() ? scale / keep : scale;
        if (dx2.defined() && !mask2.defined()) {
            dx2.addmm_(gb, a, /*beta=*/1, /*alpha=*/scale);
        } else if (dx2.defined()) {
            at::Tensor dd = gb.mm(a);  // [N, in]
            dx2.add_(apply_keep_mask_(dd, mask2), s);
        }
        at::Tensor xm = masked(x2, mask2);  // X ⊙ M [N, in] = q·D
        if (ctx->needs_input_grad(2)) {
            at::Tensor u = xm.mm(a.t());                              // [N, r]
            db = at::mm(g2.t(), u).mul_(s).to(lora_b.scalar_type());  // s·Gᵀ·D·Aᵀ [out, r]
        }
        if (ctx->needs_input_grad(1)) {
            da = at::mm(gb.t(), xm).mul_(s).to(lora_a.scalar_type());  // s·(G·B)ᵀ·D [r, in]
        }
    }
    at::Tensor dx = dx2.defined() ? dx2.view(x.sizes()) : at::Tensor();
    // one entry per forward argument: x, A, B, mask, base, scale, keep
    return {dx, da, db, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
}

at::Tensor lora_linear(const at::Tensor& x, const std::shared_ptr<const FrozenBase>& base,
                       const at::Tensor& lora_a, const at::Tensor& lora_b, double scale,
                       const at::Tensor& mask, double keep) {
    return LoraLinearFunction::apply(x, placeholder(lora_a), placeholder(lora_b), placeholder(mask),
                                     base, scale, keep);
}

}  // namespace qlora::lora
