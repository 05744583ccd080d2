// Global-norm clipping: the pre-clip norm, torch's coefficient, no-op below the limit, and
// non-finite norms returned untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "optim/grad_clip.h"
#include "support/test_support.h"

namespace qlora::optim {
namespace {

std::vector<at::Tensor> params_with_grads(std::vector<at::Tensor> grads) {
    std::vector<at::Tensor> params;
    for (auto& g : grads) {
        at::Tensor p = at::zeros_like(g).requires_grad_(true);
        p.mutable_grad() = g;
        params.push_back(p);
    }
    return params;
}

TEST(GradClip, ReturnsPreClipNormAndScales) {
    // |(3, 4)| = 5 and |(12)| = 12 -> global sqrt(25 + 144) = 13.
    auto params = params_with_grads({at::tensor({3.0f, 4.0f}), at::tensor({12.0f})});
    params.push_back(at::zeros({3}).requires_grad_(true));  // no grad: skipped
    const double norm = clip_grad_norm(params, 1.0);
    EXPECT_DOUBLE_EQ(norm, 13.0);
    const double coef = 1.0 / (13.0 + 1e-6);
    EXPECT_NEAR(params[0].grad()[0].item<double>(), 3.0 * coef, 1e-7);
    EXPECT_NEAR(params[1].grad()[0].item<double>(), 12.0 * coef, 1e-7);
    EXPECT_NEAR(clip_grad_norm(params, 0.0), 1.0, 1e-6);  // measured again: now ~1
}

TEST(GradClip, BelowLimitLeavesGradsAlone) {
    auto params = params_with_grads({at::tensor({0.3f, 0.4f})});
    EXPECT_NEAR(clip_grad_norm(params, 1.0), 0.5, 1e-7);
    EXPECT_TRUE(qlora::test::tensors_identical(at::tensor({0.3f, 0.4f}), params[0].grad()));
}

TEST(GradClip, NonFiniteNormIsReturnedUntouched) {
    const float inf = std::numeric_limits<float>::infinity();
    auto params = params_with_grads({at::tensor({1.0f, inf}), at::tensor({2.0f})});
    EXPECT_TRUE(std::isinf(clip_grad_norm(params, 1.0)));
    EXPECT_EQ(params[1].grad()[0].item<float>(), 2.0f);
    auto nan_params = params_with_grads({at::tensor({std::nanf(""), 1.0f})});
    EXPECT_TRUE(std::isnan(clip_grad_norm(nan_params, 1.0)));
}

}  // namespace
}  // namespace qlora::optim
