// PEFT adapter folders against PEFT itself (setup venv): PEFT loads what we write and merges it to
// the weights we expect (orientation of A/B, PEFT names, alpha/r scaling); we read what PEFT
// writes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "io/safetensors.h"
#include "lora/peft_adapter.h"
#include "support/test_support.h"

namespace qlora::exporting {
namespace {

using qlora::test::python;

using qlora::test::error_of;

const char* kTargets[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                          "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                          "mlp.down_proj"};

TEST(PeftAdapter, PeftLoadsOursAndMergesToOurWeights) {
    const std::string base = qlora::test::shared_data("stories260K/hf");
    const std::string dir = qlora::test::scratch_dir("peft_ours");
    io::SafetensorsFolder model(base);
    lora::PeftAdapter adapter;
    adapter.config.r = 4;
    adapter.config.lora_alpha = 8;
    adapter.config.lora_dropout = 0.05;
    adapter.config.target_modules = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                     "gate_proj", "up_proj", "down_proj"};
    adapter.config.base_model_name_or_path = base;
    at::manual_seed(1);
    std::vector<std::pair<std::string, at::Tensor>> merged;
    for (int layer = 0; layer < 5; ++layer) {
        for (const char* target : kTargets) {
            const std::string module = "model.layers." + std::to_string(layer) + "." + target;
            at::Tensor w = model.load(module + ".weight");
            at::Tensor a = at::randn({4, w.size(1)}) * 0.1;
            at::Tensor b = at::randn({w.size(0), 4}) * 0.1;  // nonzero, so the merge shows
            adapter.tensors[lora::lora_name(module, 'A')] = a;
            adapter.tensors[lora::lora_name(module, 'B')] = b;
            merged.emplace_back(module + ".weight", w + adapter.config.scale() * at::matmul(b, a));
        }
    }
    EXPECT_DOUBLE_EQ(adapter.config.scale(), 2.0);
    lora::save_peft_adapter(dir, adapter);
    io::save_safetensors(dir + "/../peft_ours_expected.safetensors", merged);

    lora::PeftAdapter back = lora::load_peft_adapter(dir);
    EXPECT_EQ(back.tensors.size(), 70u);
    EXPECT_EQ(back.config.r, 4);
    EXPECT_EQ(back.config.lora_alpha, 8);
    for (const auto& [name, t] : adapter.tensors)
        EXPECT_TRUE(at::equal(t, back.tensors.at(name))) << name;

    auto r = qlora::test::run_command(python() + " " + QLORA_SOURCE_DIR +
                                      "/scripts/check_peft_adapter.py verify " + dir + " " + base +
                                      " " + dir + "/../peft_ours_expected.safetensors");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("merged 35 weights equal to ours"), std::string::npos) << r.output;
}

TEST(PeftAdapter, WeReadWhatPeftSaves) {
    const std::string base = qlora::test::shared_data("stories260K/hf");
    const std::string dir = qlora::test::scratch_dir("peft_theirs");
    auto r = qlora::test::run_command(python() + " " + QLORA_SOURCE_DIR +
                                      "/scripts/check_peft_adapter.py make " + dir + " " + base);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    lora::PeftAdapter a = lora::load_peft_adapter(dir);
    EXPECT_EQ(a.config.r, 4);
    EXPECT_EQ(a.config.lora_alpha, 8);
    EXPECT_NEAR(a.config.lora_dropout, 0.1, 1e-12);
    EXPECT_EQ(a.config.target_modules.size(), 2u);
    EXPECT_EQ(a.tensors.size(), 5u * 2 * 2);
    at::Tensor qa = a.tensors.at("base_model.model.model.layers.2.self_attn.q_proj.lora_A.weight");
    at::Tensor vb = a.tensors.at("base_model.model.model.layers.2.self_attn.v_proj.lora_B.weight");
    EXPECT_EQ(qa.sizes(), (at::IntArrayRef{4, 64}));
    EXPECT_EQ(vb.sizes(), (at::IntArrayRef{32, 4}));  // 4 kv heads x head_dim 8
    EXPECT_GT(vb.abs().max().item<float>(), 0.0f);
}

TEST(PeftAdapter, BadAdaptersAreClearErrors) {
    const std::string dir = qlora::test::scratch_dir("peft_bad");
    EXPECT_EQ(error_of([&] { lora::load_peft_adapter(dir); }),
              dir + "/adapter_config.json: cannot open (expected a PEFT LoRA adapter folder)");
    lora::PeftAdapter adapter;
    adapter.config.r = 4;
    adapter.tensors[lora::lora_name("model.layers.0.self_attn.q_proj", 'A')] = at::ones({4, 8});
    adapter.tensors[lora::lora_name("model.layers.0.self_attn.q_proj", 'B')] = at::ones({8, 2});
    lora::save_peft_adapter(dir, adapter);
    EXPECT_NE(
        error_of([&] { lora::load_peft_adapter(dir); })
            .find("'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight' has rank 2 but "
                  "adapter_config.json says r=4"),
        std::string::npos);
    adapter.tensors.erase(lora::lora_name("model.layers.0.self_attn.q_proj", 'B'));
    lora::save_peft_adapter(dir, adapter);
    EXPECT_NE(
        error_of([&] { lora::load_peft_adapter(dir); }).find("has only one of lora_A / lora_B"),
        std::string::npos);
    adapter.tensors[lora::lora_name("model.layers.0.self_attn.q_proj", 'B')] =
        at::full({8, 4}, NAN);
    EXPECT_NE(error_of([&] { lora::save_peft_adapter(dir, adapter); }).find("holds NaN or Inf"),
              std::string::npos);
}

}  // namespace
}  // namespace qlora::exporting
