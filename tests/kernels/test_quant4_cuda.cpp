// CUDA 4-bit kernels against the CPU reference: quantize bit-exact (packed bytes, absmax, nested
// codes), dequantize to identical floats, for every dtype and blocksize, odd sizes and tail blocks.
// Skipped with a reason where no GPU is present (CI); scripts/gpu-check.sh runs them on a GPU.
#include <gtest/gtest.h>

#include "core/device.h"
#include "quant/dynamic_map.h"
#include "quant/quant4_ops.h"
#include "quant/quant4_tensor.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using qlora::test::tensors_identical;

class Nf4Cuda : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!cuda_available())
            GTEST_SKIP() << "no CUDA GPU on this machine: CUDA kernels not exercised";
    }
};

TEST_F(Nf4Cuda, QuantizeIsBitExactWithCpu) {
    at::manual_seed(11);
    for (int64_t n :
         {int64_t{1}, int64_t{31}, int64_t{4097}, int64_t{3 * 4096 + 17}, int64_t{1 << 20}}) {
        for (int64_t bs : {32, 64, 128, 256, 512, 1024, 2048, 4096}) {
            for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
                for (auto type : {bnb::QuantType::kNF4, bnb::QuantType::kFP4}) {
                    SCOPED_TRACE(::testing::Message() << "n=" << n << " bs=" << bs << " dtype="
                                                      << dtype << " type=" << int(type));
                    at::Tensor x = (at::randn({n}) * 0.05).to(dtype);
                    if (n > 200) x.slice(0, 64, 128).zero_();
                    Quantized4bit cpu = quantize_4bit(x, type, bs);
                    Quantized4bit gpu = quantize_4bit(x.cuda(), type, bs);
                    ASSERT_TRUE(tensors_identical(cpu.packed, gpu.packed.cpu()));
                    ASSERT_TRUE(tensors_identical(cpu.absmax, gpu.absmax.cpu()));
                }
            }
        }
    }
}

TEST_F(Nf4Cuda, DoubleQuantIsBitExactWithCpu) {
    at::manual_seed(12);
    for (int64_t blocks : {int64_t{1}, int64_t{255}, int64_t{256}, int64_t{257}, int64_t{100000}}) {
        at::Tensor absmax = at::rand({blocks}) * 0.3 + 0.01;
        at::Tensor map = dynamic_map(/*is_signed=*/true);
        QuantizedAbsmax cpu = quantize_absmax(absmax, map);
        QuantizedAbsmax gpu = quantize_absmax(absmax.cuda(), map.cuda());
        EXPECT_EQ(cpu.offset, gpu.offset);
        ASSERT_TRUE(tensors_identical(cpu.codes, gpu.codes.cpu())) << blocks;
        ASSERT_TRUE(tensors_identical(cpu.nested, gpu.nested.cpu())) << blocks;
    }
}

TEST_F(Nf4Cuda, DequantizeEqualsCpuForEveryOutputDtype) {
    at::manual_seed(13);
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{4097}, int64_t{1 << 20}}) {
        for (int64_t bs : {32, 64, 4096}) {
            for (bool dq : {false, true}) {
                at::Tensor w = at::randn({n}) * 0.02;
                Quant4Tensor cpu = Quant4Tensor::quantize(w, {bnb::QuantType::kNF4, bs, dq});
                Quant4Tensor gpu = cpu.to(c10::Device(c10::kCUDA, 0));
                for (auto dtype : {at::kFloat, at::kHalf, at::kBFloat16}) {
                    SCOPED_TRACE(::testing::Message() << "n=" << n << " bs=" << bs << " dq=" << dq
                                                      << " dtype=" << dtype);
                    ASSERT_TRUE(
                        tensors_identical(cpu.dequantize(dtype), gpu.dequantize(dtype).cpu()));
                }
            }
        }
    }
}

TEST_F(Nf4Cuda, MisalignedPackedViewStillCorrect) {
    at::Tensor w = at::randn({64 * 9}) * 0.1;
    Quant4Tensor t = Quant4Tensor::quantize(w, {bnb::QuantType::kNF4, 64, false});
    // Views starting 1 and 4 bytes into a buffer: the kernel reads whole aligned words.
    for (int64_t shift : {1, 4}) {
        at::Tensor buffer = at::zeros({t.packed().numel() + shift}, at::kByte);
        buffer.slice(0, shift).copy_(t.packed());
        at::Tensor view = buffer.cuda().slice(0, shift);
        at::Tensor out = dequantize_4bit(view, t.absmax().cuda(), {}, {}, {}, 0.0f, w.numel(), 64,
                                         bnb::QuantType::kNF4, at::kFloat);
        EXPECT_TRUE(tensors_identical(t.dequantize(), out.cpu())) << "shift " << shift;
    }
}

TEST_F(Nf4Cuda, QuantizeOnGpuRoundTripsLikeCpu) {
    at::manual_seed(14);
    at::Tensor w = at::randn({1024, 1024}, at::kBFloat16);
    Quant4Tensor cpu = Quant4Tensor::quantize(w, {});
    Quant4Tensor gpu = Quant4Tensor::quantize(w.cuda(), {});
    EXPECT_TRUE(tensors_identical(cpu.packed(), gpu.packed().cpu()));
    EXPECT_TRUE(tensors_identical(cpu.absmax(), gpu.absmax().cpu()));
    EXPECT_TRUE(tensors_identical(cpu.nested_absmax(), gpu.nested_absmax().cpu()));
    EXPECT_EQ(cpu.nested_offset(), gpu.nested_offset());
    EXPECT_TRUE(tensors_identical(cpu.dequantize(), gpu.dequantize().cpu()));
}

}  // namespace
}  // namespace qlora::quant
