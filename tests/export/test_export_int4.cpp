// hf-int4: the stories260K base merged with an adapter, exported with the run's int4 QAT group size
// and loaded back by load_llama: every decoder linear equals fake_quantize_weight(merged W) bit for
// bit, everything else equals the merged tensor; the folder layout and config; sharding; errors
// for bad group sizes and malformed int4 tensors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "export/export_fixture.h"
#include "export/export_hf.h"
#include "export/quantize_model.h"
#include "lora/adapter_metadata.h"
#include "model/llama_layout.h"
#include "model/llama_loader.h"
#include "quant/fake_quant.h"
#include "quant/int4_format.h"
#include "train/config.h"

namespace qlora::exporting {
namespace {

namespace fs = std::filesystem;
namespace fx = fixture;
using test::error_of;
using test::tensors_identical;

const char* kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                          "mlp.down_proj"};

// stories260K: hidden 64, intermediate 172 (172 % 32 != 0: short last groups), 8 heads of 8, 4 KV.
std::vector<int64_t> stories_shape(const std::string& linear) {
    if (linear == "self_attn.q_proj" || linear == "self_attn.o_proj") return {64, 64};
    if (linear == "self_attn.k_proj" || linear == "self_attn.v_proj") return {32, 64};
    if (linear == "mlp.down_proj") return {64, 172};
    return {172, 64};
}

// An adapter as qlora-train leaves it: run/adapter with its qlora_adapter.json (int4 QAT over a
// dense base).
std::string write_stories_run(const std::string& dir, int64_t group) {
    lora::PeftAdapter adapter;
    adapter.config.r = 4;
    adapter.config.lora_alpha = 8;
    double seed = 10.0;
    for (const char* linear : kLinears) {
        const std::string l = linear;
        adapter.config.target_modules.push_back(l.substr(l.find('.') + 1));
        const std::vector<int64_t> shape = stories_shape(l);
        for (int layer = 0; layer < 5; ++layer) {
            const std::string module = "model.layers." + std::to_string(layer) + "." + l;
            adapter.tensors[lora::lora_name(module, 'A')] = fx::formula({4, shape[1]}, seed += 1);
            adapter.tensors[lora::lora_name(module, 'B')] =
                fx::formula({shape[0], 4}, seed += 1).mul(0.5);
        }
    }
    fx::write_adapter(dir + "/run/adapter", adapter);
    lora::AdapterMetadata trained;
    trained.base_quantized = false;
    trained.qat =
        lora::QatOptions{quant::QatScheme::int4(group), false, lora::QatMode::kMergeAware};
    lora::save_adapter_metadata(dir + "/run/adapter", trained);
    return dir + "/run/adapter";
}

// The exported folder loaded back equals the QAT forward's weights: Q(W0 + s·B·A) per linear.
void expect_loaded_equals_fake_quant(const MergedView& merged, const std::string& out,
                                     int64_t group) {
    model::Llama m = model::load_llama(out);
    int64_t checked = 0;
    for (model::Linear& lin : m->linears()) {
        const std::string name = lin->name() + ".weight";
        if (!model::is_quantized_weight_name(name)) continue;
        at::Tensor expect =
            quant::fake_quantize_weight(merged.tensor(name), quant::QatScheme::int4(group));
        EXPECT_TRUE(tensors_identical(expect, lin->weight())) << name << ", group " << group;
        ++checked;
    }
    EXPECT_EQ(checked, 7 * merged.config().num_hidden_layers);
    EXPECT_TRUE(tensors_identical(merged.tensor("model.embed_tokens.weight"), m->embed_weight));
    EXPECT_TRUE(tensors_identical(merged.tensor("model.norm.weight"), m->norm->weight));
}

TEST(ExportInt4, Stories260KLoadsBackAsTheFakeQuantizedMerge) {
    const std::string dir = test::scratch_dir("export_int4_stories");
    const std::string adapter = write_stories_run(dir, 64);
    std::string source;
    const std::optional<int64_t> trained = find_qat_int4_group_size(adapter, &source);
    ASSERT_TRUE(trained.has_value());
    EXPECT_EQ(*trained, 64);
    EXPECT_EQ(source, dir + "/run/adapter/qlora_adapter.json");
    MergedView merged(test::shared_data("stories260K/hf"), adapter);
    ASSERT_EQ(merged.merge_base(), MergeBase::kFp);  // quant.enabled false: W0 + s·B·A
    EXPECT_EQ(merged.quant().source, source);

    HfExportOptions options{dir + "/out", ExportFormat::kHfInt4};
    options.int4_group_size = 64;
    HfExportSummary summary = export_hf(merged, options);
    EXPECT_EQ(summary.merged, 35);
    EXPECT_EQ(summary.nf4_errors.size(), 35u);
    for (const auto& e : summary.nf4_errors) EXPECT_LT(e.rel_error, 0.25) << e.name;

    io::SafetensorsFolder files(dir + "/out");
    const std::string down = "model.layers.4.mlp.down_proj";
    EXPECT_FALSE(files.contains(down + ".weight"));
    EXPECT_EQ(files.info(down + ".qweight").shape, (std::vector<int64_t>{64, 86}));
    EXPECT_EQ(files.info(down + ".scales").shape, (std::vector<int64_t>{64, 3}));
    EXPECT_EQ(files.load(down + ".qweight").scalar_type(), at::kByte);
    EXPECT_EQ(files.load(down + ".scales").scalar_type(), at::kHalf);
    EXPECT_EQ(files.load("model.embed_tokens.weight").scalar_type(), at::kFloat);
    nlohmann::json config = nlohmann::json::parse(std::ifstream(dir + "/out/config.json"));
    EXPECT_EQ(config.at("quantization_config"), (nlohmann::json{{"quant_method", "qlora_int4"},
                                                                {"bits", 4},
                                                                {"group_size", 64},
                                                                {"scheme", "symmetric_q4_0"},
                                                                {"packing", "low_nibble_first"}}));
    EXPECT_TRUE(fs::exists(dir + "/out/tokenizer.model"));
    expect_loaded_equals_fake_quant(merged, dir + "/out", 64);
}

TEST(ExportInt4, EveryGroupSizeAndShards) {
    const std::string dir = test::scratch_dir("export_int4_groups");
    const std::string adapter = write_stories_run(dir, 32);
    MergedView merged(test::shared_data("stories260K/hf"), adapter);
    ASSERT_EQ(merged.merge_base(), MergeBase::kFp);
    for (int64_t group : {32, 128, 256}) {
        const std::string out = dir + "/out" + std::to_string(group);
        HfExportOptions options{out, ExportFormat::kHfInt4};
        options.int4_group_size = group;
        options.max_shard_bytes = 100'000;  // several shards + index
        HfExportSummary summary = export_hf(merged, options);
        EXPECT_GT(summary.files.size(), 1u);
        EXPECT_TRUE(fs::exists(out + "/model.safetensors.index.json"));
        expect_loaded_equals_fake_quant(merged, out, group);
    }
}

TEST(ExportInt4, RejectsBadGroupSizesBeforeWriting) {
    const std::string dir = test::scratch_dir("export_int4_bad_group");
    fx::write_tiny_base(dir + "/base");
    fx::write_adapter(dir + "/adapter", fx::tiny_adapter());
    MergedView merged(dir + "/base", dir + "/adapter");
    EXPECT_FALSE(find_qat_int4_group_size(dir + "/adapter").has_value());  // no run config
    for (int64_t group : {0, 16, 48, 512}) {
        HfExportOptions options{dir + "/out", ExportFormat::kHfInt4};
        options.int4_group_size = group;
        EXPECT_NE(
            error_of([&] { export_hf(merged, options); }).find("group_size must be a power of two"),
            std::string::npos)
            << group;
        EXPECT_FALSE(fs::exists(dir + "/out"));
    }
    EXPECT_EQ(parse_export_format("hf-int4"), ExportFormat::kHfInt4);
    EXPECT_EQ(export_format_name(ExportFormat::kHfInt4), "hf-int4");
}

// Rewrites one tensor of the exported tiny folder (a single model.safetensors).
void edit_export(const std::string& out,
                 const std::function<void(std::vector<std::pair<std::string, at::Tensor>>&)>& f) {
    io::SafetensorsFolder files(out);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const std::string& name : files.names()) tensors.emplace_back(name, files.load(name));
    f(tensors);
    io::save_safetensors(out + "/model.safetensors", tensors);
}

TEST(ExportInt4, MalformedInt4TensorsAreNamedWhenLoading) {
    const std::string dir = test::scratch_dir("export_int4_malformed");
    fx::write_tiny_base(dir + "/base");
    fx::write_adapter(dir + "/adapter", fx::tiny_adapter());
    MergedView merged(dir + "/base", dir + "/adapter");
    const std::string q = "model.layers.1.self_attn.q_proj";
    auto fresh = [&](const std::string& name) {
        const std::string out = dir + "/" + name;
        export_hf(merged, {out, ExportFormat::kHfInt4});
        return out;
    };
    // The tiny base loads back exactly too (group 32 > in = 16: one short group per row).
    expect_loaded_equals_fake_quant(merged, fresh("ok"), 32);

    std::string out = fresh("scales");
    edit_export(out, [&](auto& ts) {
        for (auto& [n, t] : ts)
            if (n == q + ".scales") t = at::ones({16, 2}, at::kHalf);
    });
    std::string e = error_of([&] { model::load_llama(out); });
    EXPECT_NE(e.find(q + ".scales: expected shape [16, 1]"), std::string::npos) << e;
    EXPECT_NE(e.find("found [16, 2]"), std::string::npos) << e;

    out = fresh("qweight");
    edit_export(out, [&](auto& ts) {
        for (auto& [n, t] : ts)
            if (n == q + ".qweight") t = t.narrow(1, 0, 7).contiguous();
    });
    e = error_of([&] { model::load_llama(out); });
    EXPECT_NE(e.find(q + ".qweight: expected shape [16, 8]"), std::string::npos) << e;
    EXPECT_NE(e.find("found [16, 7]"), std::string::npos) << e;

    out = fresh("rows");
    edit_export(out, [&](auto& ts) {
        for (auto& [n, t] : ts)
            if (n == q + ".qweight") t = t.narrow(0, 0, 15).contiguous();
    });
    e = error_of([&] { model::load_llama(out); });
    EXPECT_NE(e.find("'" + q + ".qweight' has shape [15, 8], expected [16, 8]"), std::string::npos)
        << e;

    out = fresh("dtype");
    edit_export(out, [&](auto& ts) {
        for (auto& [n, t] : ts)
            if (n == q + ".scales") t = t.to(at::kFloat);
    });
    e = error_of([&] { model::load_llama(out); });
    EXPECT_NE(e.find(q + ".scales: expected float16"), std::string::npos) << e;

    out = fresh("missing");
    edit_export(out, [&](auto& ts) {
        std::erase_if(ts, [&](const auto& p) { return p.first == q + ".scales"; });
    });
    e = error_of([&] { model::load_llama(out); });
    EXPECT_NE(e.find("has no '" + q + ".scales' beside it"), std::string::npos) << e;

    out = fresh("config");
    nlohmann::json config = nlohmann::json::parse(std::ifstream(out + "/config.json"));
    config["quantization_config"]["bits"] = 3;
    std::ofstream(out + "/config.json") << config.dump(2);
    e = error_of([&] { model::load_llama(out); });
    EXPECT_NE(e.find("'bits' expected 4, found 3"), std::string::npos) << e;
}

}  // namespace
}  // namespace qlora::exporting
