// Our bitsandbytes-4bit folders against the peers: transformers + bitsandbytes (setup venv) load a
// folder qlora-quantize wrote and dequantize it to exactly our values; we read back what we wrote.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "export/quantize_model.h"
#include "io/bnb_format.h"
#include "io/safetensors.h"
#include "model/llama_layout.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using qlora::test::python;

namespace fs = std::filesystem;
using qlora::test::error_of;
using qlora::test::tensors_identical;

TEST(BnbCheckpoint, QuantizeToolOutputLoadsInTransformersWithOurValues) {
    const std::string dir = qlora::test::scratch_dir("bnb_checkpoint");
    const std::string out = dir + "/stories260K-nf4";
    auto r = qlora::test::run_command(qlora::test::tool("qlora-quantize") + " --model " +
                                      qlora::test::shared_data("stories260K/hf") + " --out " + out +
                                      " --device cpu");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("35 of 47 tensors quantized to nf4"), std::string::npos) << r.output;

    // Read back: every quantized weight, dequantized by us, next to the original.
    io::SafetensorsFolder original(qlora::test::shared_data("stories260K/hf"));
    io::SafetensorsFolder written(out);
    std::vector<std::pair<std::string, at::Tensor>> ours;
    for (const std::string& name : original.names()) {
        at::Tensor w = original.load(name);
        if (!model::is_quantized_weight_name(name)) {
            EXPECT_TRUE(tensors_identical(w, written.load(name))) << name;
            continue;
        }
        ASSERT_TRUE(io::is_bnb_4bit_weight(written, name)) << name;
        Quant4Tensor q = io::read_bnb_4bit(written, name);
        Quant4Tensor fresh = Quant4Tensor::quantize(w, {});
        EXPECT_TRUE(tensors_identical(fresh.packed(), q.packed())) << name;
        EXPECT_TRUE(tensors_identical(fresh.absmax(), q.absmax())) << name;
        EXPECT_EQ(fresh.nested_offset(), q.nested_offset()) << name;
        EXPECT_EQ(q.shape(), w.sizes().vec());
        at::Tensor deq = q.dequantize(at::kFloat);
        EXPECT_LT((deq - w).abs().max().item<float>(), w.abs().max().item<float>() * 0.2) << name;
        ours.emplace_back(name, deq);
    }
    ASSERT_EQ(ours.size(), 35u);
    io::save_safetensors(dir + "/ours.safetensors", ours);

    auto check = qlora::test::run_command(python() + " " + QLORA_SOURCE_DIR +
                                          "/scripts/check_bnb_checkpoint.py " + out + " " + dir +
                                          "/ours.safetensors");
    ASSERT_EQ(check.exit_code, 0) << check.output;
    EXPECT_NE(check.output.find("checked 35 quantized linears"), std::string::npos) << check.output;
}

// A corrupted quant_state or mismatched absmax is a clear error naming the file and key.
TEST(BnbCheckpoint, CorruptedStatesAreRejected) {
    const std::string dir = qlora::test::scratch_dir("bnb_corrupt");
    at::Tensor w = at::randn({16, 64});
    Quant4Tensor q = Quant4Tensor::quantize(w, {});
    auto tensors = io::bnb_4bit_tensors(q, "x.weight");
    auto write_variant = [&](const std::string& name, auto mutate) {
        auto copy = tensors;
        mutate(copy);
        fs::create_directories(dir + "/" + name);
        io::save_safetensors(dir + "/" + name + "/model.safetensors", copy);
        return io::SafetensorsFolder(dir + "/" + name);
    };
    auto set_json = [](std::vector<std::pair<std::string, at::Tensor>>& t,
                       const std::string& text) {
        at::Tensor bytes = at::empty({static_cast<int64_t>(text.size())}, at::kByte);
        std::memcpy(bytes.data_ptr<uint8_t>(), text.data(), text.size());
        t.back().second = bytes;
    };
    auto good = write_variant("good", [](auto&) {});
    EXPECT_TRUE(
        tensors_identical(q.dequantize(), io::read_bnb_4bit(good, "x.weight").dequantize()));

    auto bad_json =
        write_variant("bad_json", [&](auto& t) { set_json(t, "{\"quant_type\": \"nf4\", "); });
    EXPECT_NE(error_of([&] {
                  io::read_bnb_4bit(bad_json, "x.weight");
              }).find("x.weight.quant_state.bitsandbytes__nf4: quant_state is not valid JSON"),
              std::string::npos);
    auto no_shape = write_variant("no_shape", [&](auto& t) {
        set_json(t, R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float32"})");
    });
    EXPECT_NE(error_of([&] {
                  io::read_bnb_4bit(no_shape, "x.weight");
              }).find("quant_state: \"shape\" is missing"),
              std::string::npos);
    auto wrong_shape = write_variant("wrong_shape", [&](auto& t) {
        set_json(t,
                 R"({"quant_type": "nf4", "blocksize": 64, "dtype": "float32", "shape": [16, 128],
                        "nested_blocksize": 256, "nested_dtype": "float32", "nested_offset": 0.1})");
    });
    EXPECT_NE(error_of([&] {
                  io::read_bnb_4bit(wrong_shape, "x.weight");
              }).find("x.weight: shape [16, 128] needs 1024 packed bytes, found 512"),
              std::string::npos);
    auto short_absmax =
        write_variant("short_absmax", [&](auto& t) { t[1].second = t[1].second.slice(0, 0, 10); });
    EXPECT_NE(error_of([&] {
                  io::read_bnb_4bit(short_absmax, "x.weight");
              }).find("needs 16 absmax values, found 10"),
              std::string::npos);
    auto type_clash = write_variant("type_clash", [&](auto& t) {
        set_json(
            t, R"({"quant_type": "fp4", "blocksize": 64, "dtype": "float32", "shape": [16, 64]})");
    });
    EXPECT_NE(error_of([&] {
                  io::read_bnb_4bit(type_clash, "x.weight");
              }).find("quant_type \"fp4\" contradicts the key's suffix \"nf4\""),
              std::string::npos);
}

}  // namespace
}  // namespace qlora::quant
