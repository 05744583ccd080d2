// GgufReader on files llama.cpp's gguf package writes: every metadata value type (nested arrays
// included) from its GGUFWriter, and the SmolLM2-135M-Instruct GGUF's header.
#include <gtest/gtest.h>

#include <cmath>

#include "io/gguf_reader.h"
#include "support/gguf_import.h"
#include "support/test_support.h"

namespace qlora::io {
namespace {

TEST(GgufReaderInterop, ReadsEveryValueTypeTheGgufWriterWrites) {
    const std::string path = qlora::test::scratch_dir("gguf_reader_interop") + "/fixture.gguf";
    auto made = qlora::test::run_command(qlora::test::gguf_import_script() + " write-fixture " +
                                         path + " 1");
    ASSERT_EQ(made.exit_code, 0) << made.output;
    GgufReader r(path);
    EXPECT_EQ(r.version(), 3u);
    EXPECT_EQ(r.get_string("general.architecture"), "fixture");
    EXPECT_EQ(r.get("test.u8").type(), GgufValueType::kUint8);
    EXPECT_EQ(r.get_uint("test.u8"), 200u);
    EXPECT_EQ(r.get("test.i8").as_int("i8"), -100);
    EXPECT_EQ(r.get_uint("test.u16"), 60000u);
    EXPECT_EQ(r.get("test.i16").as_int("i16"), -30000);
    EXPECT_EQ(r.get_uint("test.u32"), 4000000000u);
    EXPECT_EQ(r.get("test.i32").as_int("i32"), -2000000000);
    EXPECT_EQ(r.get_uint("test.u64"), 18000000000000000000ull);
    EXPECT_EQ(r.get("test.i64").as_int("i64"), -9000000000000000000ll);
    EXPECT_EQ(r.get("test.f32").type(), GgufValueType::kFloat32);
    EXPECT_EQ(r.get_float("test.f32"), 0.25);
    EXPECT_EQ(r.get_float("test.f64"), -1.0e300);
    EXPECT_TRUE(r.get_bool("test.bool"));
    EXPECT_EQ(r.get_string("test.string"), "h\xc3\xa9llo \xe2\x96\x81 world");
    EXPECT_EQ(r.get("test.strings").strings("s"),
              (std::vector<std::string>{"a", "", "\xc3\x9f\xc3\x9f"}));
    EXPECT_EQ(r.get("test.ints").element_type(), GgufValueType::kInt32);
    EXPECT_EQ(r.get("test.ints").ints("i"), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(r.get("test.floats").floats("f"), (std::vector<double>{0.5, -1.5}));
    EXPECT_EQ(r.get("test.bools").element_type(), GgufValueType::kBool);
    EXPECT_EQ(r.get("test.bools").size(), 3u);
    EXPECT_EQ(qlora::test::error_of([&] { r.get("test.bools").ints("test.bools"); }),
              "test.bools: expected an array of integers, found [bool x 3]");
    const auto& nested = r.get("test.nested").arrays();
    ASSERT_EQ(nested.size(), 3u);
    EXPECT_EQ(nested[0].ints("n"), (std::vector<int64_t>{1, 2}));
    EXPECT_EQ(nested[1].ints("n"), (std::vector<int64_t>{3}));
    EXPECT_EQ(nested[2].ints("n"), (std::vector<int64_t>{4, 5, 6}));
    const auto& nested_strings = r.get("test.nested_strings").arrays();
    ASSERT_EQ(nested_strings.size(), 2u);
    EXPECT_EQ(nested_strings[0].strings("n"), (std::vector<std::string>{"x", "y"}));
    // 13 types, raw blocks and their expected values
    EXPECT_EQ(r.tensors().size(), 26u);
}

TEST(GgufReaderInterop, ReadsTheSmolLM2Header) {
    GgufReader r(qlora::test::smollm2_gguf());
    EXPECT_EQ(r.version(), 3u);
    EXPECT_EQ(r.get_string("general.architecture"), "llama");
    EXPECT_EQ(r.get_uint("llama.block_count"), 30u);
    EXPECT_EQ(r.get_string("tokenizer.ggml.model"), "gpt2");
    EXPECT_EQ(r.get("tokenizer.ggml.tokens").size(), 49152u);
    EXPECT_EQ(r.tensors().size(), 272u);
    EXPECT_EQ(r.tensor("token_embd.weight").torch_shape(), (std::vector<int64_t>{49152, 576}));
    EXPECT_EQ(r.tensor("token_embd.weight").type, quant::GgmlType::kQ8_0);
}

}  // namespace
}  // namespace qlora::io
