// LoraLinearFunction: the custom autograd function behind every LoRA (and frozen NF4) projection.
// It keeps the 4-bit base as it is stored and re-dequantizes it in backward, so the graph never
// holds a dense copy of W: the memory promise of QLoRA.
//
// Forward, for x [..., in] flattened to X [N, in], frozen W [out, in] (NF4 or dense), bias b [out],
// trainable A [r, in], B [out, r], scale s, optional dropout mask M [N, in] (bool, keep prob q):
//     D = X ⊙ M / q                       (D = X without dropout)          [N, in]
//     Y = X·deq(W)ᵀ + b + s·(D·Aᵀ)·Bᵀ                                       [N, out]
// Backward, with G = dL/dY [N, out]:
//     dL/dX = G·deq(W) + (s·(G·B)·A) ⊙ M / q       (the second term flows back through D)
//     dL/dB = s·Gᵀ·(D·Aᵀ)                          [out, r]
//     dL/dA = s·(G·B)ᵀ·D                           [r, in]
// since Y_lora = s·U·Bᵀ with U = D·Aᵀ: dB = s·Gᵀ·U, dU = s·G·B, dA = dUᵀ·D, dD = dU·A.
// W and b are frozen and get no gradient. Saved: X (the caller's tensor, no copy), M, A, B, and
// the base (NF4 bytes or the frozen dense parameter itself) in a capsule — never deq(W).
// A and B are cast to X's dtype for the matmuls; their gradients come back in their own dtype.
#pragma once

#include <torch/torch.h>

#include <optional>

#include "quant/fake_quant.h"
#include "quant/quant4_tensor.h"

namespace qlora::lora {

// The frozen base of a projection, shared (not copied) with the module that owns it.
struct FrozenBase {
    quant::Quant4Tensor nf4;  // [out, in] in 4 bits, or undefined
    at::Tensor dense;         // [out, in], or undefined when nf4 is set
    at::Tensor bias;          // [out] or undefined
    int64_t in_features = 0;
    int64_t out_features = 0;
    // QAT: the forward (and backward) use Q(W) instead of W (fake_quant.h), recomputed at each use
    // like the dequantization, so no dense copy is kept. Unset outside QAT.
    std::optional<quant::QatScheme> fake_quant;

    // W in `dtype` [out, in]: a fresh dequantized copy (NF4) or a cast/alias of the dense weight;
    // Q(W) computed in float32 and cast to `dtype` when fake_quant is set.
    at::Tensor weight(c10::ScalarType dtype) const;
    // W itself, never fake-quantized (what merge-aware QAT adds the adapter to).
    at::Tensor dequantized(c10::ScalarType dtype) const;
};

// The frozen base travels in ctx->saved_data as a capsule: it stays alive without its tensors
// becoming saved variables (they never need gradients or version checks: they are frozen).
c10::IValue base_capsule(std::shared_ptr<const FrozenBase> base);
const FrozenBase& base_of_capsule(const c10::IValue& capsule);

class LoraLinearFunction : public torch::autograd::Function<LoraLinearFunction> {
  public:
    // x [..., in]; lora_a [r, in] and lora_b [out, r], both undefined for a frozen projection
    // without adapter; mask: undefined (no dropout) or bool of x's shape, applied as mask / keep.
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                              const at::Tensor& lora_a, const at::Tensor& lora_b,
                              const at::Tensor& mask, const std::shared_ptr<const FrozenBase>& base,
                              double scale, double keep);
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs);
};

// y = x·deq(W)ᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ through LoraLinearFunction (shapes as above).
at::Tensor lora_linear(const at::Tensor& x, const std::shared_ptr<const FrozenBase>& base,
                       const at::Tensor& lora_a, const at::Tensor& lora_b, double scale,
                       const at::Tensor& mask = {}, double keep = 1.0);

}  // namespace qlora::lora
