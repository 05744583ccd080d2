// QAT in the LoRA layer: the merge-aware forward equals a plain linear over Q(W0 + s·B·A) built by
// hand, its A/B/x gradients equal the hand-derived STE gradients, lora mode fake-quantizes only
// the base, int8 activations go through their STE, an inactive QAT layer is the plain LoRA layer,
// and the merge-aware graph keeps no [out, in] tensor.
#include <gtest/gtest.h>

#include "lora/lora_linear.h"
#include "lora/merge_aware_function.h"
#include "quant/fake_quant.h"
#include "quant/fake_quant_ref.h"
#include "support/test_support.h"

namespace qlora::lora {
namespace {

using qlora::test::tensors_close;

constexpr double kForwardAtol = 1e-6;                 // same weight, same matmul: rounding only
constexpr double kGradAtol = 1e-5, kGradRtol = 1e-5;  // float32 sums vs float64 hand values
constexpr int64_t kIn = 64, kOut = 48, kRank = 4;
constexpr double kAlpha = 2.0;  // scale s = alpha / r = 0.5

// Hand-picked values on coarse grids, so that W0 + s·B·A is exact in float32 whatever the op order:
// W0 in multiples of 1/8, A and B in {-1, -0.5, 0, 0.5, 1}.
at::Tensor grid(int64_t rows, int64_t cols, int64_t seed, double step, int64_t levels) {
    at::Tensor k = at::arange(rows * cols, at::kLong).view({rows, cols});
    return ((k * (2 * seed + 7) + seed) % (2 * levels + 1) - levels).to(at::kFloat) * step;
}

quant::QatScheme scheme(quant::FakeQuantWeight w) {
    quant::QatScheme s;
    s.weight = w;
    s.group_size = 32;
    return s;
}

// A LoraLinear over a dense base W0 (or its NF4 form) with the hand-picked A and B.
std::shared_ptr<LoraLinearImpl> make_layer(const at::Tensor& w0, bool nf4, double dropout = 0.0) {
    model::LinearImpl base(kIn, kOut, /*has_bias=*/false, "test.q_proj");
    if (nf4) {
        base.set_quantized(quant::Quant4Tensor::quantize(w0, quant::Quant4Options{}, "test"));
    } else {
        base.set_weight(w0);
    }
    LoraOptions o;
    o.r = kRank;
    o.alpha = kAlpha;
    o.dropout = dropout;
    auto layer = std::make_shared<LoraLinearImpl>(base, o, /*with_adapter=*/true);
    at::NoGradGuard no_grad;
    layer->lora_A.copy_(grid(kRank, kIn, 1, 0.5, 2));
    layer->lora_B.copy_(grid(kOut, kRank, 2, 0.5, 2));
    return layer;
}

// Q(M) and its STE mask by the scalar reference, for M [out, in] float32.
std::pair<at::Tensor, at::Tensor> reference_q(const at::Tensor& m, quant::FakeQuantWeight w) {
    at::Tensor c = m.contiguous();
    at::Tensor out = at::empty_like(c);
    at::Tensor ok = at::empty(c.sizes(), at::kByte);
    if (w == quant::FakeQuantWeight::kInt4) {
        quant::fake_quant_int4_ref(c.data_ptr<float>(), kOut, kIn, 32, out.data_ptr<float>(),
                                   ok.data_ptr<uint8_t>());
    } else {
        quant::fake_quant_int8_ref(c.data_ptr<float>(), kOut, kIn, out.data_ptr<float>(),
                                   ok.data_ptr<uint8_t>());
    }
    return {out, ok.to(at::kBool)};
}

struct Inputs {
    at::Tensor x, g;  // [2, 5, in], [2, 5, out]
};

Inputs inputs(int64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return {at::randn({2, 5, kIn}, gen), at::randn({2, 5, kOut}, gen)};
}

TEST(MergeAwareQat, ForwardAndGradientsEqualTheHandDerivedSte) {
    for (auto w : {quant::FakeQuantWeight::kInt4, quant::FakeQuantWeight::kInt8}) {
        SCOPED_TRACE(quant::fake_quant_weight_name(w));
        const at::Tensor w0 = grid(kOut, kIn, 3, 0.125, 8);
        auto layer = make_layer(w0, /*nf4=*/false);
        layer->set_qat({scheme(w), false, QatMode::kMergeAware});
        layer->set_qat_active(true);
        const at::Tensor a = layer->lora_A.detach(), b = layer->lora_B.detach();
        const double s = layer->scale();

        const at::Tensor m = w0 + s * b.mm(a);  // exact on these grids
        auto [wq, mask] = reference_q(m, w);
        if (w == quant::FakeQuantWeight::kInt4) {
            ASSERT_GT((~mask).sum().item<int64_t>(), 0) << "the case must clip some elements";
        }
        Inputs in = inputs(5);
        at::Tensor x = in.x.clone().requires_grad_(true);
        at::Tensor y = layer->forward(x);
        EXPECT_TRUE(tensors_close(at::linear(in.x, wq), y.detach(), kForwardAtol, 0))
            << "y = x·Q(W0 + s·B·A)ᵀ";

        auto grads = torch::autograd::grad({y}, {x, layer->lora_A, layer->lora_B}, {in.g});
        // dM = K ⊙ (Gᵀ·X), dA = s·Bᵀ·dM, dB = s·dM·Aᵀ, dX = G·Q(M), all in float64.
        at::Tensor g2 = in.g.reshape({-1, kOut}).to(at::kDouble),
                   x2 = in.x.reshape({-1, kIn}).to(at::kDouble);
        at::Tensor dm = g2.t().mm(x2) * mask.to(at::kDouble);
        EXPECT_TRUE(tensors_close(s * b.to(at::kDouble).t().mm(dm), grads[1], kGradAtol, kGradRtol))
            << "dA";
        EXPECT_TRUE(tensors_close(s * dm.mm(a.to(at::kDouble).t()), grads[2], kGradAtol, kGradRtol))
            << "dB";
        EXPECT_TRUE(tensors_close(g2.mm(wq.to(at::kDouble)).view(x.sizes()), grads[0], kGradAtol,
                                  kGradRtol))
            << "dX";

        // The same gradients through the generic STE function on the merged weight (autograd).
        at::Tensor a2 = a.clone().requires_grad_(true), b2 = b.clone().requires_grad_(true);
        at::Tensor y2 =
            at::linear(in.x, quant::fake_quant_weight_ste(w0 + s * b2.mm(a2), scheme(w)));
        auto g_ste = torch::autograd::grad({y2}, {a2, b2}, {in.g});
        EXPECT_TRUE(tensors_close(g_ste[0], grads[1], kGradAtol, kGradRtol));
        EXPECT_TRUE(tensors_close(g_ste[1], grads[2], kGradAtol, kGradRtol));
    }
}

// NF4 over an NF4 base: the forward multiplies by deq(NF4(deq(W0) + s·B·A)), the hf-nf4 export's
// weight.
TEST(MergeAwareQat, Nf4OverAnNf4BaseIsTheRequantizedMergedWeight) {
    const at::Tensor w0 = grid(kOut, kIn, 3, 0.125, 8);
    auto layer = make_layer(w0, /*nf4=*/true);
    quant::QatScheme q = scheme(quant::FakeQuantWeight::kNF4);
    layer->set_qat({q, false, QatMode::kMergeAware});
    layer->set_qat_active(true);
    const at::Tensor deq = layer->quant4_weight().dequantize(at::kFloat);
    const at::Tensor m =
        at::addmm(deq, layer->lora_B.detach(), layer->lora_A.detach(), 1, layer->scale());
    const at::Tensor wq = quant::Quant4Tensor::quantize(m, q.nf4).dequantize(at::kFloat);
    EXPECT_TRUE(qlora::test::tensors_identical(
        wq, merge_aware_weight(deq, layer->lora_A.detach(), layer->lora_B.detach(), layer->scale(),
                               q)));
    Inputs in = inputs(6);
    EXPECT_TRUE(
        tensors_close(at::linear(in.x, wq), layer->forward(in.x).detach(), kForwardAtol, 0));
}

// lora mode: y = x·Q(W0)ᵀ + s·(x·Aᵀ)·Bᵀ; A and B get the ordinary LoRA gradients.
TEST(LoraModeQat, OnlyTheBaseIsFakeQuantized) {
    const at::Tensor w0 = grid(kOut, kIn, 3, 0.125, 8);
    auto layer = make_layer(w0, /*nf4=*/false);
    layer->set_qat({scheme(quant::FakeQuantWeight::kInt4), false, QatMode::kLora});
    layer->set_qat_active(true);
    const at::Tensor a = layer->lora_A.detach(), b = layer->lora_B.detach();
    const double s = layer->scale();
    const at::Tensor wq = reference_q(w0, quant::FakeQuantWeight::kInt4).first;
    Inputs in = inputs(7);
    at::Tensor x = in.x.clone().requires_grad_(true);
    at::Tensor y = layer->forward(x);
    EXPECT_TRUE(tensors_close(at::linear(in.x, wq) + s * at::linear(at::linear(in.x, a), b),
                              y.detach(), 1e-5, 1e-5));
    auto grads = torch::autograd::grad({y}, {x, layer->lora_A, layer->lora_B}, {in.g});
    at::Tensor g2 = in.g.reshape({-1, kOut}), x2 = in.x.reshape({-1, kIn});
    EXPECT_TRUE(tensors_close(s * g2.mm(b).t().mm(x2), grads[1], kGradAtol, kGradRtol)) << "dA";
    EXPECT_TRUE(tensors_close(s * g2.t().mm(x2.mm(a.t())), grads[2], kGradAtol, kGradRtol)) << "dB";
    EXPECT_TRUE(tensors_close((g2.mm(wq) + s * g2.mm(b).mm(a)).view(x.sizes()), grads[0], kGradAtol,
                              kGradRtol));
}

// int8 activations: the layer sees Qa(x) per token and dX is masked by Qa's STE.
TEST(MergeAwareQat, Int8ActivationsGoThroughTheirSte) {
    const at::Tensor w0 = grid(kOut, kIn, 3, 0.125, 8);
    auto layer = make_layer(w0, /*nf4=*/false);
    layer->set_qat({scheme(quant::FakeQuantWeight::kInt8), true, QatMode::kMergeAware});
    layer->set_qat_active(true);
    const double s = layer->scale();
    const at::Tensor wq = reference_q(w0 + s * layer->lora_B.detach().mm(layer->lora_A.detach()),
                                      quant::FakeQuantWeight::kInt8)
                              .first;
    Inputs in = inputs(8);
    in.x[0][0].zero_();  // a token whose range end clips: d = 1, z = 0, +127.5 needs code 128
    in.x[0][0][0] = -127.5f;
    in.x[0][0][1] = 127.5f;
    quant::FakeQuantized qa = quant::fake_quantize_activation(in.x);
    ASSERT_FALSE(qa.mask[0][0][1].item<bool>());
    at::Tensor x = in.x.clone().requires_grad_(true);
    at::Tensor y = layer->forward(x);
    EXPECT_TRUE(tensors_close(at::linear(qa.value, wq), y.detach(), kForwardAtol, 0));
    at::Tensor dx = torch::autograd::grad({y}, {x}, {in.g})[0];
    EXPECT_TRUE(tensors_close(in.g.matmul(wq) * qa.mask.to(at::kFloat), dx, kGradAtol, kGradRtol));
}

// Configured but inactive (before qat.start_step) is the plain LoRA layer, bit for bit.
TEST(MergeAwareQat, InactiveQatIsThePlainLayer) {
    const at::Tensor w0 = grid(kOut, kIn, 3, 0.125, 8);
    auto plain = make_layer(w0, /*nf4=*/true);
    auto qat = make_layer(w0, /*nf4=*/true);
    qat->set_qat({scheme(quant::FakeQuantWeight::kNF4), true, QatMode::kMergeAware});
    Inputs in = inputs(9);
    EXPECT_TRUE(qlora::test::tensors_identical(plain->forward(in.x), qat->forward(in.x)));
    qat->set_qat_active(true);
    EXPECT_FALSE(at::equal(plain->forward(in.x), qat->forward(in.x)));
}

TEST(MergeAwareQat, GraphSavesNoMergedWeight) {
    auto layer = make_layer(grid(kOut, kIn, 3, 0.125, 8), /*nf4=*/true);
    layer->set_qat({scheme(quant::FakeQuantWeight::kNF4), false, QatMode::kMergeAware});
    layer->set_qat_active(true);
    at::Tensor x = inputs(10).x.requires_grad_(true);
    at::Tensor y = layer->forward(x);
    auto* node =
        dynamic_cast<torch::autograd::CppNode<MergeAwareLinearFunction>*>(y.grad_fn().get());
    ASSERT_NE(node, nullptr) << "y.grad_fn() is " << y.grad_fn()->name();
    auto saved = node->ctx_.get_saved_variables();
    ASSERT_EQ(saved.size(), 3u);  // x, A, B
    for (const auto& t : saved)
        EXPECT_NE(t.numel(), kOut * kIn) << "a saved tensor of " << t.sizes();
}

TEST(MergeAwareQat, RefusesLoraDropout) {
    auto layer = make_layer(grid(kOut, kIn, 3, 0.125, 8), /*nf4=*/false, /*dropout=*/0.1);
    EXPECT_EQ(
        qlora::test::error_of([&] {
            layer->set_qat({scheme(quant::FakeQuantWeight::kInt4), false, QatMode::kMergeAware});
        }),
        "test.q_proj: merge-aware QAT trains through the merged weight, where LoRA dropout has no "
        "input "
        "path; expected lora dropout 0, found 0.1");
    layer->set_qat(
        {scheme(quant::FakeQuantWeight::kInt4), false, QatMode::kLora});  // fine in lora mode
}

}  // namespace
}  // namespace qlora::lora
