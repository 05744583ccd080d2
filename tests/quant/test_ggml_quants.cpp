// F16 / Q8_0 / Q4_0 encoders against hand-computed blocks (ggml-quants.c's reference arithmetic:
// roundf ties away from zero for Q8_0, (int8)(x/d + 8.5) truncation for Q4_0, first max wins),
// the fp16 rounding edges, and round-trip error bounds.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "quant/ggml_quants.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using qlora::test::error_of;

std::vector<uint8_t> q8(const std::vector<float>& x) {
    std::vector<uint8_t> y(x.size() / 32 * static_cast<int64_t>(sizeof(BlockQ8_0)));
    quantize_row_q8_0_ref(x.data(), y.data(), static_cast<int64_t>(x.size()));
    return y;
}

// Q4_0 goes through ggml_encode (quant/int4_codes.h's codes, the int4 QAT scheme's function).
std::vector<uint8_t> q4(const std::vector<float>& x) {
    const at::Tensor bytes = ggml_encode(at::tensor(x).view({1, -1}), GgmlType::kQ4_0, "x");
    const uint8_t* p = bytes.data_ptr<uint8_t>();
    return std::vector<uint8_t>(p, p + bytes.numel());
}

uint16_t d_bits(const std::vector<uint8_t>& y, size_t block, int64_t block_bytes) {
    return static_cast<uint16_t>(y[block * block_bytes] | (y[block * block_bytes + 1] << 8));
}

TEST(GgufFp16, EdgesRoundToNearestEven) {
    EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);
    EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);                    // halfway to 65536 -> even -> inf
    EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-11f), 0x3c00);             // tie, 1.0 is even
    EXPECT_EQ(fp32_to_fp16(1.0f + 0x1p-10f + 0x1p-11f), 0x3c02);  // tie, rounds up to even
    EXPECT_EQ(fp32_to_fp16(0x1p-24f), 0x0001);                    // smallest subnormal
    EXPECT_EQ(fp32_to_fp16(0x1p-25f), 0x0000);                    // tie between 0 and 2^-24 -> 0
    EXPECT_EQ(fp32_to_fp16(0x1.8p-25f), 0x0001);
    EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
    EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
    EXPECT_EQ(fp32_to_fp16(NAN) & 0x7e00, 0x7e00);
}

TEST(GgufQ8_0, HandComputedBlocks) {
    // Block 0: amax 127 -> d = 1 exactly; roundf ties go away from zero (2.5 -> 3, -0.5 -> -1).
    // Block 1: all zero -> d = 0, q = 0. Block 2: amax 254 (negative) -> d = 2, 5 -> 2.5 -> 3.
    std::vector<float> x(96, 0.0f);
    const float b0[] = {127.0f, 2.5f, -2.5f, 0.5f, -0.5f, 1.4999999f, -126.6f, 3.0f};
    for (int j = 0; j < 8; ++j) x[j] = b0[j];
    x[64] = -254.0f;
    x[65] = 5.0f;
    x[66] = -5.0f;
    x[67] = 253.0f;  // 126.5 -> 127
    x[68] = 0.9f;    // 0.45 -> 0
    auto y = q8(x);
    ASSERT_EQ(y.size(), 3u * 34u);
    EXPECT_EQ(d_bits(y, 0, 34), 0x3c00);
    const int8_t q0[] = {127, 3, -3, 1, -1, 1, -127, 3};
    for (int j = 0; j < 8; ++j) EXPECT_EQ(static_cast<int8_t>(y[2 + j]), q0[j]) << j;
    for (int j = 8; j < 32; ++j) EXPECT_EQ(y[2 + j], 0) << j;
    EXPECT_EQ(d_bits(y, 1, 34), 0x0000);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[34 + 2 + j], 0);
    EXPECT_EQ(d_bits(y, 2, 34), 0x4000);  // 2.0
    const int8_t q2[] = {-127, 3, -3, 127, 0};
    for (int j = 0; j < 5; ++j) EXPECT_EQ(static_cast<int8_t>(y[68 + 2 + j]), q2[j]) << j;

    std::vector<float> back(96);
    dequantize_row_q8_0(y.data(), back.data(), 96);
    EXPECT_EQ(back[0], 127.0f);
    EXPECT_EQ(back[1], 3.0f);
    EXPECT_EQ(back[6], -127.0f);
    EXPECT_EQ(back[40], 0.0f);
    EXPECT_EQ(back[64], -254.0f);
    EXPECT_EQ(back[65], 6.0f);
}

TEST(GgufQ8_0, ScaleIsRoundedToFp16ButQuantizationUsesTheFloatScale) {
    // amax 16 -> d = 16/127 (float) = 0.12598..., stored as fp16 0x3008 (0.1259765625). The codes
    // come from 1/d of the unrounded float: 15 * 127/16 = 119.06 -> 119.
    std::vector<float> x(32);
    for (int j = 0; j < 32; ++j) x[j] = static_cast<float>(j - 16);
    auto y = q8(x);
    EXPECT_EQ(d_bits(y, 0, 34), 0x3008);
    EXPECT_EQ(static_cast<int8_t>(y[2 + 0]), -127);
    EXPECT_EQ(static_cast<int8_t>(y[2 + 31]), 119);
    EXPECT_EQ(static_cast<int8_t>(y[2 + 17]), 8);   // 1 * 7.9375 -> 8
    EXPECT_EQ(static_cast<int8_t>(y[2 + 18]), 16);  // 2 * 7.9375 = 15.875 -> 16
}

TEST(GgufQ4_0, HandComputedBlocks) {
    // Block 0: the max-magnitude element is -8 (first of -8 / +8) -> d = -8/-8 = 1, q = x + 8.5
    // truncated: -8 -> 0, 8 -> 16 clamped to 15, 0.5 -> 9, -0.5 -> 8, 7 -> 15, -3 -> 5.
    // Block 1: all zero -> d = -0.0 (0 / -8), every nibble 8. Block 2: max +8 -> d = -1.
    std::vector<float> x(96, 0.0f);
    x[0] = -8.0f;
    x[1] = 8.0f;
    x[2] = 0.5f;
    x[3] = -0.5f;
    x[16] = 7.0f;
    x[17] = -3.0f;
    x[18] = 1.49f;
    x[64 + 5] = 8.0f;
    x[64 + 6] = -8.0f;
    x[64 + 7] = 1.0f;
    x[64 + 21] = -2.0f;
    auto y = q4(x);
    ASSERT_EQ(y.size(), 3u * 18u);
    EXPECT_EQ(d_bits(y, 0, 18), 0x3c00);
    // byte j: low nibble element j, high nibble element j + 16
    EXPECT_EQ(y[2 + 0], 0x00 | (15 << 4));  // -8 -> 0 ; 7 -> 15
    EXPECT_EQ(y[2 + 1], 15 | (5 << 4));     // 8 -> 15 (clamped) ; -3 -> 5
    EXPECT_EQ(y[2 + 2], 9 | (9 << 4));      // 0.5 -> 9 ; 1.49 -> 9
    EXPECT_EQ(y[2 + 3], 8 | (8 << 4));      // -0.5 -> 8 ; 0 -> 8
    EXPECT_EQ(d_bits(y, 1, 18), 0x8000);  // 0.0f / -8 is -0.0f in ggml too: d = -0, every nibble 8
    for (int j = 0; j < 16; ++j) EXPECT_EQ(y[18 + 2 + j], 0x88) << j;
    EXPECT_EQ(d_bits(y, 2, 18), 0xbc00);      // -1.0
    EXPECT_EQ(y[36 + 2 + 5], 0 | (10 << 4));  // 8 -> 0.5 -> 0 ; element 21: -2 -> 10.5 -> 10
    EXPECT_EQ(y[36 + 2 + 6], 15 | (8 << 4));  // -8 -> 16.5 -> 15 ; 0 -> 8
    EXPECT_EQ(y[36 + 2 + 7], 7 | (8 << 4));   // 1 -> 7.5 -> 7

    std::vector<float> back(96);
    dequantize_row_q4_0(y.data(), back.data(), 96);
    EXPECT_EQ(back[0], -8.0f);
    EXPECT_EQ(back[1], 7.0f);  // the clamp
    EXPECT_EQ(back[2], 1.0f);
    EXPECT_EQ(back[16], 7.0f);
    EXPECT_EQ(back[40], 0.0f);
    EXPECT_EQ(back[64 + 5], 8.0f);
    EXPECT_EQ(back[64 + 6], -7.0f);
    EXPECT_EQ(back[64 + 21], -2.0f);
}

TEST(GgufQuants, RoundTripErrorWithinOneStep) {
    at::manual_seed(7);
    at::Tensor w = at::randn({64, 256}) * 0.05;
    w[3].zero_();  // an all-zero row
    for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ4_0, GgmlType::kF16}) {
        at::Tensor bytes = ggml_encode(w, t, "w");
        EXPECT_EQ(bytes.numel(), 64 * ggml_row_bytes(t, 256));
        at::Tensor back = ggml_decode(bytes, t, w.sizes());
        at::Tensor blocks = w.reshape({-1, 32}).abs().amax(1, true);
        // Q8_0: half a step of amax/127 plus fp16 rounding of d; Q4_0: one step of amax/8 (clamp).
        const double step = t == GgmlType::kQ8_0   ? (0.5 + 127.0 / 2048) / 127 * 1.01
                            : t == GgmlType::kQ4_0 ? 1.0 / 8 * 1.01
                                                   : 0.0;
        at::Tensor err = (back - w).abs().reshape({-1, 32});
        if (t == GgmlType::kF16) {
            EXPECT_TRUE(at::equal(back, w.to(at::kHalf).to(at::kFloat))) << ggml_type_name(t);
        } else {
            EXPECT_TRUE((err <= blocks * step + 1e-12).all().item<bool>()) << ggml_type_name(t);
            EXPECT_TRUE((back[3] == 0).all().item<bool>());
            EXPECT_GT(back.abs().sum().item<double>(), 0.0);
        }
    }
}

TEST(GgufQuants, EncodeRefusesBadRowsAndValues) {
    EXPECT_EQ(error_of([] {
                  ggml_encode(at::ones({4, 48}), GgmlType::kQ4_0, "blk.0.ffn_down.weight");
              }),
              "blk.0.ffn_down.weight: rows of 48 elements cannot be Q4_0 (needs a multiple of 32)");
    at::Tensor nan = at::ones({2, 32});
    nan[1][3] = NAN;
    EXPECT_EQ(error_of([&] { ggml_encode(nan, GgmlType::kQ8_0, "w"); }),
              "w: holds NaN or Inf; refusing to export it");
    EXPECT_NE(error_of([] {
                  ggml_encode(at::full({1, 32}, 70000.0), GgmlType::kF16, "big");
              }).find("big: largest magnitude 70000 overflows F16"),
              std::string::npos);
    // F16 of a 48-wide row is fine, and F32 is a plain copy.
    EXPECT_EQ(ggml_encode(at::ones({2, 48}), GgmlType::kF16, "w").numel(), 2 * 48 * 2);
    at::Tensor v = at::arange(5, at::kFloat);
    EXPECT_TRUE(
        at::equal(ggml_decode(ggml_encode(v, GgmlType::kF32, "v"), GgmlType::kF32, {5}), v));
}

}  // namespace
}  // namespace qlora::quant
