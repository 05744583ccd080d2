// Config loading: paper defaults, exact validation messages with line:column, every problem at
// once.
#include <gtest/gtest.h>

#include <filesystem>

#include "config_test_util.h"
#include "core/error.h"
#include "core/limits.h"
#include "train/config.h"

namespace qlora::train {
namespace {

using qlora::test::error_of;
using qlora::test::scratch_dir;
using test::kMinimal;
using test::write_text;

TEST(Config, DefaultsAreTheQloraPaperRecipe) {
    const std::string dir = scratch_dir("config_defaults");
    const TrainConfig c = load_config(write_text(dir, "min.yaml", kMinimal));
    EXPECT_EQ(c.model.dtype, "auto");
    EXPECT_TRUE(c.quant.enabled);
    EXPECT_EQ(c.quant.type, quant::QuantType::kNF4);
    EXPECT_EQ(c.quant.blocksize, 64);
    EXPECT_TRUE(c.quant.double_quant);
    EXPECT_EQ(c.lora.r, 64);
    EXPECT_EQ(c.lora.alpha, 16.0);
    EXPECT_EQ(c.lora.dropout, 0.05);
    EXPECT_EQ(c.lora.targets, std::vector<std::string>{"all-linear"});
    EXPECT_FALSE(c.data.train_on_inputs);
    EXPECT_EQ(c.data.max_seq_len, 512);
    EXPECT_EQ(c.data.on_bad_record, data::OnBadRecord::kFatal);
    EXPECT_EQ(c.train.epochs, 1);
    EXPECT_FALSE(c.train.max_steps.has_value());
    EXPECT_EQ(c.train.micro_batch, 1);
    EXPECT_EQ(c.train.grad_accum, 16);
    EXPECT_EQ(c.train.seed, 42u);
    EXPECT_EQ(c.optim.name, optim::OptimizerKind::kPagedAdamw32bit);
    EXPECT_EQ(c.optim.lr, 2e-4);
    EXPECT_EQ(c.optim.betas, (std::vector<double>{0.9, 0.999}));
    EXPECT_EQ(c.optim.max_grad_norm, 0.3);
    EXPECT_EQ(c.optim.schedule, optim::ScheduleKind::kConstant);
    EXPECT_EQ(c.optim.warmup_ratio, 0.03);
    EXPECT_FALSE(c.optim.warmup_steps.has_value());
    EXPECT_FALSE(c.qat.enabled);
    EXPECT_EQ(c.hardware.device, "auto");
    EXPECT_EQ(c.output.keep, 3);
}

TEST(Config, RelativePathsResolveAgainstTheConfigFolder) {
    const std::string dir = scratch_dir("config_paths");
    std::filesystem::create_directories(dir + "/sub");
    const TrainConfig c = load_config(
        write_text(dir + "/sub", "c.yaml", std::string(kMinimal) + "output:\n  dir: ../out\n"));
    const std::filesystem::path base = std::filesystem::absolute(dir);
    EXPECT_EQ(c.model.path, (base / "sub/model").lexically_normal().string());
    EXPECT_EQ(c.data.train, (base / "sub/train.jsonl").lexically_normal().string());
    EXPECT_EQ(c.output.dir, (base / "out").lexically_normal().string());
}

TEST(Config, UnknownKeySuggestsTheClosest) {
    const std::string dir = scratch_dir("config_unknown");
    const std::string path =
        write_text(dir, "x.yaml", std::string(kMinimal) + "lora:\n  rnak: 8\n");
    EXPECT_EQ(error_of([&] { load_config(path); }),
              path + ":6:3: unknown key 'lora.rnak'; did you mean 'lora.r'?");
    const std::string sec = write_text(dir, "y.yaml", std::string(kMinimal) + "optimm:\n  lr: 1\n");
    EXPECT_EQ(error_of([&] { load_config(sec); }),
              sec + ":5:1: unknown key 'optimm'; did you mean 'optim'?");
    const std::string far =
        write_text(dir, "z.yaml", std::string(kMinimal) + "lora:\n  qqqqqqqqqqqq: 1\n");
    EXPECT_EQ(error_of([&] { load_config(far); }), far + ":6:3: unknown key 'lora.qqqqqqqqqqqq'");
}

// Fuzz finding (fuzz_train_config): a key of a whole line's characters was echoed whole, a line
// over limits::kMaxErrorChars; keys and overrides are echoed cut, and so is every problem line.
TEST(Config, LongUnknownKeysAreEchoedCut) {
    const std::string dir = scratch_dir("config_unknown_long");
    const std::string key(1000, 'k');  // YAML keeps implicit keys under 1024 characters
    const std::string path =
        write_text(dir, "x.yaml", std::string(kMinimal) + "lora:\n  " + key + ": 8\n");
    const std::string e = error_of([&] { load_config(path, {"lora." + key + "=1"}); });
    size_t start = 0, lines = 0;
    for (size_t nl = 0; nl != std::string::npos; start = nl + 1, ++lines) {
        nl = e.find('\n', start);
        EXPECT_LE((nl == std::string::npos ? e.size() : nl) - start, limits::kMaxErrorChars) << e;
    }
    EXPECT_EQ(lines, 2u) << e;
    EXPECT_NE(e.find(path + ":6:3: unknown key 'lora.kkk"), std::string::npos) << e;
    EXPECT_NE(e.find("override 'lora.kkk"), std::string::npos) << e;
    EXPECT_NE(e.find("chars cut]"), std::string::npos) << e;
}
TEST(Config, WrongTypeSaysExpectedAndFound) {
    const std::string dir = scratch_dir("config_type");
    const std::string path =
        write_text(dir, "x.yaml", std::string(kMinimal) + "lora:\n  r: abc\n  targets: {a: 1}\n");
    const std::string msg = error_of([&] { load_config(path); });
    EXPECT_NE(msg.find(path + ":6:6: lora.r: expected an integer, found 'abc'"), std::string::npos)
        << msg;
    EXPECT_NE(msg.find(path + ":7:12: lora.targets: expected a list, found a mapping"),
              std::string::npos)
        << msg;
}

TEST(Config, BadValueSaysExpectedAndFound) {
    const std::string dir = scratch_dir("config_value");
    const std::string path = write_text(dir, "x.yaml",
                                        std::string(kMinimal) +
                                            "lora:\n  dropout: 1.5\n"
                                            "optim:\n  name: sgd\n");
    // A name outside a vocabulary is a reading problem (the YAML codec parses enums), reported
    // before the range checks that run on the values read.
    EXPECT_EQ(error_of([&] { load_config(path); }),
              path +
                  ":8:9: optim.name: expected one of adamw_32bit, adamw_torch, paged_adamw_32bit, "
                  "adamw_8bit, paged_adamw_8bit, found 'sgd'\n" +
                  path + ":6:12: lora.dropout: expected a number in [0, 1), found 1.5");
}

TEST(Config, EveryProblemIsReportedAtOnce) {
    const std::string dir = scratch_dir("config_many");
    const std::string path = write_text(dir, "x.yaml",
                                        "model:\n"
                                        "  path: m\n"
                                        "  dtyp: bf16\n"
                                        "data:\n"
                                        "  train: t.jsonl\n"
                                        "  format: csv\n"
                                        "train:\n"
                                        "  micro_batch: two\n"
                                        "  grad_accum: 0\n"
                                        "hardware:\n"
                                        "  device: tpu\n"
                                        "  parallel: ring\n");
    EXPECT_EQ(error_of([&] { load_config(path); }),
              path + ":3:3: unknown key 'model.dtyp'; did you mean 'model.dtype'?\n" + path +
                  ":6:11: data.format: expected one of text, alpaca, chat, found 'csv'\n" + path +
                  ":8:16: train.micro_batch: expected an integer, found 'two'\n" + path +
                  ":12:13: hardware.parallel: expected one of auto, data, shard_base, found "
                  "'ring'\n" +
                  path + ":9:15: train.grad_accum: expected an integer > 0, found 0\n" + path +
                  ":11:11: hardware.device: expected auto, cpu, cuda or cuda:N, found 'tpu'");
}

TEST(Config, MissingRequiredKeysAndFile) {
    const std::string dir = scratch_dir("config_missing");
    const std::string path = write_text(dir, "x.yaml", "lora:\n  r: 8\n");
    EXPECT_EQ(error_of([&] { load_config(path); }),
              path +
                  ": model.path: missing; expected a Hugging Face model folder or a .gguf file\n" +
                  path + ": data.train: missing; expected a .jsonl, .json or .txt file");
    EXPECT_EQ(error_of([&] { load_config(dir + "/nope.yaml"); }),
              "config file not found: " + dir + "/nope.yaml");
    const std::string bad = write_text(dir, "bad.yaml", "model:\n  path: [unclosed\n");
    const std::string syntax = error_of([&] { load_config(bad); });
    EXPECT_EQ(syntax.rfind(bad + ":", 0), 0u) << syntax;
    EXPECT_NE(syntax.find(": YAML syntax error: "), std::string::npos) << syntax;
}

TEST(Config, ExclusiveKeys) {
    const std::string dir = scratch_dir("config_exclusive");
    const TrainConfig steps =
        load_config(write_text(dir, "a.yaml",
                               std::string(kMinimal) + "optim:\n  warmup_steps: 10\n"
                                                       "train:\n  max_steps: 5\n"));
    EXPECT_EQ(steps.optim.warmup_steps, 10);
    EXPECT_FALSE(
        steps.optim.warmup_ratio.has_value());  // the default ratio yields to explicit steps
    EXPECT_EQ(steps.train.max_steps, 5);
    EXPECT_FALSE(steps.train.epochs.has_value());
    const std::string both = write_text(dir, "b.yaml",
                                        std::string(kMinimal) +
                                            "optim:\n  warmup_steps: 10\n  warmup_ratio: 0.1\n"
                                            "train:\n  max_steps: 5\n  epochs: 2\n");
    EXPECT_EQ(
        error_of([&] { load_config(both); }),
        both +
            ":10:11: train.epochs: exclusive with train.max_steps (found both); set the other to "
            "null\n" +
            both +
            ":6:17: optim.warmup_steps: exclusive with optim.warmup_ratio (found both); set the "
            "other to null");
}

// train.offload_activations and hardware.parallel: shard_base work on checkpointed layers (and
// shard_base on a 4-bit base): refused with the key and what it needs, all at once.
TEST(Config, OffloadAndShardBaseNeedCheckpointingAndA4BitBase) {
    const std::string dir = scratch_dir("config_shard_base");
    const std::string ok = write_text(dir, "ok.yaml",
                                      std::string(kMinimal) +
                                          "train:\n  offload_activations: true\n"
                                          "hardware:\n  parallel: shard_base\n");
    const TrainConfig c = load_config(ok);
    EXPECT_TRUE(c.train.offload_activations);
    EXPECT_EQ(c.hardware.parallel, dist::ParallelSetting::kShardBase);
    const std::string bad = write_text(dir, "bad.yaml",
                                       std::string(kMinimal) +
                                           "quant:\n  enabled: false\n"
                                           "train:\n  gradient_checkpointing: false\n"
                                           "  offload_activations: true\n"
                                           "hardware:\n  parallel: shard_base\n");
    EXPECT_EQ(error_of([&] { load_config(bad); }),
              bad +
                  ":9:24: train.offload_activations: offloads the checkpointed layer inputs, so it "
                  "needs train.gradient_checkpointing: true, found false\n" +
                  bad +
                  ":11:13: hardware.parallel: shard_base needs train.gradient_checkpointing: true "
                  "(without it autograd keeps every gathered layer until the backward: the whole "
                  "base), found false\n" +
                  bad +
                  ":11:13: hardware.parallel: shard_base splits the 4-bit base: it needs "
                  "quant.enabled: true, found false");
}

TEST(Config, CheckPathsListsWhatIsMissing) {
    const std::string dir = scratch_dir("config_check_paths");
    const TrainConfig c = load_config(write_text(dir, "c.yaml", kMinimal));
    const std::string base = std::filesystem::absolute(dir).lexically_normal().string();
    EXPECT_EQ(error_of([&] { check_paths(c); }), "model.path: folder not found: " + base +
                                                     "/model\ndata.train: file not found: " + base +
                                                     "/train.jsonl");
    std::filesystem::create_directories(dir + "/model");
    write_text(dir + "/model", "config.json", "{}");
    write_text(dir, "train.jsonl", "{}\n");
    EXPECT_EQ(error_of([&] { check_paths(c); }), "(no error)");
}

}  // namespace
}  // namespace qlora::train
