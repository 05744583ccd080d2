// LoraLinearFunction on CUDA (NF4 dequantized by the CUDA kernel) against the plain composite, in
// fp32 and bf16, with and without dropout; checkpointed layer inputs offloaded to host memory.
// Skipped with a reason where no GPU is present.
#include <gtest/gtest.h>

#include <algorithm>

#include "../lora/lora_model_fixture.h"
#include "../lora/lora_reference.h"
#include "core/device.h"
#include "core/peak_memory.h"
#include "lora/activation_checkpointing.h"
#include "lora/lora_function.h"
#include "support/test_support.h"

namespace qlora::lora {
namespace {

constexpr double kFp32Atol = 1e-4, kFp32Rtol = 1e-3;  // TF32-free cuBLAS, different summation order
constexpr double kBf16Frac = 2e-2;

class LoraCuda : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!cuda_available())
            GTEST_SKIP() << "no CUDA GPU on this machine: LoRA on CUDA not exercised";
    }
};

TEST_F(LoraCuda, ForwardAndGradientsMatchTheComposite) {
    const int64_t in = 512, out = 384, r = 16;
    const double keep = 0.9, scale = 2.0;
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        for (bool dropout : {false, true}) {
            SCOPED_TRACE(::testing::Message() << dtype << " dropout=" << dropout);
            auto cpu_base = test::make_base(out, in, /*nf4=*/true, /*with_bias=*/true, dtype, 5);
            auto base = std::make_shared<FrozenBase>(*cpu_base);
            base->nf4 = cpu_base->nf4.to(at::kCUDA);
            base->bias = cpu_base->bias.cuda();
            auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
            at::Tensor x0 = at::randn({2, 64, in}, gen, at::kFloat).to(at::kCUDA, dtype);
            at::Tensor a0 = (at::randn({r, in}, gen, at::kFloat) * 0.05).cuda();
            at::Tensor b0 = (at::randn({out, r}, gen, at::kFloat) * 0.05).cuda();
            at::Tensor g = at::randn({2, 64, out}, gen, at::kFloat).to(at::kCUDA, dtype);
            at::Tensor mask = dropout ? (at::rand({2, 64, in}, gen) < keep).cuda() : at::Tensor();
            auto run = [&](bool fused) {
                at::Tensor x = x0.clone().requires_grad_(true);
                at::Tensor a = a0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
                at::Tensor y = fused ? lora_linear(x, base, a, b, scale, mask, keep)
                                     : test::composite_lora(x, base->weight(dtype), base->bias, a,
                                                            b, scale, mask, keep);
                auto gr = torch::autograd::grad({y}, {x, a, b}, {g});
                return std::vector<at::Tensor>{y.detach().cpu(), gr[0].cpu(), gr[1].cpu(),
                                               gr[2].cpu()};
            };
            auto ref = run(false), got = run(true);
            for (size_t i = 0; i < ref.size(); ++i) {
                const double s = ref[i].abs().max().item<double>();
                EXPECT_TRUE(
                    dtype == at::kFloat
                        ? qlora::test::tensors_close(ref[i], got[i], kFp32Atol * std::max(1.0, s),
                                                     kFp32Rtol)
                        : qlora::test::tensors_close(ref[i], got[i], kBf16Frac * s, kBf16Frac))
                    << "output " << i << " (y, dx, dA, dB)";
            }
        }
    }
}

// train.offload_activations: the checkpointed layer inputs wait in pinned host memory, so the
// device's peak during the forward is lower by at least the inputs of all layers but the last
// (saved while the later layers ran), and the gradients are the same ops on the same values.
TEST_F(LoraCuda, OffloadedCheckpointsLeaveTheDeviceAndKeepTheGradients) {
    const at::Tensor batch = test::story_batch(2, 128).cuda();
    model::Llama m = test::load_stories(/*nf4=*/true);
    LoraOptions o;
    o.r = 4;
    o.init_seed = 3;
    apply_lora(*m, o);
    m->to_device(at::kCUDA);
    const PeakMemory peak(c10::Device(at::kCUDA, 0));
    auto run = [&](bool offload) {
        set_gradient_checkpointing(*m, true, offload);
        std::vector<at::Tensor> params;
        for (auto& [name, t] : adapter_parameters(*m)) params.push_back(t);
        torch::cuda::synchronize();
        peak.reset();
        at::Tensor loss = test::lm_loss(m, batch);
        torch::cuda::synchronize();
        const int64_t forward_peak = peak.peak_bytes();
        auto grads = torch::autograd::grad({loss}, params);
        return std::make_tuple(loss.item<double>(), grads, forward_peak);
    };
    const auto [loss_on_device, grads_on_device, peak_on_device] = run(false);
    const auto [loss_offloaded, grads_offloaded, peak_offloaded] = run(true);
    EXPECT_EQ(loss_on_device, loss_offloaded);
    for (size_t i = 0; i < grads_on_device.size(); ++i)
        EXPECT_TRUE(qlora::test::tensors_identical(grads_on_device[i], grads_offloaded[i])) << i;
    const int64_t layer_input = 2 * 128 * m->config().hidden_size * 4;  // [B, T, hidden] float32
    EXPECT_LE(peak_offloaded, peak_on_device - 3 * layer_input)
        << "offloaded " << peak_offloaded << " B, on device " << peak_on_device << " B";
}

}  // namespace
}  // namespace qlora::lora
