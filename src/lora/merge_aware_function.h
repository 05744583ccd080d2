// MergeAwareLinearFunction: the forward of merge-aware QAT+LoRA, y = x·Q(W0 + s·B·A)ᵀ + b, with a
// straight-through estimator through Q, so the adapter learns what survives quantization and the
// merged-and-quantized export is exactly the trained model (DESIGN.md section 11).
//
// Forward, for x [..., in] flattened to X [N, in], frozen W0 [out, in] (NF4 or dense), bias b,
// trainable A [r, in], B [out, r], scale s and a fake-quant scheme Q (quant/fake_quant.h):
//     M  = W0 + s·B·A            float32 [out, in] (W0 dequantized to float32 first)
//     Wq = Q(M)                  float32 [out, in], cast to X's dtype for the matmul
//     Y  = X·Wqᵀ + b                                                    [N, out]
// Backward, with G = dL/dY [N, out] and K the STE mask of Q at M (1 inside the clipping range):
//     dL/dX  = G·Wq                                                     [N, in]
//     dL/dM  = K ⊙ (Gᵀ·X)                                               [out, in]
//     dL/dB  = s·(dL/dM)·Aᵀ                                             [out, r]
//     dL/dA  = s·Bᵀ·(dL/dM)                                             [r, in]
// since dM = s·(dB·A + B·dA). Where Q clips nothing (int8, nf4: K = 1) these are the ordinary
// LoRA gradients and are computed without the [out, in] product: dB = s·Gᵀ·(X·Aᵀ),
// dA = s·(G·B)ᵀ·X.
// Saved: X, A, B and the base as stored (NF4 bytes) — never M or Wq. Backward recomputes M and
// Q(M), so the memory held across the step stays 4-bit; one layer's M, Q(M), mask and dL/dM exist
// transiently (the memory plan's "QAT merged weight" row). No dropout: a merged weight has no
// separate adapter input (the config rejects lora.dropout > 0 with merge_aware).
#pragma once

#include <torch/torch.h>

#include <memory>

#include "lora/lora_function.h"
#include "quant/fake_quant.h"

namespace qlora::lora {

// Q(W0 + s·B·A) in float32 [out, in]: the weight a merge-aware QAT forward multiplies by, and the
// one an export writes (quantized with the same scheme, it reproduces these values). w0: the base
// as the training forward saw it, [out, in] (deq(NF4) or the 16-bit weight; cast to float32);
// lora_a [r, in], lora_b [out, r]. M is one float32 addmm: w0 + s·(B·A).
at::Tensor merge_aware_weight(const at::Tensor& w0, const at::Tensor& lora_a,
                              const at::Tensor& lora_b, double scale,
                              const quant::QatScheme& scheme);

class MergeAwareLinearFunction : public torch::autograd::Function<MergeAwareLinearFunction> {
  public:
    // base->fake_quant must be set (it is Q); its weight is used unquantized for W0.
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                              const at::Tensor& lora_a, const at::Tensor& lora_b,
                              const std::shared_ptr<const FrozenBase>& base, double scale);
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs);
};

// y = x·Q(W0 + s·B·A)ᵀ + b through MergeAwareLinearFunction (shapes as above).
at::Tensor merge_aware_linear(const at::Tensor& x, const std::shared_ptr<const FrozenBase>& base,
                              const at::Tensor& lora_a, const at::Tensor& lora_b, double scale);

}  // namespace qlora::lora
