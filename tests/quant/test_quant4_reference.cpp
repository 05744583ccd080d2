// The scalar reference against hand-computed cases, the fast CPU paths against the reference, and
// round-trip error tables like bitsandbytes' test_4bit_quant.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "quant/quant4_cpu.h"
#include "quant/quant4_ops.h"
#include "quant/quant4_ref.h"
#include "quant/quant4_tensor.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using qlora::test::error_of;
using qlora::test::tensors_identical;
constexpr bnb::Codebook kNf4 = bnb::make_codebook(bnb::QuantType::kNF4);
constexpr bnb::Codebook kFp4 = bnb::make_codebook(bnb::QuantType::kFP4);

// bnb::block_scale (kernels/bnb_quant.h), the rule every blockwise quantizer calls: a full block
// multiplies by the reciprocal, a partial one divides, and the two round differently.
TEST(Nf4Reference, BlockScaleMultipliesAFullBlockAndDividesAPartialOne) {
    const float x = 1.0f / 7.0f;
    const bnb::BlockScale full = bnb::block_scale(3.0f, false);
    const bnb::BlockScale partial = bnb::block_scale(3.0f, true);
    EXPECT_EQ(bnb::scale_into_unit(x, full), x * (1.0f / 3.0f));
    EXPECT_EQ(bnb::scale_into_unit(x, partial), x / 3.0f);
    EXPECT_NE(x * (1.0f / 3.0f), x / 3.0f);             // the case tells the two paths apart
    EXPECT_EQ(bnb::scale_into_unit(7.0f, full), 1.0f);  // clamped into [-1, 1]
    EXPECT_EQ(bnb::stored_absmax(3.0f, full), 3.0f);
    // An all-zero block: the absmax is clamped, 0 scales to 0, the partial block stores the clamp.
    const bnb::BlockScale zero = bnb::block_scale(0.0f, true);
    EXPECT_EQ(zero.clamped, bnb::kMinAbsmax);
    EXPECT_EQ(bnb::scale_into_unit(0.0f, zero), 0.0f);
    EXPECT_EQ(bnb::stored_absmax(0.0f, zero), bnb::kMinAbsmax);
    EXPECT_EQ(bnb::stored_absmax(0.0f, bnb::block_scale(0.0f, false)), 0.0f);
}

TEST(Nf4Reference, EncodeNearestWithLowerCodeOnTies) {
    EXPECT_EQ(bnb::encode_4bit(kNf4, -1.0f), 0);
    EXPECT_EQ(bnb::encode_4bit(kNf4, 1.0f), 15);
    EXPECT_EQ(bnb::encode_4bit(kNf4, 0.0f), 7);
    EXPECT_EQ(bnb::encode_4bit(kNf4, 0.07f), 8);  // nearer 0.0796 than 0
    EXPECT_EQ(bnb::encode_4bit(kNf4, 0.03f), 7);  // nearer 0
    const float mid = (0.0f + 0.07958029955625534f) / 2.0f;
    EXPECT_EQ(bnb::encode_4bit(kNf4, mid), 7);  // exactly on the midpoint: lower code
    EXPECT_EQ(bnb::encode_4bit(kNf4, std::nextafter(mid, 1.0f)), 8);
    // FP4: 0 -> +0 (code 0); tiny positive values go to -0 (code 8), as bitsandbytes' sort does.
    EXPECT_EQ(bnb::encode_4bit(kFp4, 0.0f), 0);
    EXPECT_EQ(bnb::encode_4bit(kFp4, 0.001f), 8);
    EXPECT_EQ(bnb::encode_4bit(kFp4, 1.0f), 3);
    EXPECT_EQ(bnb::encode_4bit(kFp4, -1.0f), 11);
    EXPECT_EQ(bnb::encode_4bit(kFp4, 0.5f), 5);
}

TEST(Nf4Reference, PackingIsHighNibbleFirst) {
    // Block of 4: absmax 1 -> codes 15 (1.0), 0 (-1.0), 7 (0.0), 15; odd tail element pads with 7.
    std::vector<float> x = {1.0f, -1.0f, 0.0f, 1.0f, 0.5f};
    std::vector<uint8_t> packed(3);
    std::vector<float> absmax(1);
    quantize_4bit_ref(x.data(), 5, 64, kNf4, packed.data(), absmax.data(), 0, 1);
    EXPECT_EQ(packed[0], 0xF0);
    EXPECT_EQ(packed[1], 0x7F);
    EXPECT_EQ(packed[2] & 0x0F, 7);
    EXPECT_EQ(packed[2] >> 4, bnb::encode_4bit(kNf4, 0.5f));
    EXPECT_EQ(absmax[0], 1.0f);  // partial block stores max(absmax, 1e-38) = 1
    std::vector<float> back(5);
    dequantize_4bit_ref(packed.data(), absmax.data(), 5, 64, kNf4, back.data());
    EXPECT_EQ(back[0], 1.0f);
    EXPECT_EQ(back[1], -1.0f);
    EXPECT_EQ(back[2], 0.0f);
    EXPECT_EQ(back[4], 0.44070982933044434f);  // 0.5 lies below the 0.4407|0.5626 midpoint
}

TEST(Nf4Reference, AllZeroBlocksDequantizeToZero) {
    at::Tensor x = at::zeros({64 * 3 + 7});
    x.slice(0, 64, 128).normal_();
    for (bool dq : {false, true}) {
        Quant4Tensor t = Quant4Tensor::quantize(x, {bnb::QuantType::kNF4, 64, dq});
        at::Tensor back = t.dequantize();
        EXPECT_EQ(back.slice(0, 0, 64).abs().max().item<float>(), 0.0f);
        EXPECT_EQ(back.slice(0, 128).abs().max().item<float>(), 0.0f);
        EXPECT_GT(back.slice(0, 64, 128).abs().max().item<float>(), 0.0f);
    }
}

// The threaded, chunked CPU paths give the reference's bytes and floats.
TEST(Nf4Reference, FastCpuPathsEqualReference) {
    at::manual_seed(3);
    for (int64_t n :
         {int64_t{1}, int64_t{63}, int64_t{64}, int64_t{65537}, int64_t{3 * 65536 + 4097}}) {
        for (int64_t bs : {32, 64, 4096}) {
            for (auto type : {bnb::QuantType::kNF4, bnb::QuantType::kFP4}) {
                SCOPED_TRACE(::testing::Message()
                             << "n=" << n << " bs=" << bs << " type=" << int(type));
                const bnb::Codebook& cb = codebook(type);
                at::Tensor x = at::randn({n});
                at::Tensor packed = at::empty({bnb::packed_bytes(n)}, at::kByte);
                at::Tensor absmax = at::empty({bnb::num_blocks(n, bs)}, at::kFloat);
                quantize_4bit_ref(x.data_ptr<float>(), n, bs, cb, packed.data_ptr<uint8_t>(),
                                  absmax.data_ptr<float>(), 0, bnb::num_blocks(n, bs));
                Quantized4bit fast = quantize_4bit(x, type, bs);
                ASSERT_TRUE(tensors_identical(packed, fast.packed));
                ASSERT_TRUE(tensors_identical(absmax, fast.absmax));

                at::Tensor ref_out = at::empty({n}, at::kFloat);
                dequantize_4bit_ref(packed.data_ptr<uint8_t>(), absmax.data_ptr<float>(), n, bs, cb,
                                    ref_out.data_ptr<float>());
                for (auto dtype : {at::kFloat, at::kBFloat16, at::kHalf}) {
                    at::Tensor out =
                        dequantize_4bit(packed, absmax, {}, {}, {}, 0.0f, n, bs, type, dtype);
                    ASSERT_TRUE(tensors_identical(ref_out.to(dtype), out));
                }
            }
        }
    }
}

TEST(Nf4Reference, FusedDoubleQuantDequantEqualsTwoStepReference) {
    at::manual_seed(4);
    at::Tensor w = at::randn({300, 257}) * 0.02;
    Quant4Tensor t = Quant4Tensor::quantize(w, {bnb::QuantType::kNF4, 64, true});
    at::Tensor absmax = t.block_absmax();  // torch ops: map[codes] * nested + offset
    std::vector<float> ref_absmax(t.num_blocks());
    absmax_dequantize_ref(t.absmax().data_ptr<uint8_t>(), t.nested_absmax().data_ptr<float>(),
                          t.nested_code().data_ptr<float>(), t.nested_offset(), t.num_blocks(), 256,
                          ref_absmax.data());
    ASSERT_TRUE(tensors_identical(at::tensor(ref_absmax, at::kFloat), absmax));
    at::Tensor ref = at::empty({w.numel()});
    dequantize_4bit_ref(t.packed().data_ptr<uint8_t>(), ref_absmax.data(), w.numel(), 64, kNf4,
                        ref.data_ptr<float>());
    EXPECT_TRUE(tensors_identical(ref.view({300, 257}), t.dequantize()));
}

// Double quantization stays within one 8-bit step of the true absmax (per nested block).
TEST(Nf4Reference, DoubleQuantScalesWithinOneStep) {
    at::manual_seed(5);
    at::Tensor w = at::randn({512, 512});
    Quantized4bit q = quantize_4bit(w, bnb::QuantType::kNF4, 64);
    Quant4Tensor t = Quant4Tensor::quantize(w, {bnb::QuantType::kNF4, 64, true});
    at::Tensor err = (t.block_absmax() - q.absmax).abs();
    // The dynamic map's largest gap near 1 is about 0.0078 (1/128) of the nested absmax.
    at::Tensor nested = t.nested_absmax().repeat_interleave(256).slice(0, 0, q.absmax.numel());
    EXPECT_TRUE((err <= nested * 0.0079f + 1e-7f).all().item<bool>())
        << "max err " << err.max().item<float>();
}

struct ErrorRow {
    const char* type;
    int64_t blocksize;
    double mean_abs;  // bitsandbytes 0.50.2 on the same input (torch.manual_seed(0); randn(1024,
                      // 1024))
    double mean_rel;
};

// bitsandbytes' own round-trip errors; ours (no double quant) reproduce them exactly, and double
// quantization costs under 1% more error.
TEST(Nf4Reference, RoundTripErrorTableMatchesBitsandbytes) {
    const ErrorRow rows[] = {
        {"nf4", 32, 0.067758, 0.190068},   {"nf4", 64, 0.072797, 0.203755},
        {"nf4", 128, 0.076854, 0.215851},  {"nf4", 256, 0.080492, 0.226929},
        {"nf4", 512, 0.083834, 0.237466},  {"nf4", 1024, 0.086905, 0.246770},
        {"nf4", 2048, 0.089874, 0.255489}, {"nf4", 4096, 0.092782, 0.263607},
        {"fp4", 32, 0.088992, 0.242971},   {"fp4", 64, 0.096549, 0.260574},
        {"fp4", 128, 0.103063, 0.276283},  {"fp4", 256, 0.108765, 0.290304},
        {"fp4", 512, 0.114402, 0.303901},  {"fp4", 1024, 0.119584, 0.315921},
        {"fp4", 2048, 0.124647, 0.327223}, {"fp4", 4096, 0.129692, 0.337729},
    };
    at::manual_seed(0);
    at::Tensor a = at::randn({1024, 1024});
    for (const auto& row : rows) {
        SCOPED_TRACE(::testing::Message() << row.type << " bs=" << row.blocksize);
        for (bool dq : {false, true}) {
            Quant4Tensor t =
                Quant4Tensor::quantize(a, {parse_quant_type(row.type), row.blocksize, dq});
            at::Tensor err = (a - t.dequantize()).abs();
            double mean_abs = err.mean().item<double>();
            double mean_rel = (err / (a.abs() + 1e-8)).mean().item<double>();
            if (!dq) {
                EXPECT_NEAR(mean_abs, row.mean_abs, 1e-6);
                EXPECT_NEAR(mean_rel, row.mean_rel, 1e-6);
            } else {
                EXPECT_LT(mean_abs, row.mean_abs * 1.01);
                EXPECT_GE(mean_abs, row.mean_abs * 0.999);
            }
        }
    }
}

TEST(Nf4Tensor, BitsPerParameterWithDoubleQuant) {
    at::Tensor w = at::randn({4096, 4096}, at::kBFloat16);
    Quant4Tensor dq = Quant4Tensor::quantize(w, {bnb::QuantType::kNF4, 64, true});
    Quant4Tensor plain = Quant4Tensor::quantize(w, {bnb::QuantType::kNF4, 64, false});
    const double params = 4096.0 * 4096.0;
    EXPECT_NEAR(8.0 * static_cast<double>(dq.nbytes()) / params, 4.127, 0.001);
    EXPECT_NEAR(8.0 * static_cast<double>(plain.nbytes()) / params, 4.5, 0.001);
    EXPECT_EQ(dq.dequantize().scalar_type(), at::kBFloat16);
    EXPECT_EQ(dq.dequantize().sizes(), w.sizes());
}

TEST(Nf4Tensor, BadInputsAreClearErrors) {
    at::Tensor w = at::randn({8, 64});
    EXPECT_EQ(error_of([&] {
                  Quant4Tensor::quantize(w, {bnb::QuantType::kNF4, 48, true}, "q_proj");
              }),
              "q_proj: blocksize must be a power of two in [32, 4096], got 48");
    EXPECT_EQ(error_of([&] {
                  Quant4Tensor::quantize(w, {bnb::QuantType::kNF4, 8192, true}, "q_proj");
              }),
              "q_proj: blocksize must be a power of two in [32, 4096], got 8192");
    at::Tensor bad = w.clone();
    bad[3][5] = std::nanf("");
    EXPECT_EQ(
        error_of([&] { Quant4Tensor::quantize(bad, {}, "model.layers.0.mlp.up_proj.weight"); }),
        "model.layers.0.mlp.up_proj.weight: holds NaN or Inf values; refusing to quantize a "
        "non-finite weight");
    bad[3][5] = INFINITY;
    EXPECT_NE(error_of([&] { Quant4Tensor::quantize(bad, {}, "w"); }).find("NaN or Inf"),
              std::string::npos);
    EXPECT_EQ(error_of([&] {
                  Quant4Tensor::quantize(at::empty({0, 64}), {}, "w");
              }),
              "w: cannot quantize an empty tensor (shape [0, 64])");
    EXPECT_EQ(error_of([&] { Quant4Tensor::quantize(w.to(at::kInt), {}, "w"); }),
              "w: only float32, float16 and bfloat16 weights can be quantized, got Int");

    Quant4Tensor t = Quant4Tensor::quantize(w, {});
    // absmax length not matching the shape
    EXPECT_EQ(error_of([&] {
                  Quant4Tensor::from_parts(t.packed(), t.absmax().slice(0, 0, 7), t.nested_absmax(),
                                           t.nested_code(), t.nested_offset(), {8, 64}, at::kFloat,
                                           bnb::QuantType::kNF4, 64, "w");
              }),
              "w: shape [8, 64] with blocksize 64 needs 8 absmax values, found 7");
    EXPECT_EQ(error_of([&] {
                  Quant4Tensor::from_parts(t.packed(), t.absmax(), t.nested_absmax(),
                                           t.nested_code(), t.nested_offset(), {8, 65}, at::kFloat,
                                           bnb::QuantType::kNF4, 64, "w");
              }),
              "w: shape [8, 65] needs 260 packed bytes, found 256");
    EXPECT_EQ(error_of([&] {
                  Quant4Tensor::from_parts(t.packed(), t.absmax(), at::zeros({2}), t.nested_code(),
                                           t.nested_offset(), {8, 64}, at::kFloat,
                                           bnb::QuantType::kNF4, 64, "w");
              }),
              "w: 8 absmax values need 1 nested_absmax values, found 2");
    EXPECT_EQ(error_of([&] {
                  Quant4Tensor::from_parts(t.packed(), t.absmax(), t.nested_absmax(),
                                           t.nested_code(), NAN, {8, 64}, at::kFloat,
                                           bnb::QuantType::kNF4, 64, "w");
              }),
              "w: nested_offset is not finite: nan");
    EXPECT_EQ(error_of([&] { parse_quant_type("int4"); }),
              "quant type must be one of nf4, fp4, got 'int4'");
}

}  // namespace
}  // namespace qlora::quant
