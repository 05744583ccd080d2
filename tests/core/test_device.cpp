// Device/dtype parsing, and the clear error when cuda is asked for where there is none.
#include <gtest/gtest.h>

#include "core/device.h"
#include "core/error.h"

namespace qlora {
namespace {

TEST(Device, CpuAndAuto) {
    EXPECT_EQ(resolve_device("cpu"), c10::Device(c10::kCPU));
    auto d = resolve_device("auto");
    EXPECT_EQ(d.is_cuda(), cuda_available());
    EXPECT_EQ(default_compute_dtype(c10::Device(c10::kCPU)), c10::kFloat);
    EXPECT_EQ(default_compute_dtype(c10::Device(c10::kCUDA, 0)), c10::kBFloat16);
}

TEST(Device, CudaWithoutGpuIsAClearError) {
    if (cuda_available()) GTEST_SKIP() << "a GPU is present; the no-GPU error cannot be observed";
    try {
        resolve_device("cuda");
        FAIL();
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(),
                     "device 'cuda' was requested but no CUDA GPU is available here; use device: "
                     "cpu or auto");
    }
}

TEST(Device, CudaIndexBeyondCountIsAnError) {
    if (!cuda_available()) GTEST_SKIP() << "needs a GPU";
    EXPECT_THROW(resolve_device("cuda:4096"), Error);
    EXPECT_EQ(resolve_device("cuda:0"), c10::Device(c10::kCUDA, 0));
}

TEST(Device, MalformedNamesRejected) {
    for (const char* bad : {"gpu", "cuda:", "cuda:x", "cuda1", "cuda:-1", ""}) {
        try {
            resolve_device(bad);
            FAIL() << bad;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(std::string("got '") + bad + "'"),
                      std::string::npos)
                << e.what();
        }
    }
}

TEST(Dtype, ParseAndName) {
    EXPECT_EQ(parse_dtype("bf16"), c10::kBFloat16);
    EXPECT_EQ(parse_dtype("bfloat16"), c10::kBFloat16);
    EXPECT_EQ(parse_dtype("fp16"), c10::kHalf);
    EXPECT_EQ(parse_dtype("float32"), c10::kFloat);
    EXPECT_EQ(dtype_name(c10::kBFloat16), "bfloat16");
    EXPECT_EQ(dtype_name(c10::kHalf), "float16");
    EXPECT_EQ(dtype_size(c10::kBFloat16), 2);
    try {
        parse_dtype("int4");
        FAIL();
    } catch (const Error& e) {
        EXPECT_STREQ(
            e.what(),
            "dtype must be one of float32, bfloat16, float16 (or fp32, bf16, fp16); got 'int4'");
    }
}

}  // namespace
}  // namespace qlora
