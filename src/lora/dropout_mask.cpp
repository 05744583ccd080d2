// LoRA dropout masks: the CPU counter-based kernel, or bernoulli_ on other devices.
#include "lora/dropout_mask.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

#include <mutex>

#include "kernels/dropout_mask_cpu.h"

namespace qlora::lora {
namespace {

uint64_t draw_seed() {
    at::Generator gen = at::globalContext().defaultGenerator(at::kCPU);
    std::lock_guard<std::mutex> lock(gen.mutex());
    return at::check_generator<at::CPUGeneratorImpl>(gen)->random64();
}

// Whether the CPU kernel takes x and mask (same shape, both contiguous, x float32 or bf16).
bool kernel_takes(const at::Tensor& x, const at::Tensor& mask) {
    const auto t = x.scalar_type();
    return x.is_cpu() && mask.is_cpu() && (t == at::kFloat || t == at::kBFloat16) &&
           mask.scalar_type() == at::kBool && x.sizes() == mask.sizes() && x.is_contiguous() &&
           mask.is_contiguous();
}

// out = x ⊙ mask with the kernel (out may alias x).
void apply_kernel(const at::Tensor& x, const at::Tensor& mask, at::Tensor& out) {
    const bool* keep = mask.data_ptr<bool>();
    if (x.scalar_type() == at::kFloat) {
        kernels::apply_keep_mask(x.data_ptr<float>(), keep, x.numel(), out.data_ptr<float>());
    } else {
        kernels::apply_keep_mask_bf16(static_cast<const uint16_t*>(x.data_ptr()), keep, x.numel(),
                                      static_cast<uint16_t*>(out.data_ptr()));
    }
}

}  // namespace

at::Tensor apply_keep_mask(const at::Tensor& x, const at::Tensor& mask) {
    if (!kernel_takes(x, mask)) return x.mul(mask);
    at::Tensor out = at::empty_like(x);
    apply_kernel(x, mask, out);
    return out;
}

at::Tensor& apply_keep_mask_(at::Tensor& x, const at::Tensor& mask) {
    if (!kernel_takes(x, mask)) return x.mul_(mask);
    apply_kernel(x, mask, x);
    return x;
}

at::Tensor dropout_keep_mask(const at::Tensor& x, double keep) {
    at::Tensor mask = at::empty(x.sizes(), x.options().dtype(at::kBool));
    if (!x.is_cpu()) return mask.bernoulli_(keep);
    kernels::dropout_mask(draw_seed(), kernels::dropout_keep_threshold(keep), mask.numel(),
                          mask.data_ptr<bool>());
    return mask;
}

}  // namespace qlora::lora
