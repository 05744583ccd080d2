// The plain LibTorch composite every LoRA test compares against: dequantize W once, then ordinary
// matmuls under autograd (what PEFT's Linear4bit does), plus small input builders.
#pragma once

#include <torch/torch.h>

#include <memory>

#include "lora/lora_function.h"

namespace qlora::lora::test {

// y = x·Wᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ with W given dense in x's dtype; mask bool or undefined.
inline at::Tensor composite_lora(const at::Tensor& x, const at::Tensor& w, const at::Tensor& bias,
                                 const at::Tensor& a, const at::Tensor& b, double scale,
                                 const at::Tensor& mask, double keep) {
    const auto dt = x.scalar_type();
    at::Tensor d = mask.defined() ? x * mask.to(dt) * (1.0 / keep) : x;
    at::Tensor base = at::linear(x, w, bias.defined() ? bias.to(dt) : at::Tensor());
    return base + scale * at::linear(at::linear(d, a.to(dt)), b.to(dt));
}

// A frozen base of shape [out, in] from a seeded random W: NF4 (blocksize 64, double quant) or
// dense in `dtype`.
inline std::shared_ptr<FrozenBase> make_base(int64_t out, int64_t in, bool nf4, bool with_bias,
                                             c10::ScalarType dtype, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Tensor w = at::randn({out, in}, gen, at::kFloat) * 0.1;
    auto base = std::make_shared<FrozenBase>();
    base->in_features = in;
    base->out_features = out;
    if (nf4) {
        base->nf4 = quant::Quant4Tensor::quantize(w, quant::Quant4Options{}, "test.weight");
    } else {
        base->dense = w.to(dtype);
    }
    if (with_bias) base->bias = (at::randn({out}, gen, at::kFloat) * 0.1).to(dtype);
    return base;
}

}  // namespace qlora::lora::test
