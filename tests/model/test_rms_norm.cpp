// RMSNorm: the fused CPU kernels (kernels/rms_norm_cpu.h) against their reference twins and against
// the composite ATen form (what transformers computes), within the stated bounds.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "kernels/rms_norm_cpu.h"
#include "model/llama.h"

namespace qlora::model {
namespace {

// |y - ref| <= |ref|·((dim + 4)·u): the mean square's γ_dim, carried through sqrt (halved), the
// inverse and two products (one rounding each), u = 2^-24.
::testing::AssertionResult within_bound(const at::Tensor& y, const at::Tensor& ref, int64_t dim) {
    const double u = std::ldexp(1.0, -24);
    const at::Tensor err = (y.to(at::kDouble) - ref.to(at::kDouble)).abs();
    const at::Tensor bound = ref.to(at::kDouble).abs() * (static_cast<double>(dim + 4) * u);
    const double worst = (err - bound).max().item<double>();
    if (worst <= 0.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "error exceeds the bound by " << worst;
}

// bf16 results that differ from the reference by at most one bf16 step of the reference.
::testing::AssertionResult within_bf16_step(const at::Tensor& y, const at::Tensor& ref) {
    const at::Tensor a = y.to(at::kDouble), b = ref.to(at::kDouble);
    const double worst = ((a - b).abs() - b.abs() / 128).max().item<double>();
    if (worst <= 0.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "bf16 results differ by more than a step: " << worst;
}

at::Tensor spread_rows(int64_t rows, int64_t dim) {
    return at::randn({rows, dim}) * at::exp(at::randn({rows, 1}) * 3.0);  // rows of any scale
}

TEST(RmsNorm, KernelMatchesItsReferenceOnAnyThreadCount) {
    torch::manual_seed(3);
    const int threads = at::get_num_threads();
    for (int64_t dim : {1, 7, 64, 2048, 2051}) {
        for (int64_t rows : {1, 3, 17}) {
            const at::Tensor x = spread_rows(rows, dim), w = at::randn({dim});
            at::Tensor ref = at::empty({rows, dim});
            kernels::rms_norm_rows_ref(x.data_ptr<float>(), w.data_ptr<float>(), rows, dim, 1e-5f,
                                       ref.data_ptr<float>());
            for (int t : {1, 2}) {
                at::set_num_threads(t);
                at::Tensor y = at::empty({rows, dim});
                kernels::rms_norm_rows(x.data_ptr<float>(), w.data_ptr<float>(), rows, dim, 1e-5f,
                                       y.data_ptr<float>());
                EXPECT_TRUE(within_bound(y, ref, dim)) << "dim " << dim << " rows " << rows;
            }
        }
    }
    at::set_num_threads(threads);
}

// The module on the CPU takes the fused kernels with and without autograd (the same bits either
// way, so a checkpointed layer's recompute equals its forward); they agree with the composite ATen
// form within the bound; zero rows stay zero (eps > 0); a strided view takes the composite form.
TEST(RmsNorm, ModuleTakesTheKernelsWithAndWithoutAutograd) {
    torch::manual_seed(4);
    RMSNorm norm(300, 1e-6);
    norm->weight.copy_(at::randn({300}));
    at::Tensor x = at::randn({2, 5, 300}) * 40.0;
    x[1][2].zero_();
    const at::Tensor with_grad = norm(x.clone().requires_grad_(true));
    at::Tensor fused, strided;
    {
        torch::NoGradGuard no_grad;
        fused = norm(x);
        strided = norm(x.transpose(0, 1));
    }
    EXPECT_TRUE(at::equal(with_grad.detach(), fused));
    const at::Tensor composite =
        norm->weight * (x * at::rsqrt(x.pow(2).mean(-1, /*keepdim=*/true) + 1e-6));
    EXPECT_TRUE(within_bound(fused.view({-1, 300}), composite.view({-1, 300}), 300));
    EXPECT_TRUE(at::equal(fused[1][2], at::zeros({300})));
    EXPECT_TRUE(at::equal(strided, composite.transpose(0, 1)));
}

// bf16 and float32 rows: the kernels (AVX-512 where the CPU has it, and the portable loops)
// against the double-sum twin. float32 within the sums' bound; bf16 outputs may sit one bf16 step
// apart where the two float32 values straddle a rounding boundary.
TEST(RmsNorm, TrainingKernelsMatchTheirTwinOnEveryBody) {
    torch::manual_seed(5);
    std::vector<kernels::CpuIsa> isas = {kernels::CpuIsa::kPortable};
    if (kernels::avx512_bw_vl_isa() == kernels::CpuIsa::kAvx512)
        isas.push_back(kernels::CpuIsa::kAvx512);
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        for (int64_t dim : {1, 7, 16, 33, 2048, 2051}) {
            const int64_t rows = 9;
            const at::Tensor x = spread_rows(rows, dim).to(dtype), w = at::randn({dim}).to(dtype);
            const at::Tensor dy = at::randn({rows, dim}).to(dtype);
            const kernels::NormRows n{x.data_ptr(), w.data_ptr(), dtype == at::kBFloat16,
                                      rows,         dim,          1e-5f};
            at::Tensor y_ref = at::empty_like(x), inv_ref = at::empty({rows}),
                       dx_ref = at::empty_like(x);
            kernels::rms_norm_forward_ref(n, y_ref.data_ptr(), inv_ref.data_ptr<float>());
            kernels::rms_norm_backward_ref(n, inv_ref.data_ptr<float>(), dy.data_ptr(),
                                           dx_ref.data_ptr());
            for (auto isa : isas) {
                at::Tensor y = at::empty_like(x), inv = at::empty({rows}), dx = at::empty_like(x);
                kernels::rms_norm_forward(n, y.data_ptr(), inv.data_ptr<float>(), isa);
                // The same inv for both backward bodies: only the sum's order differs.
                kernels::rms_norm_backward(n, inv_ref.data_ptr<float>(), dy.data_ptr(),
                                           dx.data_ptr(), isa);
                const std::string where = std::string(kernels::cpu_isa_name(isa)) + " dim " +
                                          std::to_string(dim) + " " + c10::toString(dtype);
                EXPECT_TRUE(within_bound(inv, inv_ref, dim)) << where;
                if (dtype == at::kFloat) {
                    EXPECT_TRUE(within_bound(y, y_ref, dim)) << where;
                } else {
                    EXPECT_TRUE(within_bf16_step(y, y_ref)) << where;
                }
                // dx = inv·g - x·c: the error of c (the sum's γ_dim) is relative to |x·c|, so the
                // bound is on the two terms' magnitudes, not on |dx| (they may cancel).
                const at::Tensor g =
                    (dy.to(at::kFloat) * w.to(at::kFloat)).to(dtype).to(at::kFloat);
                const at::Tensor inv_g = g * inv_ref.unsqueeze(1);
                const at::Tensor scale = inv_g.abs() + (inv_g - dx_ref.to(at::kFloat)).abs();
                const double step = dtype == at::kFloat ? 0.0 : 1.0 / 128;
                const at::Tensor err = (dx.to(at::kDouble) - dx_ref.to(at::kDouble)).abs();
                const at::Tensor bound =
                    scale.to(at::kDouble) * (static_cast<double>(dim + 8) * std::ldexp(1.0, -24)) +
                    dx_ref.to(at::kDouble).abs() * step;
                EXPECT_LE((err - bound).max().item<double>(), 0.0) << where;
            }
        }
    }
}

// The autograd function's input gradient against the composite form's (what transformers runs),
// float32 and bf16, with the weight frozen as the module's is.
TEST(RmsNorm, GradientMatchesTheCompositeForm) {
    torch::manual_seed(6);
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        RMSNorm norm(256, 1e-5);
        norm->weight.copy_(at::randn({256}));
        norm->to(dtype);
        const at::Tensor x0 = (at::randn({3, 4, 256}) * 5.0).to(dtype);
        const at::Tensor dy = at::randn({3, 4, 256}).to(dtype);
        at::Tensor a = x0.clone().requires_grad_(true), b = x0.clone().requires_grad_(true);
        norm(a).backward(dy);
        at::Tensor h = b.to(at::kFloat);
        h = h * at::rsqrt(h.pow(2).mean(-1, /*keepdim=*/true) + 1e-5);
        (norm->weight * h.to(dtype)).backward(dy);
        const double tol = dtype == at::kFloat ? 1e-5 : 2.0 / 128;
        const at::Tensor scale = b.grad().to(at::kFloat).abs().max();
        EXPECT_LE((a.grad().to(at::kFloat) - b.grad().to(at::kFloat)).abs().max().item<double>(),
                  tol * scale.item<double>())
            << c10::toString(dtype);
    }
}

}  // namespace
}  // namespace qlora::model
