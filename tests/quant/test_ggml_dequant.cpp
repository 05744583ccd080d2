// Dequantization of every type we decode, bit-exact with llama.cpp's gguf package
// (gguf.quants.dequantize): random blocks of each type in a file its GGUFWriter writes, and every
// tensor of the SmolLM2-135M-Instruct Q4_1 GGUF (checksums of the float32 bits).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "io/gguf_reader.h"
#include "quant/ggml_quants.h"
#include "support/gguf_import.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using qlora::test::gguf_import_script;
using qlora::test::run_command;

// Elements whose float32 bits differ.
int64_t bit_mismatches(const at::Tensor& a, const at::Tensor& b) {
    if (a.sizes() != b.sizes()) return a.numel();
    at::Tensor x = a.contiguous(), y = b.contiguous();
    int64_t n = 0;
    for (int64_t i = 0; i < x.numel(); ++i) {
        n += std::memcmp(x.data_ptr<float>() + i, y.data_ptr<float>() + i, 4) != 0 ? 1 : 0;
    }
    return n;
}

TEST(GgmlDequant, RandomBlocksOfEveryTypeMatchGgufPyBitForBit) {
    const std::string path = qlora::test::scratch_dir("ggml_dequant_random") + "/blocks.gguf";
    auto made = run_command(gguf_import_script() + " write-fixture " + path + " 1234");
    ASSERT_EQ(made.exit_code, 0) << made.output;
    io::GgufReader r(path);
    const char* types[] = {"F32",  "F16",  "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1",
                           "Q8_0", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"};
    std::string report;
    for (const char* type : types) {
        const std::string name = std::string("blocks.") + type;
        ASSERT_TRUE(r.has_tensor(name)) << name;
        EXPECT_STREQ(ggml_type_name(r.tensor(name).type), type);
        at::Tensor ours = r.dequantize(name);
        at::Tensor theirs = r.dequantize(std::string("expected.") + type);
        ASSERT_EQ(ours.sizes(), theirs.sizes()) << type;
        EXPECT_EQ(bit_mismatches(ours, theirs), 0) << type;
        EXPECT_GT(ours.abs().sum().item<double>(), 0.0) << type;  // not a vacuous comparison
        report += std::string(" ") + type + " " + std::to_string(ours.numel()) + "/" +
                  std::to_string(ours.numel() - bit_mismatches(ours, theirs));
    }
    std::cout << "[ measured ] elements bit-identical to gguf.quants.dequantize:" << report << "\n";
}

TEST(GgmlDequant, EveryTensorOfSmolLM2MatchesGgufPy) {
    const std::string gguf = qlora::test::smollm2_gguf();
    const std::string sums = qlora::test::scratch_dir("ggml_dequant_smollm2") + "/sums.json";
    auto made = run_command(gguf_import_script() + " checksums " + gguf + " " + sums);
    ASSERT_EQ(made.exit_code, 0) << made.output;
    nlohmann::json theirs = nlohmann::json::parse(std::ifstream(sums));
    io::GgufReader r(gguf);
    ASSERT_EQ(theirs.size(), r.tensors().size());
    std::map<std::string, std::pair<int, int>> by_type;  // type -> (identical, total)
    for (const io::GgufTensorInfo& t : r.tensors()) {
        const nlohmann::json& want = theirs.at(t.name);
        at::Tensor ours = r.dequantize(t.name);
        EXPECT_EQ(want.at("type").get<std::string>(), ggml_type_name(t.type)) << t.name;
        EXPECT_EQ(want.at("n").get<int64_t>(), ours.numel()) << t.name;
        const bool same = std::to_string(qlora::test::float_bits_checksum(ours)) ==
                          want.at("checksum").get<std::string>();
        EXPECT_TRUE(same) << t.name << " (" << ggml_type_name(t.type) << ")";
        auto& [identical, total] = by_type[ggml_type_name(t.type)];
        identical += same ? 1 : 0;
        ++total;
    }
    std::cout << "[ measured ] SmolLM2 tensors identical to gguf.quants.dequantize:";
    for (const auto& [type, counts] : by_type)
        std::cout << " " << type << " " << counts.first << "/" << counts.second;
    std::cout << "\n";
    EXPECT_EQ(by_type["Q4_1"].second,
              210);  // the file's mix: Q4_1 linears, a Q8_0 embedding, F32 norms
}

TEST(GgmlDequant, WrongSizesAndTypesAreErrors) {
    using qlora::test::error_of;
    std::vector<uint8_t> bytes(sizeof(BlockQ4_K));
    EXPECT_EQ(error_of([&] { ggml_decode(bytes.data(), 144, GgmlType::kQ4_K, {128}, "w"); }),
              "w: rows of 128 elements are not whole Q4_K blocks of 256");
    EXPECT_EQ(error_of([&] { ggml_decode(bytes.data(), 143, GgmlType::kQ4_K, {256}, "w"); }),
              "w: Q4_K [256] needs 144 bytes, got 143");
    EXPECT_EQ(error_of([&] {
                  ggml_decode(bytes.data(), 136, GgmlType::kIQ4_XS, {256}, "blk.1.ffn_up.weight");
              }),
              "blk.1.ffn_up.weight: ggml type IQ4_XS is not supported (we decode " +
                  ggml_decodable_type_names() + ")");
    EXPECT_EQ(ggml_decodable_type_names(),
              "F32, F16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, BF16");
    EXPECT_EQ(ggml_type_traits(4), nullptr);  // retired Q4_2
    EXPECT_STREQ(ggml_type_traits(39)->name, "MXFP4");
}

}  // namespace
}  // namespace qlora::quant
