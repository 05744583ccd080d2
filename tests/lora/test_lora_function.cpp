// LoraLinearFunction against the plain composite (outputs and the gradients of x, A and B), a
// finite-difference check in float64, and the memory promise: no [out, in] tensor in the graph.
#include <gtest/gtest.h>
#include <malloc.h>

#include <tuple>

#include "lora/lora_function.h"
#include "lora_reference.h"
#include "support/test_support.h"

namespace qlora::lora {
namespace {

// Same math, different op order and rounding: fp32 agrees to float rounding of a sum over `in`;
// bf16 to a few bf16 ulps (2^-8) of the largest value.
constexpr double kFp32Atol = 1e-5, kFp32Rtol = 1e-4;
constexpr double kBf16Frac = 2e-2;
constexpr double kFiniteDiffRtol = 1e-6;  // central differences at h = 1e-6 in float64

struct Case {
    c10::ScalarType dtype;
    bool nf4;
    bool dropout;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
    const Case& c = info.param;
    return std::string(c.dtype == at::kFloat ? "fp32" : "bf16") + (c.nf4 ? "_nf4" : "_dense") +
           (c.dropout ? "_dropout" : "_nodrop");
}

class LoraVsComposite : public ::testing::TestWithParam<Case> {};

::testing::AssertionResult close(const at::Tensor& ref, const at::Tensor& got,
                                 c10::ScalarType dtype) {
    if (dtype == at::kFloat) return qlora::test::tensors_close(ref, got, kFp32Atol, kFp32Rtol);
    const double scale = ref.abs().max().item<double>();
    return qlora::test::tensors_close(ref, got, kBf16Frac * scale, kBf16Frac);
}

TEST_P(LoraVsComposite, ForwardAndGradientsMatch) {
    const Case c = GetParam();
    const int64_t in = 96, out = 80, r = 8;
    const double scale = 16.0 / r, keep = c.dropout ? 0.9 : 1.0;
    auto base = test::make_base(out, in, c.nf4, /*with_bias=*/true, c.dtype, 7);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    at::Tensor x0 = at::randn({2, 3, in}, gen, at::kFloat).to(c.dtype);
    // A and B both nonzero, so that every gradient term is exercised (B starts at zero in a model).
    at::Tensor a0 = at::randn({r, in}, gen, at::kFloat) * 0.1;
    at::Tensor b0 = at::randn({out, r}, gen, at::kFloat) * 0.1;
    at::Tensor g = at::randn({2, 3, out}, gen, at::kFloat).to(c.dtype);
    at::Tensor mask = c.dropout ? at::rand({2, 3, in}, gen) < keep : at::Tensor();

    auto run = [&](bool fused) {
        at::Tensor x = x0.clone().requires_grad_(true);
        at::Tensor a = a0.clone().requires_grad_(true), b = b0.clone().requires_grad_(true);
        at::Tensor y = fused ? lora_linear(x, base, a, b, scale, mask, keep)
                             : test::composite_lora(x, base->weight(c.dtype), base->bias, a, b,
                                                    scale, mask, keep);
        auto grads = torch::autograd::grad({y}, {x, a, b}, {g});
        return std::make_tuple(y.detach(), grads[0], grads[1], grads[2]);
    };
    auto [y_ref, dx_ref, da_ref, db_ref] = run(false);
    auto [y, dx, da, db] = run(true);
    EXPECT_EQ(y.scalar_type(), c.dtype);
    EXPECT_EQ(y.sizes(), y_ref.sizes());
    EXPECT_EQ(da.scalar_type(), at::kFloat);  // gradients come back in the parameters' dtype
    EXPECT_TRUE(close(y_ref, y, c.dtype)) << "y";
    EXPECT_TRUE(close(dx_ref, dx, c.dtype)) << "dx";
    EXPECT_TRUE(close(da_ref, da, c.dtype)) << "dA";
    EXPECT_TRUE(close(db_ref, db, c.dtype)) << "dB";
}

INSTANTIATE_TEST_SUITE_P(
    AllCases, LoraVsComposite,
    ::testing::Values(Case{at::kFloat, true, false}, Case{at::kFloat, true, true},
                      Case{at::kFloat, false, false}, Case{at::kFloat, false, true},
                      Case{at::kBFloat16, true, false}, Case{at::kBFloat16, true, true},
                      Case{at::kBFloat16, false, false}, Case{at::kBFloat16, false, true}),
    case_name);

TEST(LoraFunction, FiniteDifferencesOfAAndBInFloat64) {
    const int64_t in = 5, out = 4, r = 3;
    const double scale = 2.0, keep = 0.75;
    auto base = test::make_base(out, in, /*nf4=*/false, /*with_bias=*/true, at::kDouble, 3);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    at::Tensor x = at::randn({2, 3, in}, gen, at::kDouble);
    at::Tensor w_out = at::randn({2, 3, out}, gen, at::kDouble);  // L = sum(y ⊙ w_out)
    at::Tensor mask = at::rand({2, 3, in}, gen, at::kDouble) < keep;
    at::Tensor a = at::randn({r, in}, gen, at::kDouble).requires_grad_(true);
    at::Tensor b = at::randn({out, r}, gen, at::kDouble).requires_grad_(true);
    auto loss = [&](const at::Tensor& aa, const at::Tensor& bb) {
        return (lora_linear(x, base, aa, bb, scale, mask, keep) * w_out).sum();
    };
    auto grads = torch::autograd::grad({loss(a, b)}, {a, b});
    torch::NoGradGuard no_grad;
    const double h = 1e-6;
    for (int which = 0; which < 2; ++which) {
        const at::Tensor& p = which == 0 ? a : b;
        at::Tensor numeric = at::zeros_like(p);
        for (int64_t i = 0; i < p.numel(); ++i) {
            at::Tensor plus = p.detach().clone(), minus = p.detach().clone();
            plus.view(-1)[i] += h;
            minus.view(-1)[i] -= h;
            const double lp =
                which == 0 ? loss(plus, b).item<double>() : loss(a, plus).item<double>();
            const double lm =
                which == 0 ? loss(minus, b).item<double>() : loss(a, minus).item<double>();
            numeric.view(-1)[i] = (lp - lm) / (2 * h);
        }
        EXPECT_TRUE(qlora::test::tensors_close(numeric, grads[which], 1e-8, kFiniteDiffRtol))
            << (which == 0 ? "dA" : "dB");
    }
}

TEST(LoraFunction, FrozenProjectionWithoutAdapterIsTheBaseLinear) {
    auto base = test::make_base(48, 64, /*nf4=*/true, /*with_bias=*/false, at::kFloat, 1);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(2);
    at::Tensor x = at::randn({4, 64}, gen, at::kFloat).requires_grad_(true);
    at::Tensor w = base->weight(at::kFloat);
    at::Tensor y = lora_linear(x, base, at::Tensor(), at::Tensor(), 0.0);
    EXPECT_TRUE(
        qlora::test::tensors_close(at::linear(x, w).detach(), y.detach(), kFp32Atol, kFp32Rtol));
    at::Tensor g = at::randn({4, 48}, gen, at::kFloat);
    at::Tensor dx = torch::autograd::grad({y}, {x}, {g})[0];
    EXPECT_TRUE(qlora::test::tensors_close(g.mm(w), dx, kFp32Atol, kFp32Rtol));
}

// Every node reachable from y's grad_fn; saved tensors are visible for our own function.
TEST(LoraFunction, GraphHoldsNoTensorOfTheBaseWeightShape) {
    const int64_t in = 256, out = 192, r = 4;
    auto base = test::make_base(out, in, /*nf4=*/true, /*with_bias=*/true, at::kFloat, 9);
    at::Tensor x = at::randn({2, 8, in}).requires_grad_(true);
    at::Tensor xin = x * 1.0;  // a producer node, so that the walk also crosses an ordinary op
    at::Tensor a = at::randn({r, in}).requires_grad_(true),
               b = at::randn({out, r}).requires_grad_(true);
    at::Tensor mask = at::rand({2, 8, in}) < 0.9;
    at::Tensor y = lora_linear(xin, base, a, b, 2.0, mask, 0.9);

    auto* node = dynamic_cast<torch::autograd::CppNode<LoraLinearFunction>*>(y.grad_fn().get());
    ASSERT_NE(node, nullptr) << "y.grad_fn() is " << y.grad_fn()->name();
    auto saved = node->ctx_.get_saved_variables();
    ASSERT_EQ(saved.size(), 4u);  // x, A, B, mask
    for (const auto& t : saved) {
        if (t.defined()) {
            EXPECT_NE(t.numel(), out * in) << "a saved tensor of " << t.sizes();
        }
    }
    EXPECT_TRUE(saved[0].is_same(xin)) << "x is saved as is, not copied";
    // Between y and the leaves there is only our node (the producer of xin saves a scalar).
    std::vector<std::string> names;
    std::vector<torch::autograd::Node*> stack = {y.grad_fn().get()};
    while (!stack.empty()) {
        torch::autograd::Node* n = stack.back();
        stack.pop_back();
        names.push_back(n->name());
        for (const auto& e : n->next_edges()) {
            if (e.function) stack.push_back(e.function.get());
        }
    }
    for (const auto& n : names) {
        EXPECT_TRUE(n.find("LoraLinearFunction") != std::string::npos ||
                    n.find("AccumulateGrad") != std::string::npos ||
                    n.find("MulBackward") != std::string::npos)
            << "unexpected node " << n;
    }
}

// Heap bytes in use (all arenas, mmapped chunks included).
int64_t heap_in_use() {
    struct mallinfo2 mi = mallinfo2();
    return static_cast<int64_t>(mi.uordblks + mi.hblkhd);
}

TEST(LoraFunction, GraphRetainsAboutTheNf4BytesNotTheDenseWeight) {
    const int64_t in = 2048, out = 2048, r = 8;
    auto base = test::make_base(out, in, /*nf4=*/true, /*with_bias=*/false, at::kFloat, 4);
    at::Tensor x = at::randn({4, in}).requires_grad_(true);
    at::Tensor a = (at::randn({r, in}) * 0.01).requires_grad_(true),
               b = at::zeros({out, r}).requires_grad_(true);
    const int64_t dense_bytes = out * in * 4;  // 16 MiB

    auto retained = [&](bool fused) {
        const int64_t before = heap_in_use();
        at::Tensor y =
            fused ? lora_linear(x, base, a, b, 2.0)
                  : test::composite_lora(x, base->weight(at::kFloat), {}, a, b, 2.0, {}, 1.0);
        const int64_t held = heap_in_use() - before;  // the output plus whatever the graph saved
        y.sum().backward();
        return held;
    };
    retained(true);  // warm-up: thread pools and malloc arenas come into being outside the probe
    retained(false);
    const int64_t fused = retained(true), composite = retained(false);
    std::printf(
        "bytes retained after forward: fused %lld, composite %lld (dense W %lld, NF4 W %lld)\n",
        static_cast<long long>(fused), static_cast<long long>(composite),
        static_cast<long long>(dense_bytes), static_cast<long long>(base->nf4.nbytes()));
    EXPECT_GT(composite, dense_bytes) << "the probe must see a saved dense weight";
    EXPECT_LT(fused, dense_bytes / 8) << "the fused function must keep no dequantized weight";
}

}  // namespace
}  // namespace qlora::lora
