// Fake quantizers against hand-computed values (exact where the arithmetic is exact), against their
// scalar references bit for bit, and their straight-through gradients.
#include <gtest/gtest.h>

#include <vector>

#include "quant/dynamic_map.h"
#include "quant/fake_quant.h"
#include "quant/fake_quant_ref.h"
#include "quant/quant4_ops.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using qlora::test::tensors_close;
using qlora::test::tensors_identical;

QatScheme scheme_of(FakeQuantWeight w) {
    QatScheme s;
    s.weight = w;
    return s;
}

// One row of `n` values: `head` first, zeros after.
at::Tensor row(std::vector<float> head, int64_t n) {
    head.resize(static_cast<size_t>(n), 0.0f);
    return at::tensor(head, at::kFloat).view({1, n});
}

// Equal values (-0 == 0), first mismatches printed; `expected` must not be all zero.
::testing::AssertionResult values_equal(const at::Tensor& expected, const at::Tensor& actual) {
    return tensors_close(expected, actual, 0.0, 0.0);
}

// Q4_0 with d = 1 (the group's largest magnitude is -8): code = min(15, trunc(w + 8.5)), so .5
// rounds up, and values that would need code 16 (w >= 7.5) clip to 7 with no gradient.
TEST(FakeQuantInt4, HandComputedGroupWithUnitScale) {
    at::Tensor w = row({-8.0f, 7.0f, 3.4f, -2.6f, 0.5f, -0.5f, 1.5f, 2.5f, 7.4f, 7.6f}, 32);
    FakeQuantized q = fake_quantize_weight_masked(w, QatScheme::int4(32));
    at::Tensor expect = row({-8.0f, 7.0f, 3.0f, -3.0f, 1.0f, 0.0f, 2.0f, 3.0f, 7.0f, 7.0f}, 32);
    EXPECT_TRUE(values_equal(expect, q.value));
    at::Tensor in_range = at::ones({1, 32}, at::kBool);
    in_range[0][9] = false;  // 7.6: trunc(16.1) = 16 was clamped to 15
    EXPECT_TRUE(tensors_identical(in_range, q.mask));
}

// A positive largest magnitude flips the scale (d = -1): +8 is exact, -7.6 clips to -7.
TEST(FakeQuantInt4, PositiveMaximumFlipsTheClippedSide) {
    FakeQuantized q =
        fake_quantize_weight_masked(row({8.0f, -7.6f, -7.4f, 0.5f}, 32), QatScheme::int4(32));
    EXPECT_TRUE(values_equal(row({8.0f, -7.0f, -7.0f, 0.0f}, 32), q.value));
    // 0.5: 0.5·(1/d) + 8.5 = 8 -> code 8 -> 0 (the half goes toward -d's side)
    EXPECT_FALSE(q.mask[0][1].item<bool>());
    EXPECT_TRUE(q.mask[0][2].item<bool>());
}

// The scale is stored in fp16 as Q4_0 does: d = -0.1/8 = -0.0125 -> fp16 -0.012496948242
// (1638/1024·2^-7).
TEST(FakeQuantInt4, ScaleIsRoundedToHalf) {
    FakeQuantized q = fake_quantize_weight_masked(row({0.1f}, 32), QatScheme::int4(32));
    const float d16 = 1638.0f / 1024.0f / 128.0f;
    EXPECT_EQ(q.value[0][0].item<float>(), 8.0f * d16);
    EXPECT_NE(q.value[0][0].item<float>(), 0.1f);
}

// Groups end at multiples of group_size inside each row; the last group of a row may be short, and
// rows never share a group. An all-zero group is exactly zero and in range.
TEST(FakeQuantInt4, GroupBoundariesTailAndZeroGroups) {
    // row 0: [group 0: max 8 | group 1 (tail, 8 wide): max 0.5]; row 1: zeros | small values
    at::Tensor w = at::zeros({2, 40});
    w[0][0] = 8.0f;
    w[0][31] = -3.0f;  // last element of group 0: d = -1 -> -3
    w[0][32] = 0.5f;   // first of the tail: d = -0.0625 -> 0.5
    w[0][39] = 0.3f;   // 0.3·(-16) + 8.5 = 3.7 -> code 3 -> (3 - 8)·(-0.0625) = 0.3125
    w[1][35] = -0.25f;
    FakeQuantized q = fake_quantize_weight_masked(w, QatScheme::int4(32));
    at::Tensor expect = at::zeros({2, 40});
    expect[0][0] = 8.0f;
    expect[0][31] = -3.0f;
    expect[0][32] = 0.5f;
    expect[0][39] = 0.3125f;
    expect[1][35] = -0.25f;
    EXPECT_TRUE(values_equal(expect, q.value));
    EXPECT_TRUE(q.mask.all().item<bool>());
    // in one group of 64 the 40 values share d = -1: the small tail values round to 0
    FakeQuantized wide = fake_quantize_weight_masked(w, QatScheme::int4(64));
    expect[0][32] = 0.0f;
    expect[0][39] = 0.0f;
    EXPECT_TRUE(values_equal(expect, wide.value));
}

TEST(FakeQuantInt8, HandComputedPerChannel) {
    at::Tensor w = at::zeros({3, 5});
    w[0] = at::tensor({127.0f, 63.4f, -0.5f, 0.5f, 1.5f});  // d = 1, round half to even
    w[2] = at::tensor({-2.54f, 1.0f, 0.0f, 0.0f, 0.0f});    // d = 2.54/127
    FakeQuantized q = fake_quantize_weight_masked(w, scheme_of(FakeQuantWeight::kInt8));
    EXPECT_FALSE(q.mask.defined()) << "int8 symmetric clips nothing";
    EXPECT_TRUE(values_equal(at::tensor({127.0f, 63.0f, 0.0f, 0.0f, 2.0f}), q.value[0]));
    EXPECT_TRUE(at::equal(at::zeros({5}), q.value[1])) << "an all-zero row stays zero";
    const float d = 2.54f / 127.0f;
    EXPECT_EQ(q.value[2][0].item<float>(), -127.0f * d);
    EXPECT_EQ(q.value[2][1].item<float>(), std::nearbyint(1.0f / d) * d);
    EXPECT_NEAR(q.value[2][1].item<float>(), 1.0f, 1e-6);
}

// Per token: d = (hi - lo)/255 with 0 inside [lo, hi], z = -128 - round(lo/d).
TEST(FakeQuantActivation, HandComputedRowsIncludingConstantOnes) {
    at::Tensor x = at::tensor({0.0f, 2.55f, 1.0f,      //
                               -127.5f, 127.5f, 0.0f,  // d = 1, z = -128 - round(-127.5) = 0
                               3.0f, 3.0f, 3.0f,       // constant > 0: range [0, 3]
                               -2.0f, -2.0f, -2.0f,    // constant < 0: range [-2, 0]
                               0.0f, 0.0f, 0.0f})      // all zero: d = FLT_EPSILON
                       .view({5, 3});
    FakeQuantized q = fake_quantize_activation(x);
    const float d0 = 2.55f / 255.0f;  // z = -128
    EXPECT_EQ(q.value[0][0].item<float>(), 0.0f);
    EXPECT_EQ(q.value[0][1].item<float>(), 255.0f * d0);
    EXPECT_EQ(q.value[0][2].item<float>(), std::nearbyint(1.0f / d0) * d0);
    // -127.5 rounds (half to even) to code -128; +127.5 would need code 128: clamped to 127
    EXPECT_TRUE(values_equal(at::tensor({-128.0f, 127.0f, 0.0f}), q.value[1]));
    EXPECT_FALSE(q.mask[1][1].item<bool>());
    EXPECT_TRUE(q.mask[1][0].item<bool>());
    EXPECT_TRUE(tensors_close(at::full({3}, 3.0f), q.value[2], 1e-6, 0));
    EXPECT_TRUE(tensors_close(at::full({3}, -2.0f), q.value[3], 1e-6, 0));
    EXPECT_TRUE(at::equal(at::zeros({3}), q.value[4]));
    EXPECT_EQ(q.mask.sum().item<int64_t>(), 14);
}

// Random weights and activations of awkward shapes: tensor ops == scalar reference, bit for bit.
TEST(FakeQuantReference, TensorOpsMatchTheScalarTruth) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(11);
    at::Tensor w = at::randn({5, 172}, gen) * 0.05;
    w[3].zero_();
    std::vector<float> out(w.numel());
    std::vector<uint8_t> ok(w.numel());
    auto as_tensor = [&](const std::vector<float>& v) { return at::tensor(v).view(w.sizes()); };
    auto as_mask = [&](const std::vector<uint8_t>& v) {
        return at::tensor(std::vector<int64_t>(v.begin(), v.end())).view(w.sizes()).to(at::kBool);
    };
    for (int64_t g : {32, 64, 128, 256}) {
        fake_quant_int4_ref(w.data_ptr<float>(), 5, 172, g, out.data(), ok.data());
        FakeQuantized q = fake_quantize_weight_masked(w, QatScheme::int4(g));
        EXPECT_TRUE(tensors_identical(as_tensor(out), q.value)) << "int4 group " << g;
        EXPECT_TRUE(tensors_identical(as_mask(ok), q.mask)) << "int4 group " << g;
    }
    fake_quant_int8_ref(w.data_ptr<float>(), 5, 172, out.data(), ok.data());
    EXPECT_TRUE(tensors_identical(as_tensor(out),
                                  fake_quantize_weight(w, scheme_of(FakeQuantWeight::kInt8))));
    EXPECT_TRUE(at::tensor(std::vector<int64_t>(ok.begin(), ok.end())).all().item<bool>());

    at::Tensor x = at::randn({5, 172}, gen) + 0.3;
    fake_quant_act_int8_ref(x.data_ptr<float>(), 5, 172, out.data(), ok.data());
    FakeQuantized a = fake_quantize_activation(x);
    EXPECT_TRUE(tensors_identical(as_tensor(out), a.value));
    EXPECT_TRUE(tensors_identical(as_mask(ok), a.mask));
}

// Fake NF4 is deq(quantize_4bit(W)) exactly (what Quant4Tensor stores); the scalar reference agrees
// up to the double-quant offset (a float64 mean there, at::mean here: at most an ulp of absmax).
TEST(FakeQuantNf4, EqualsTheNf4RoundTripAndTheReference) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(5);
    at::Tensor w = at::randn({64, 172}, gen) * 0.02;
    for (bool dq : {false, true}) {
        QatScheme s = scheme_of(FakeQuantWeight::kNF4);
        s.nf4.double_quant = dq;
        s.nf4.blocksize = 64;
        at::Tensor q = fake_quantize_weight(w, s);
        EXPECT_TRUE(tensors_identical(Quant4Tensor::quantize(w, s.nf4).dequantize(at::kFloat), q));
        std::vector<float> out(w.numel());
        at::Tensor map = dynamic_map(/*is_signed=*/true);
        fake_quant_nf4_ref(w.data_ptr<float>(), w.numel(), 64, dq, codebook(bnb::QuantType::kNF4),
                           map.data_ptr<float>(), out.data());
        EXPECT_TRUE(tensors_close(at::tensor(out).view(w.sizes()), q, 1e-7, 1e-6))
            << "double quant " << dq;
    }
}

// Values already on the NF4 grid of a block (absmax 2, no double quant) come back unchanged.
TEST(FakeQuantNf4, GridValuesAreFixedPoints) {
    const bnb::Codebook& cb = codebook(bnb::QuantType::kNF4);
    std::vector<float> v(64);
    for (size_t i = 0; i < v.size(); ++i) v[i] = 2.0f * cb.values[i % 16];
    at::Tensor w = at::tensor(v).view({2, 32});
    QatScheme s = scheme_of(FakeQuantWeight::kNF4);
    s.nf4.double_quant = false;
    EXPECT_TRUE(tensors_identical(w, fake_quantize_weight(w, s)));
}

// STE: dL/dw = dL/dQ inside the clipping range, 0 outside; scales are constants.
TEST(FakeQuantSte, GradientPassesInsideAndStopsOutside) {
    at::Tensor w = row({-8.0f, 7.6f, 3.4f}, 32).requires_grad_(true);
    at::Tensor g = at::arange(32, at::kFloat).view({1, 32}) + 1.0;
    at::Tensor y = fake_quant_weight_ste(w, QatScheme::int4(32));
    EXPECT_TRUE(
        tensors_identical(fake_quantize_weight(w.detach(), QatScheme::int4(32)), y.detach()));
    at::Tensor dw = torch::autograd::grad({y}, {w}, {g})[0];
    at::Tensor expect = g.clone();
    expect[0][1] = 0.0f;  // 7.6 was clipped
    EXPECT_TRUE(tensors_identical(expect, dw));

    for (FakeQuantWeight k : {FakeQuantWeight::kInt8, FakeQuantWeight::kNF4}) {
        at::Tensor w2 = (at::randn({4, 64}) * 0.1).requires_grad_(true);
        at::Tensor g2 = at::randn({4, 64});
        at::Tensor d2 =
            torch::autograd::grad({fake_quant_weight_ste(w2, scheme_of(k))}, {w2}, {g2})[0];
        EXPECT_TRUE(tensors_identical(g2, d2)) << fake_quant_weight_name(k) << " clips nothing";
    }

    at::Tensor x = at::tensor({-127.5f, 127.5f, 0.5f, 0.0f}).view({2, 2}).requires_grad_(true);
    at::Tensor gx = at::full({2, 2}, 3.0f);
    at::Tensor dx = torch::autograd::grad({fake_quant_activation_ste(x)}, {x}, {gx})[0];
    EXPECT_TRUE(tensors_identical(at::tensor({3.0f, 0.0f, 3.0f, 3.0f}).view({2, 2}), dx));
}

// bf16 weights are quantized in float32 and the STE output comes back in bf16.
TEST(FakeQuantSte, KeepsTheInputDtype) {
    at::Tensor w = (at::randn({8, 64}) * 0.1).to(at::kBFloat16).requires_grad_(true);
    at::Tensor y = fake_quant_weight_ste(w, QatScheme::int4(32));
    EXPECT_EQ(y.scalar_type(), at::kBFloat16);
    EXPECT_TRUE(tensors_identical(
        fake_quantize_weight(w.detach(), QatScheme::int4(32)).to(at::kBFloat16), y.detach()));
    EXPECT_EQ(fake_quant_activation_ste(w).scalar_type(), at::kBFloat16);
}

TEST(FakeQuantScheme, ParsesAndValidates) {
    EXPECT_EQ(parse_fake_quant_weight("int4"), FakeQuantWeight::kInt4);
    EXPECT_EQ(parse_fake_quant_weight("nf4"), FakeQuantWeight::kNF4);
    EXPECT_EQ(qlora::test::error_of([] { parse_fake_quant_weight("int3"); }),
              "fake-quant weight scheme must be one of int4, nf4, int8, got 'int3'");
    EXPECT_EQ(qlora::test::error_of([] { validate(QatScheme::int4(48)); }),
              "qat: int4 group_size must be a power of two in [32, 256], got 48");
}

}  // namespace
}  // namespace qlora::quant
