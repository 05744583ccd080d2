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

}  // namespace

at::Tensor dropout_keep_mask(const at::Tensor& x, double keep) {
    at::Tensor mask = at::empty(x.sizes(), x.options().dtype(at::kBool));
    if (!x.is_cpu()) return mask.bernoulli_(keep);
    kernels::dropout_mask(draw_seed(), kernels::dropout_keep_threshold(keep), mask.numel(),
                          mask.data_ptr<bool>());
    return mask;
}

}  // namespace qlora::lora
