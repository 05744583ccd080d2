// The hf-int4 layout: a hand-packed group, unpack(pack(w)) == fake_quantize_weight(w, int4) bit for
// bit over group sizes, tails, odd widths, zero groups and fp16-subnormal scales, and the errors of
// malformed tensors and configs.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "quant/fake_quant.h"
#include "quant/int4_format.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using qlora::test::error_of;
using qlora::test::tensors_identical;

at::Tensor round_trip(const at::Tensor& w, int64_t group) {
    Int4Packed q = pack_int4(w, group);
    return unpack_int4(q.qweight, q.scales, w.size(1), group);
}

// Rows of mixed magnitudes (1e-7 .. 10: fp16-subnormal and rounded scales), exact ties of the
// largest magnitude with both signs, and all-zero groups.
at::Tensor awkward_weight(int64_t rows, int64_t cols, int64_t group, uint64_t seed) {
    at::Generator gen = at::detail::createCPUGenerator(seed);
    at::Tensor w = at::randn({rows, cols}, gen, at::kFloat);
    at::Tensor mag = at::pow(10.0, at::rand({rows, 1}, gen, at::kFloat) * 8.0 - 7.0);
    w = w * mag;
    if (rows > 1) w[1].zero_();  // all-zero row
    if (cols > group)
        w[0].narrow(0, group, std::min(group, cols - group)).zero_();  // one zero group
    if (rows > 2 && cols >= 4) {
        w[2].narrow(0, 0, std::min(group, cols)).clamp_(-0.5, 0.5);
        w[2][0] = 0.75f;  // a tie of magnitude: the first (positive) one sets the scale
        w[2][3] = -0.75f;
    }
    return w;
}

TEST(Int4Format, HandComputedGroup) {
    // m = -8, d = 1: code = trunc(w + 8.5), 7.6 clamps to 15, zeros code 8.
    std::vector<float> head = {-8.0f, 7.0f, 3.4f, -2.6f, 0.5f, -0.5f, 1.5f, 2.5f, 7.4f, 7.6f};
    head.resize(32, 0.0f);
    at::Tensor w = at::tensor(head, at::kFloat).view({1, 32});
    Int4Packed codes = int4_codes(w, 32);
    std::vector<uint8_t> expect_codes = {0, 15, 11, 5, 9, 8, 10, 11, 15, 15};
    expect_codes.resize(32, 8);
    EXPECT_TRUE(
        tensors_identical(at::tensor(expect_codes, at::kByte).view({1, 32}), codes.qweight));

    Int4Packed q = pack_int4(w, 32);
    std::vector<uint8_t> bytes = {0xF0, 0x5B, 0x89, 0xBA, 0xFF};  // element 2j low, 2j+1 high
    bytes.resize(16, 0x88);
    EXPECT_TRUE(tensors_identical(at::tensor(bytes, at::kByte).view({1, 16}), q.qweight));
    EXPECT_TRUE(tensors_identical(at::ones({1, 1}, at::kHalf), q.scales));

    std::vector<float> value = {-8.0f, 7.0f, 3.0f, -3.0f, 1.0f, 0.0f, 2.0f, 3.0f, 7.0f, 7.0f};
    value.resize(32, 0.0f);
    EXPECT_TRUE(tensors_identical(at::tensor(value, at::kFloat).view({1, 32}),
                                  unpack_int4(q.qweight, q.scales, 32, 32)));
}

TEST(Int4Format, OddWidthLeavesTheLastHighNibbleZero) {
    at::Tensor w = at::tensor({1.0f, -2.0f, 4.0f}, at::kFloat).view({1, 3});  // m = 4, d = -0.5
    Int4Packed q = pack_int4(w, 32);
    ASSERT_EQ(q.qweight.sizes(), (std::vector<int64_t>{1, 2}));
    ASSERT_EQ(q.scales.sizes(), (std::vector<int64_t>{1, 1}));
    // codes trunc(-2w + 8.5): 6, 12, 0
    EXPECT_TRUE(tensors_identical(
        at::tensor({uint8_t(6 | 12 << 4), uint8_t(0)}, at::kByte).view({1, 2}), q.qweight));
    EXPECT_TRUE(
        tensors_identical(at::tensor({-0.5f}, at::kFloat).to(at::kHalf).view({1, 1}), q.scales));
    EXPECT_TRUE(tensors_identical(fake_quantize_weight(w, QatScheme::int4(32)),
                                  unpack_int4(q.qweight, q.scales, 3, 32)));
}

TEST(Int4Format, RoundTripEqualsFakeQuantBitForBit) {
    uint64_t seed = 1;
    for (int64_t group : {32, 64, 128, 256}) {
        for (int64_t cols :
             std::vector<int64_t>{group, 3 * group, group + 1, 2 * group + 37, 301, 77, 33}) {
            at::Tensor w = awkward_weight(5, cols, group, seed++);
            at::Tensor expect = fake_quantize_weight(w, QatScheme::int4(group));
            EXPECT_TRUE(tensors_identical(expect, round_trip(w, group)))
                << "group " << group << ", in " << cols;
            Int4Packed q = pack_int4(w, group);
            EXPECT_EQ(q.qweight.size(1), (cols + 1) / 2);
            EXPECT_EQ(q.scales.size(1), (cols + group - 1) / group);
        }
    }
}

TEST(Int4Format, HalfAndBfloat16InputsAndAllZeroWeights) {
    at::Tensor w = awkward_weight(4, 200, 64, 99);
    for (auto dtype : {at::kHalf, at::kBFloat16}) {
        at::Tensor wd = w.to(dtype);
        EXPECT_TRUE(
            tensors_identical(fake_quantize_weight(wd, QatScheme::int4(64)), round_trip(wd, 64)));
    }
    at::Tensor zeros = at::zeros({3, 70});
    EXPECT_TRUE(
        tensors_identical(fake_quantize_weight(zeros, QatScheme::int4(32)), round_trip(zeros, 32)));
    // d = 0·(-1/8) = -0: zero scales (of either sign) and the zero code 8 everywhere.
    Int4Packed q = pack_int4(zeros, 32);
    EXPECT_TRUE((q.scales == 0).all().item<bool>());
    EXPECT_TRUE(tensors_identical(at::full({3, 35}, 0x88, at::kByte), q.qweight));
}

TEST(Int4Format, NamesAndConfig) {
    Int4Packed q = pack_int4(at::ones({2, 32}), 32);
    auto tensors = int4_tensors(q, "model.layers.0.mlp.up_proj.weight");
    ASSERT_EQ(tensors.size(), 2u);
    EXPECT_EQ(tensors[0].first, "model.layers.0.mlp.up_proj.qweight");
    EXPECT_EQ(tensors[1].first, "model.layers.0.mlp.up_proj.scales");
    EXPECT_NE(error_of([] { int4_qweight_name("model.layers.0.mlp.up_proj"); }).find(".weight"),
              std::string::npos);

    nlohmann::ordered_json c = int4_quantization_config(128);
    EXPECT_EQ(c.dump(),
              R"({"quant_method":"qlora_int4","bits":4,"group_size":128,"scheme":"symmetric_q4_0",)"
              R"("packing":"low_nibble_first"})");
    EXPECT_TRUE(is_int4_config(c));
    EXPECT_FALSE(is_int4_config(nlohmann::json{{"quant_method", "bitsandbytes"}}));
    EXPECT_EQ(int4_group_size(c, "cfg"), 128);
    nlohmann::json bad = c;
    bad["bits"] = 8;
    EXPECT_NE(error_of([&] { int4_group_size(bad, "cfg"); }).find("'bits' expected 4, found 8"),
              std::string::npos);
    bad = c;
    bad["packing"] = "high_nibble_first";
    EXPECT_NE(error_of([&] { int4_group_size(bad, "cfg"); }).find("'packing'"), std::string::npos);
    bad = c;
    bad.erase("group_size");
    EXPECT_NE(error_of([&] { int4_group_size(bad, "cfg"); }).find("lacks 'group_size'"),
              std::string::npos);
}

TEST(Int4Format, MalformedTensorsNameWhatWasExpected) {
    Int4Packed q = pack_int4(at::ones({4, 100}), 32);  // qweight [4, 50], scales [4, 4]
    std::string e =
        error_of([&] { unpack_int4(q.qweight.narrow(1, 0, 49), q.scales, 100, 32, "m.q_proj"); });
    EXPECT_NE(e.find("m.q_proj.qweight: expected shape [4, 50]"), std::string::npos) << e;
    EXPECT_NE(e.find("found [4, 49]"), std::string::npos) << e;
    e = error_of([&] { unpack_int4(q.qweight, q.scales.narrow(1, 0, 3), 100, 32, "m.q_proj"); });
    EXPECT_NE(e.find("m.q_proj.scales: expected shape [4, 4]"), std::string::npos) << e;
    EXPECT_NE(e.find("found [4, 3]"), std::string::npos) << e;
    e = error_of(
        [&] { unpack_int4(q.qweight, q.scales, 100, 64, "m.q_proj"); });  // 2 groups of 64 expected
    EXPECT_NE(e.find("expected shape [4, 2]"), std::string::npos) << e;
    e = error_of([&] { unpack_int4(q.qweight, q.scales.to(at::kFloat), 100, 32, "m.q_proj"); });
    EXPECT_NE(e.find("m.q_proj.scales: expected float16"), std::string::npos) << e;
    e = error_of([&] { unpack_int4(q.qweight.to(at::kInt), q.scales, 100, 32, "m.q_proj"); });
    EXPECT_NE(e.find("m.q_proj.qweight: expected uint8"), std::string::npos) << e;
    e = error_of([&] { unpack_int4(q.qweight, q.scales.narrow(0, 0, 3), 100, 32, "m.q_proj"); });
    EXPECT_NE(e.find("found [3, 4]"), std::string::npos) << e;

    e = error_of([] { pack_int4(at::ones({8}), 32, "w1"); });
    EXPECT_NE(e.find("w1 must be a non-empty 2-D weight"), std::string::npos) << e;
    at::Tensor nan = at::ones({2, 32});
    nan[1][3] = NAN;
    EXPECT_NE(error_of([&] { pack_int4(nan, 32, "w2"); }).find("w2 has non-finite values"),
              std::string::npos);
    EXPECT_NE(error_of([] {
                  pack_int4(at::full({1, 32}, 1e6f), 32, "w3");
              }).find("overflows float16"),
              std::string::npos);
}

}  // namespace
}  // namespace qlora::quant
