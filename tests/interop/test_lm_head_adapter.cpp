// lora.targets with lm_head end to end (the layout table makes it a LoRA target everywhere):
// qlora-train trains q_proj + lm_head adapters on stories260K (tied embeddings), PEFT loads the
// adapter and its merge_and_unload() gives our merged weights, qlora-export hf-bf16 unties the head
// and scores what qlora-eval --adapter scores.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "export/merge.h"
#include "io/safetensors.h"
#include "lora/adapter_metadata.h"
#include "support/test_support.h"

namespace qlora {
namespace {

std::string write_config(const std::string& dir) {
    const std::string path = dir + "/train.yaml";
    std::ofstream out(path);
    out << "model: {path: " << test::shared_data("stories260K/hf") << "}\n"
        << "quant: {enabled: false}\n"
        << "lora: {r: 4, alpha: 8, dropout: 0.0, targets: [q_proj, lm_head]}\n"
        << "data: {train: " << test::shared_data("instruct/alpaca_tiny_100.json")
        << ", format: alpaca, template: alpaca, max_seq_len: 256}\n"
        << "train: {max_steps: 6, micro_batch: 2, grad_accum: 1, seed: 3}\n"
        << "optim: {name: adamw_32bit, lr: 1.0e-2, warmup_steps: 0}\n"
        << "eval: {every: 0}\n"
        << "output: {dir: " << dir << "/run, save_every: 0}\n"
        << "hardware: {device: cpu}\n";
    return path;
}

double eval_loss(const std::string& args) {
    auto r = test::run_command("{ " + test::tool("qlora-eval") + " " + args +
                               " --device cpu --threads 1 2>/dev/null; }");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(r.output).at("loss").get<double>();
}

TEST(LmHeadAdapter, TrainedLoadedByPeftAndMergedByExport) {
    const std::string dir = test::scratch_dir("lm_head_adapter");
    const std::string base = test::shared_data("stories260K/hf");
    auto train = test::run_command(test::tool("qlora-train") + " " + write_config(dir) + " 2>&1");
    ASSERT_EQ(train.exit_code, 0) << train.output;
    const std::string adapter = dir + "/run/adapter";
    const lora::PeftAdapter a = lora::load_peft_adapter(adapter);
    ASSERT_EQ(a.tensors.count("base_model.model.lm_head.lora_B.weight"), 1u);
    EXPECT_GT(a.tensors.at("base_model.model.lm_head.lora_B.weight").abs().max().item<float>(),
              0.0f);
    const auto metadata = lora::load_adapter_metadata(adapter);
    ASSERT_TRUE(metadata.has_value());
    EXPECT_FALSE(metadata->base_quantized);

    // PEFT's merge of our adapter equals our merged view (W + s·B·A over the dense base).
    exporting::MergedView merged(base, adapter);
    std::vector<std::pair<std::string, at::Tensor>> expected;
    expected.emplace_back("lm_head.weight", merged.tensor("lm_head.weight"));
    for (int l = 0; l < 5; ++l) {
        const std::string q = "model.layers." + std::to_string(l) + ".self_attn.q_proj.weight";
        expected.emplace_back(q, merged.tensor(q));
    }
    io::save_safetensors(dir + "/expected.safetensors", expected);
    auto peft = test::run_command(test::python() + " " + QLORA_SOURCE_DIR +
                                  "/scripts/check_peft_adapter.py verify " + adapter + " " + base +
                                  " " + dir + "/expected.safetensors 2>&1");
    ASSERT_EQ(peft.exit_code, 0) << peft.output;
    EXPECT_NE(peft.output.find("merged 6 weights equal to ours"), std::string::npos) << peft.output;

    // The merged export unties the head (embeddings unchanged) and scores like the adapter.
    auto out = test::run_command(test::tool("qlora-export") + " --base " + base + " --adapter " +
                                 adapter + " --out " + dir + "/merged --format hf-bf16 2>&1");
    ASSERT_EQ(out.exit_code, 0) << out.output;
    io::SafetensorsFolder exported(dir + "/merged");
    ASSERT_TRUE(exported.contains("lm_head.weight"));
    EXPECT_TRUE(test::tensors_identical(expected[0].second.to(at::kBFloat16),
                                        exported.load("lm_head.weight").to(at::kBFloat16)));
    const std::string data =
        " --data " + test::shared_data("text/tinystories_sample_cs336.txt") + " --max-seq-len 128";
    const double with_adapter = eval_loss("--model " + base + " --adapter " + adapter + data);
    EXPECT_NEAR(eval_loss("--model " + dir + "/merged" + data), with_adapter,
                2e-2);  // bf16 weights
    EXPECT_GT(std::abs(eval_loss("--model " + base + data) - with_adapter),
              1e-3);  // the head adapter acts
}

}  // namespace
}  // namespace qlora
