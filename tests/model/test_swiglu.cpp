// SwiGLU: the fused CPU kernels (kernels/swiglu_cpu.h) against their reference twin on every body
// and against the composite silu(g)·u with its autograd, float32 and bf16; the MLP takes the
// kernels with and without autograd and gets the same bits.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "kernels/swiglu_cpu.h"
#include "model/llama.h"
#include "model/swiglu.h"

namespace qlora::model {
namespace {

// |a - b| <= |b|·rel + abs element-wise.
::testing::AssertionResult close(const at::Tensor& a, const at::Tensor& b, double rel, double abs) {
    const at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
    const at::Tensor excess = (x - y).abs() - (y.abs() * rel + abs);
    const double worst = excess.max().item<double>();
    if (worst <= 0.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "exceeds the bound by " << worst;
}

// dg's error scale: silu'(g) = σ·(1 + g·(1 - σ)) cancels to 0 near g = -1.28, so float32 errors
// there are relative to the terms' magnitude |dh·u|·σ·(1 + |g|·(1 - σ)), not to dg.
at::Tensor dg_scale(const at::Tensor& g, const at::Tensor& u, const at::Tensor& dh) {
    const at::Tensor gd = g.to(at::kDouble), sigma = at::sigmoid(gd);
    return (dh.to(at::kDouble) * u.to(at::kDouble)).abs() * sigma * (1 + gd.abs() * (1 - sigma)) *
           (16 * std::ldexp(1.0, -24));
}

// |a - b| <= |b|·rel + scale element-wise.
::testing::AssertionResult close_scaled(const at::Tensor& a, const at::Tensor& b, double rel,
                                        const at::Tensor& scale) {
    const at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
    const double worst = ((x - y).abs() - (y.abs() * rel + scale)).max().item<double>();
    if (worst <= 0.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "exceeds the bound by " << worst;
}

// Inputs over silu's whole range: large negative (σ -> 0), around 0, large positive, and exact 0.
at::Tensor spread(int64_t n, uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Tensor x = at::randn({n}, gen) * 6.0;
    if (n > 3) {
        x[0] = 0.0;
        x[1] = -90.0;
        x[2] = 90.0;
    }
    return x;
}

// float32: the vector exp's ulp moves σ by at most ~2 ulps through the divisions, so a few ulps
// (dg: of its terms' scale); bf16: at most one bf16 step where the two float32 values straddle a
// rounding boundary.
TEST(Swiglu, KernelsMatchTheirTwinOnEveryBody) {
    std::vector<kernels::CpuIsa> isas = {kernels::CpuIsa::kPortable};
    if (kernels::avx512_bw_vl_isa() == kernels::CpuIsa::kAvx512)
        isas.push_back(kernels::CpuIsa::kAvx512);
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        for (int64_t n : {1, 15, 16, 17, 1000, 70001}) {
            const at::Tensor g = spread(n, 1).to(dtype), u = spread(n, 2).to(dtype),
                             dh = spread(n, 3).to(dtype);
            const kernels::SwigluData d{g.data_ptr(), u.data_ptr(), dtype == at::kBFloat16, n};
            at::Tensor h_ref = at::empty_like(g), dg_ref = at::empty_like(g),
                       du_ref = at::empty_like(g);
            kernels::swiglu_forward_ref(d, h_ref.data_ptr());
            kernels::swiglu_backward_ref(d, dh.data_ptr(), dg_ref.data_ptr(), du_ref.data_ptr());
            const double rel = dtype == at::kFloat ? 16 * std::ldexp(1.0, -24) : 1.0 / 128;
            for (auto isa : isas) {
                at::Tensor h = at::empty_like(g), dg = at::empty_like(g), du = at::empty_like(g);
                kernels::swiglu_forward(d, h.data_ptr(), isa);
                kernels::swiglu_backward(d, dh.data_ptr(), dg.data_ptr(), du.data_ptr(), isa);
                const std::string where = std::string(kernels::cpu_isa_name(isa)) + " n " +
                                          std::to_string(n) + " " + c10::toString(dtype);
                EXPECT_TRUE(close(h, h_ref, rel, 1e-30)) << where;
                EXPECT_TRUE(close(du, du_ref, rel, 1e-30)) << where;
                EXPECT_TRUE(close_scaled(dg, dg_ref, rel, dg_scale(g, u, dh))) << where;
            }
        }
    }
}

// The autograd function against ATen's silu(g)·u and its backward: float32 within a few ulps,
// bf16 within a bf16 step (dg: plus a few float32 ulps of its terms' scale).
TEST(Swiglu, ValueAndGradientsMatchTheComposite) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        const at::Tensor g0 = spread(4099, 5).view({1, 4099}).to(dtype);
        const at::Tensor u0 = spread(4099, 6).view({1, 4099}).to(dtype);
        const at::Tensor dh = spread(4099, 7).view({1, 4099}).to(dtype);
        ASSERT_TRUE(fused_swiglu_applies(g0, u0));
        at::Tensor g1 = g0.clone().requires_grad_(true), u1 = u0.clone().requires_grad_(true);
        at::Tensor g2 = g0.clone().requires_grad_(true), u2 = u0.clone().requires_grad_(true);
        const at::Tensor ours = fused_swiglu(g1, u1);
        const at::Tensor theirs = at::silu(g2) * u2;
        ours.backward(dh);
        theirs.backward(dh);
        const double rel = dtype == at::kFloat ? 16 * std::ldexp(1.0, -24) : 1.0 / 128;
        EXPECT_TRUE(close(ours, theirs, rel, 1e-30)) << c10::toString(dtype);
        EXPECT_TRUE(close(u1.grad(), u2.grad(), rel, 1e-30)) << c10::toString(dtype);
        EXPECT_TRUE(close_scaled(g1.grad(), g2.grad(), rel, dg_scale(g0, u0, dh)))
            << c10::toString(dtype);
    }
}

// A NaN or an infinite input gives what the composite gives there (NaN, or ±inf / NaN).
TEST(Swiglu, NonFiniteInputsPropagate) {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const at::Tensor g = at::tensor({nan, 1.0f, inf, 2.0f}), u = at::tensor({1.0f, nan, 1.0f, inf});
    const at::Tensor ours = fused_swiglu(g, u), theirs = at::silu(g) * u;
    for (int64_t i = 0; i < 4; ++i) {
        const float a = ours[i].item<float>(), b = theirs[i].item<float>();
        EXPECT_TRUE((std::isnan(a) && std::isnan(b)) || a == b) << i << ": " << a << " vs " << b;
    }
}

// The MLP's forward without autograd (a checkpointed layer's forward) and with it (its recompute)
// give the same bits.
TEST(Swiglu, MlpGivesTheSameBitsWithAndWithoutAutograd) {
    LlamaConfig c;
    c.hidden_size = 64;
    c.intermediate_size = 176;
    torch::manual_seed(9);
    Mlp mlp(c, "mlp.");
    mlp->gate_proj->set_weight(at::randn({176, 64}) * 0.1);
    mlp->up_proj->set_weight(at::randn({176, 64}) * 0.1);
    mlp->down_proj->set_weight(at::randn({64, 176}) * 0.1);
    const at::Tensor x = at::randn({2, 5, 64});
    at::Tensor plain;
    {
        torch::NoGradGuard no_grad;
        plain = mlp(x);
    }
    const at::Tensor tracked = mlp(x.clone().requires_grad_(true));
    EXPECT_TRUE(at::equal(plain, tracked.detach()));
}

}  // namespace
}  // namespace qlora::model
