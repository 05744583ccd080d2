// RMSNorm: the fused CPU inference kernel (kernels/rms_norm_cpu.h) against its reference twin and
// against the composite ATen form the module runs under autograd, within the stated bound.
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

// The module: inside a FusedInferenceScope, no grad and contiguous float32 on the CPU take the
// kernel; otherwise (autograd, or no scope: a checkpointed training forward) the composite form;
// both agree within the bound, and zero rows stay zero (eps > 0).
TEST(RmsNorm, InferencePathAgreesWithTheAutogradPath) {
    torch::manual_seed(4);
    RMSNorm norm(300, 1e-6);
    norm->weight.copy_(at::randn({300}));
    at::Tensor x = at::randn({2, 5, 300}) * 40.0;
    x[1][2].zero_();
    const at::Tensor composite = norm(x);  // grad mode on: the ATen ops
    at::Tensor fused;
    {
        torch::NoGradGuard no_grad;
        EXPECT_TRUE(at::equal(norm(x), composite));  // no scope: the composite form
        FusedInferenceScope scope;
        fused = norm(x);
        // a strided view falls back to the composite form, bit for bit
        EXPECT_TRUE(at::equal(norm(x.transpose(0, 1)), composite.transpose(0, 1)));
    }
    EXPECT_TRUE(within_bound(fused.view({-1, 300}), composite.view({-1, 300}), 300));
    EXPECT_TRUE(at::equal(fused[1][2], at::zeros({300})));
    EXPECT_FALSE(at::equal(fused, composite));  // the kernel ran (its sums differ in order)
    EXPECT_FALSE(FusedInferenceScope::active());
}

}  // namespace
}  // namespace qlora::model
