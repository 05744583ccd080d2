// The Hugging Face exports on the tiny fixture: what each format writes (dtypes, config.json,
// tokenizer files, shards + index, the bnb layout), and the output-folder rules (refuse an
// existing one unless overwrite, unwritable parents, nothing left behind by a failed export).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "export/export_fixture.h"
#include "export/export_hf.h"
#include "io/bnb_format.h"

namespace qlora::exporting {
namespace {

namespace fs = std::filesystem;
namespace fx = fixture;
using test::error_of;
using test::tensors_identical;

struct Scene {
    std::string dir, base, adapter;
};

Scene make_scene(const std::string& name) {
    Scene s{test::scratch_dir(name), "", ""};
    s.base = s.dir + "/base";
    s.adapter = s.dir + "/adapter";
    fx::write_tiny_base(s.base);
    fx::write_adapter(s.adapter, fx::tiny_adapter());
    return s;
}

nlohmann::json read_json(const std::string& path) {
    return nlohmann::json::parse(std::ifstream(path));
}

// Every entry of the folder except the expected output: what a failed export might leave.
std::vector<std::string> leftovers(const std::string& dir, const std::set<std::string>& expected) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (!expected.count(e.path().filename().string()))
            out.push_back(e.path().filename().string());
    }
    return out;
}

TEST(ExportHf, Bf16FolderHoldsTheMergedWeightsConfigAndTokenizer) {
    Scene s = make_scene("export_bf16");
    MergedView merged(s.base, s.adapter);
    HfExportSummary summary = export_hf(merged, {s.dir + "/out", ExportFormat::kHfBf16});
    EXPECT_EQ(summary.tensors, 21);
    EXPECT_EQ(summary.merged, 14);
    ASSERT_EQ(summary.files, std::vector<std::string>{s.dir + "/out/model.safetensors"});
    io::SafetensorsFolder out(s.dir + "/out");
    ASSERT_EQ(out.names().size(), 21u);
    for (const std::string& name : merged.names()) {
        EXPECT_TRUE(tensors_identical(merged.tensor(name).to(at::kBFloat16), out.load(name)))
            << name;
    }
    nlohmann::json config = read_json(s.dir + "/out/config.json");
    EXPECT_EQ(config.at("torch_dtype"), "bfloat16");
    EXPECT_FALSE(config.contains("quantization_config"));
    EXPECT_EQ(config.at("hidden_size"), 16);
    EXPECT_TRUE(fs::exists(s.dir + "/out/tokenizer.model"));
    EXPECT_EQ(io::SafetensorsReader(s.dir + "/out/model.safetensors").metadata().at("format"),
              "pt");
}

TEST(ExportHf, Fp16ShardsWithAnIndex) {
    Scene s = make_scene("export_shards");
    MergedView merged(s.base, s.adapter);
    HfExportOptions options{s.dir + "/out", ExportFormat::kHfFp16};
    options.max_shard_bytes = 2048;  // a layer's linears are 512..1024 bytes in fp16
    HfExportSummary summary = export_hf(merged, options);
    ASSERT_GT(summary.files.size(), 3u);
    EXPECT_EQ(summary.files.back(), s.dir + "/out/model.safetensors.index.json");
    EXPECT_TRUE(fs::exists(s.dir + "/out/model-00001-of-" +
                           std::string(5 - std::to_string(summary.files.size() - 1).size(), '0') +
                           std::to_string(summary.files.size() - 1) + ".safetensors"));
    nlohmann::json index = read_json(s.dir + "/out/model.safetensors.index.json");
    EXPECT_EQ(index.at("weight_map").size(), 21u);
    EXPECT_EQ(index.at("metadata").at("total_size").get<uint64_t>(), summary.bytes);
    io::SafetensorsFolder out(s.dir + "/out");
    for (const std::string& name : merged.names()) {
        EXPECT_TRUE(tensors_identical(merged.tensor(name).to(at::kHalf), out.load(name))) << name;
    }
    EXPECT_EQ(read_json(s.dir + "/out/config.json").at("torch_dtype"), "float16");
}

TEST(ExportHf, Nf4IsTheBnbLayoutOfTheRequantizedMergedWeights) {
    Scene s = make_scene("export_nf4");
    MergedView merged(s.base, s.adapter);
    HfExportSummary summary = export_hf(merged, {s.dir + "/out", ExportFormat::kHfNf4});
    io::SafetensorsFolder out(s.dir + "/out");
    ASSERT_EQ(summary.nf4_errors.size(), 14u);
    for (const LayerQuantError& e : summary.nf4_errors) {
        ASSERT_TRUE(io::is_bnb_4bit_weight(out, e.name)) << e.name;
        at::Tensor w = merged.tensor(e.name);
        quant::Quant4Tensor want = quant::Quant4Tensor::quantize(w, {});
        quant::Quant4Tensor got = io::read_bnb_4bit(out, e.name);
        EXPECT_TRUE(tensors_identical(want.packed(), got.packed())) << e.name;
        EXPECT_TRUE(tensors_identical(want.absmax(), got.absmax())) << e.name;
        const double rel =
            (got.dequantize(at::kFloat) - w).norm().item<double>() / w.norm().item<double>();
        EXPECT_NEAR(e.rel_error, rel, 1e-6) << e.name;
        EXPECT_GT(e.rel_error, 0.001) << e.name;
        EXPECT_LT(e.rel_error, 0.2)
            << e.name;  // NF4 at blocksize 64 is about 0.1 on smooth weights
    }
    EXPECT_TRUE(tensors_identical(merged.tensor("lm_head.weight"), out.load("lm_head.weight")));
    nlohmann::json config = read_json(s.dir + "/out/config.json");
    EXPECT_EQ(config.at("quantization_config").at("bnb_4bit_quant_type"), "nf4");
    EXPECT_EQ(config.at("quantization_config").at("bnb_4bit_use_double_quant"), true);
    const std::string report = format_nf4_errors(summary.nf4_errors);
    EXPECT_NE(report.find("14 weights: mean "), std::string::npos) << report;
    EXPECT_NE(report.find("model.layers.1.mlp.down_proj.weight"), std::string::npos) << report;
}

TEST(ExportHf, PeftReSavesTheCheckedAdapter) {
    Scene s = make_scene("export_peft");
    MergedView merged(s.base, s.adapter);
    export_peft(merged, {s.dir + "/out", ExportFormat::kPeft});
    lora::PeftAdapter back = lora::load_peft_adapter(s.dir + "/out");
    EXPECT_EQ(back.config.r, 4);
    EXPECT_EQ(back.config.base_model_name_or_path, s.base);
    ASSERT_EQ(back.tensors.size(), merged.adapter().tensors.size());
    for (const auto& [name, t] : merged.adapter().tensors)
        EXPECT_TRUE(tensors_identical(t, back.tensors.at(name)));
}

TEST(ExportHf, ExistingOutputIsRefusedUnlessOverwrite) {
    Scene s = make_scene("export_overwrite");
    MergedView merged(s.base, s.adapter);
    fs::create_directories(s.dir + "/out");
    std::ofstream(s.dir + "/out/old.txt") << "old";
    EXPECT_EQ(error_of([&] {
                  export_hf(merged, {s.dir + "/out", ExportFormat::kHfBf16});
              }),
              s.dir + "/out already exists; choose another output or pass --overwrite");
    EXPECT_TRUE(fs::exists(s.dir + "/out/old.txt"));
    HfExportOptions options{s.dir + "/out", ExportFormat::kHfBf16};
    options.overwrite = true;
    export_hf(merged, options);
    EXPECT_FALSE(fs::exists(s.dir + "/out/old.txt"));
    EXPECT_TRUE(fs::exists(s.dir + "/out/model.safetensors"));
    EXPECT_EQ(leftovers(s.dir, {"base", "adapter", "out"}), std::vector<std::string>{});
}

TEST(ExportHf, UnwritableParentIsAClearError) {
    Scene s = make_scene("export_parent");
    std::ofstream(s.dir + "/file") << "x";
    EXPECT_EQ(error_of([&] { check_output_path(s.dir + "/file/sub/out", false); }),
              s.dir + "/file/sub/out: cannot create it, " + s.dir + "/file is not a folder");
    EXPECT_EQ(error_of([&] { check_output_path("/proc/qlora-out", false); }),
              "/proc/qlora-out: cannot create it in /proc (No such file or directory)");
    EXPECT_EQ(error_of([&] { check_output_path("/sys/qlora-out", false); }),
              "/sys/qlora-out: cannot create it in /sys (Operation not permitted)");
    EXPECT_EQ(error_of([&] { check_output_path(s.dir + "/new/deeper/out", false); }), "(no error)");
}

TEST(ExportHf, FailedExportLeavesNothingBehind) {
    Scene s = make_scene("export_failed");
    // A NaN in a decoder linear: quantizing it (merge base nf4) fails halfway through the stream.
    io::SafetensorsFolder base(s.base);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const std::string& name : base.names()) {
        at::Tensor t = base.load(name);
        if (name == "model.layers.1.mlp.up_proj.weight") t[0][0] = NAN;
        tensors.emplace_back(name, t);
    }
    io::save_safetensors(s.base + "/model.safetensors", tensors);
    MergedView merged(s.base, s.adapter);
    for (ExportFormat format : {ExportFormat::kHfBf16, ExportFormat::kHfNf4}) {
        EXPECT_NE(error_of([&] {
                      export_hf(merged, {s.dir + "/out", format});
                  }).find("NaN"),
                  std::string::npos);
        EXPECT_EQ(leftovers(s.dir, {"base", "adapter"}), std::vector<std::string>{});
    }
}

TEST(ExportHf, FormatAndShardSizeParsing) {
    EXPECT_EQ(parse_export_format("hf-nf4"), ExportFormat::kHfNf4);
    EXPECT_EQ(export_format_name(ExportFormat::kGgufQ4_0), "gguf-q4_0");
    EXPECT_TRUE(is_gguf(ExportFormat::kGgufF16));
    EXPECT_FALSE(is_gguf(ExportFormat::kPeft));
    EXPECT_EQ(error_of([] { parse_export_format("gguf"); }),
              "--format must be one of peft, hf-bf16, hf-fp16, hf-nf4, hf-int4, gguf-f16, "
              "gguf-q8_0, gguf-q4_0; "
              "got 'gguf'");
    EXPECT_EQ(parse_shard_size("5GB"), 5'000'000'000ULL);
    EXPECT_EQ(parse_shard_size("500MB"), 500'000'000ULL);
    EXPECT_EQ(parse_shard_size("2GiB"), 2ULL << 30);
    EXPECT_EQ(parse_shard_size("1.5kb"), 1500ULL);
    EXPECT_EQ(parse_shard_size("4096"), 4096ULL);
    EXPECT_NE(error_of([] { parse_shard_size("5 TB"); }).find("--max-shard-size must be"),
              std::string::npos);
    EXPECT_NE(error_of([] { parse_shard_size("GB"); }).find("--max-shard-size must be"),
              std::string::npos);
}

}  // namespace
}  // namespace qlora::exporting
