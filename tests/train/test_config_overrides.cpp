// Command-line overrides, the resolved-config round trip, and every shipped recipe in configs/.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "config_test_util.h"
#include "core/error.h"
#include "train/config.h"
#include "train/config_fields.h"

namespace qlora::train {
namespace {

using qlora::test::error_of;
using qlora::test::scratch_dir;
using test::kMinimal;
using test::write_text;

TEST(ConfigOverrides, ApplyAsYamlValues) {
    const std::string dir = scratch_dir("config_overrides");
    const std::string path = write_text(dir, "c.yaml", std::string(kMinimal) + "lora:\n  r: 8\n");
    const TrainConfig c =
        load_config(path, {"lora.r=16", "optim.betas=[0.9, 0.95]", "data.eval_split=0.1",
                           "lora.targets=[q_proj, v_proj]", "data.packing=true",
                           "train.max_steps=100", "train.epochs=null", "output.dir=o"});
    EXPECT_EQ(c.lora.r, 16);
    EXPECT_EQ(c.optim.betas, (std::vector<double>{0.9, 0.95}));
    EXPECT_EQ(c.data.eval_split, 0.1);
    EXPECT_EQ(c.lora.targets, (std::vector<std::string>{"q_proj", "v_proj"}));
    EXPECT_TRUE(c.data.packing);
    EXPECT_EQ(c.train.max_steps, 100);
    EXPECT_FALSE(c.train.epochs.has_value());
    // An override's path is relative to where it was typed: the working directory.
    EXPECT_EQ(c.output.dir, (std::filesystem::current_path() / "o").lexically_normal().string());
}

TEST(ConfigOverrides, BadOverridesNameTheOverride) {
    const std::string dir = scratch_dir("config_overrides_bad");
    const std::string path = write_text(dir, "c.yaml", kMinimal);
    EXPECT_EQ(error_of([&] { load_config(path, {"lora.r=abc"}); }),
              "override 'lora.r=abc': lora.r: expected an integer, found 'abc'");
    EXPECT_EQ(error_of([&] {
                  load_config(path, {"lora.rnak=8", "optim.lr=-1", "lora"});
              }),
              "override 'lora.rnak=8': unknown key 'lora.rnak'; did you mean 'lora.r'?\n"
              "override 'lora': expected SECTION.KEY=VALUE, e.g. optim.lr=1e-4\n"
              "override 'optim.lr=-1': optim.lr: expected a number > 0, found -1");
}

TEST(ConfigResolved, RoundTripsEveryKey) {
    const std::string dir = scratch_dir("config_roundtrip");
    const std::string path =
        write_text(dir, "c.yaml",
                   std::string(kMinimal) +
                       "lora: {r: 8, alpha: 32, dropout: 0.1, targets: [q_proj, k_proj]}\n"
                       "optim: {lr: 1.0e-3, betas: [0.9, 0.95], eps: 1.0e-6, warmup_steps: 7}\n"
                       "eval: {prompts: ['Tell me: a story', \"yes\"], every: 5}\n"
                       "hardware: {memory_limit_gb: 47.5}\n"
                       "train: {max_steps: 60, seed: 7}\n");
    const TrainConfig c = load_config(path);
    const std::string saved = dir + "/run/config.resolved.yaml";
    save_resolved_config(c, saved);
    const TrainConfig back = load_config(saved);
    EXPECT_EQ(back, c);
    EXPECT_EQ(to_yaml(back), to_yaml(c));
    // Every key of the schema is written, defaults included.
    std::ifstream in(saved);
    std::stringstream text;
    text << in.rdbuf();
    for (const ConfigField& f : config_fields()) {
        const std::string leaf = f.key.substr(f.key.find('.') + 1);
        EXPECT_NE(text.str().find("\n  " + leaf + ":"), std::string::npos) << f.key << "\n"
                                                                           << text.str();
    }
    // Defaults alone round-trip too.
    const TrainConfig min = load_config(write_text(dir, "min.yaml", kMinimal));
    save_resolved_config(min, dir + "/min.resolved.yaml");
    EXPECT_EQ(load_config(dir + "/min.resolved.yaml"), min);
}

TEST(ConfigShipped, EveryRecipeInConfigsLoads) {
    const std::filesystem::path configs = std::filesystem::path(QLORA_SOURCE_DIR) / "configs";
    int count = 0;
    for (const auto& entry : std::filesystem::directory_iterator(configs)) {
        if (entry.path().extension() != ".yaml") continue;
        SCOPED_TRACE(entry.path().string());
        TrainConfig c;
        EXPECT_EQ(error_of([&] { c = load_config(entry.path().string()); }), "(no error)");
        ++count;
    }
    EXPECT_GE(count, 4);
}

TEST(ConfigShipped, QuickstartPointsAtSharedData) {
    const std::string path = std::string(QLORA_SOURCE_DIR) + "/configs/quickstart.yaml";
    const TrainConfig c = load_config(path);
    EXPECT_EQ(error_of([&] { check_paths(c); }), "(no error)");
    EXPECT_EQ(c.hardware.device, "cpu");
    EXPECT_EQ(c.lora.r, 8);
}

TEST(ConfigShipped, Llama65bIsTheGuanacoRecipe) {
    const TrainConfig c = load_config(std::string(QLORA_SOURCE_DIR) + "/configs/llama65b.yaml");
    EXPECT_EQ(c.lora.r, 64);
    EXPECT_EQ(c.lora.alpha, 16.0);
    EXPECT_EQ(c.lora.dropout, 0.05);
    EXPECT_EQ(c.optim.lr, 1e-4);
    EXPECT_EQ(c.train.max_steps, 1875);
    EXPECT_EQ(c.train.micro_batch, 1);
    EXPECT_EQ(c.train.grad_accum, 16);
    EXPECT_EQ(c.optim.max_grad_norm, 0.3);
    EXPECT_EQ(c.optim.schedule, optim::ScheduleKind::kConstant);
    EXPECT_EQ(c.optim.warmup_ratio, 0.03);
    EXPECT_EQ(c.data.max_seq_len, 512);
    EXPECT_EQ(c.optim.name, optim::OptimizerKind::kPagedAdamw32bit);
    EXPECT_EQ(c.hardware.memory_limit_gb, 48.0);
}

}  // namespace
}  // namespace qlora::train
