// Class "crashes" (malformed trainer state) and "accepted when it should be refused" (negative
// step): a damaged checkpoint is one line naming its file, never a C++ backtrace.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "lora/adapter_metadata.h"
#include "lora/peft_adapter.h"
#include "optim/optimizer_factory.h"
#include "robustness/robustness_support.h"
#include "train/resume_checks.h"
#include "train/train_state.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;

// A valid checkpoint of a 1-module adapter with a real AdamW state and the CPU RNG state.
std::string write_checkpoint(const std::string& dir, std::vector<at::Tensor>& params) {
    lora::PeftAdapter adapter;
    adapter.config.r = 2;
    adapter.config.target_modules = {"q_proj"};
    const std::string m = "model.layers.0.self_attn.q_proj";
    adapter.tensors[lora::lora_name(m, 'A')] = at::full({2, 8}, 0.1);
    adapter.tensors[lora::lora_name(m, 'B')] = at::zeros({8, 2});
    params = {adapter.tensors.begin()->second.clone().requires_grad_(),
              std::next(adapter.tensors.begin())->second.clone().requires_grad_()};
    auto opt = optim::make_optimizer("adamw_32bit", params);
    train::TrainState state;
    state.step = 3;
    state.losses = {1.0, 0.9, 0.8};
    state.optimizer = opt->state_dict();
    state.cpu_rng = at::detail::getDefaultCPUGenerator().get_state();
    return train::save_checkpoint(dir, adapter, lora::AdapterMetadata{}, state, 0);
}

void rewrite_state_tensor(const std::string& ckpt, const std::string& name,
                          const at::Tensor& value) {
    const std::string path = ckpt + "/trainer_state.safetensors";
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    {
        io::SafetensorsReader reader(path);
        for (const std::string& n : reader.names())
            tensors.emplace_back(n, n == name ? value : reader.load(n));
    }
    io::save_safetensors(path, tensors);
}

void patch_state_json(const std::string& ckpt, const std::string& patch) {
    const std::string path = ckpt + "/trainer_state.json";
    nlohmann::json j = nlohmann::json::parse(test::read_text(path));
    j.merge_patch(nlohmann::json::parse(patch));
    std::ofstream(path) << j.dump();
}

TEST(CheckpointState, ValidCheckpointRoundTrips) {
    std::vector<at::Tensor> params;
    const std::string ckpt = write_checkpoint(test::scratch_dir("ckpt_ok"), params);
    train::LoadedCheckpoint ck = train::load_checkpoint(ckpt);
    EXPECT_EQ(ck.state.step, 3);
    auto opt = optim::make_optimizer("adamw_32bit", params);
    EXPECT_EQ(
        test::error_of([&] { train::restore_optimizer_state(*opt, ck.state.optimizer, ckpt); }),
        "(no error)");
}

TEST(CheckpointState, NegativeStepAndCursorAreRefused) {
    std::vector<at::Tensor> params;
    const std::string ckpt = write_checkpoint(test::scratch_dir("ckpt_negative"), params);
    patch_state_json(ckpt, R"({"step": -5})");
    const std::string e = test::error_of([&] { train::load_checkpoint(ckpt); });
    EXPECT_NE(e.find(ckpt + "/trainer_state.json: malformed trainer state"), std::string::npos)
        << e;
    EXPECT_NE(e.find("step -5"), std::string::npos) << e;
    patch_state_json(ckpt, R"({"step": 3, "batch_index": -1})");
    EXPECT_NE(test::error_of([&] { train::load_checkpoint(ckpt); }).find("batch_index -1"),
              std::string::npos);
    patch_state_json(ckpt, R"({"batch_index": 0, "losses": "x"})");
    EXPECT_NE(
        test::error_of([&] { train::load_checkpoint(ckpt); }).find("'losses' must be an array"),
        std::string::npos);
}

// Fuzz finding (fuzz_trainer_state): a counter that is a float, here beyond int64, was cast by
// nlohmann's get<int64_t>() (undefined behaviour); a fraction was truncated silently.
TEST(CheckpointState, CountersThatAreNotInt64IntegersAreRefused) {
    std::vector<at::Tensor> params;
    const std::string ckpt = write_checkpoint(test::scratch_dir("ckpt_float_step"), params);
    for (const char* patch : {R"({"step": 8.9e62})", R"({"step": 2.5})",
                              R"({"step": 18446744073709551615})", R"({"step": "3"})"}) {
        patch_state_json(ckpt, patch);
        const std::string e = test::error_of([&] { train::load_checkpoint(ckpt); });
        EXPECT_NE(e.find(ckpt + "/trainer_state.json: malformed trainer state: \"step\" must be an "
                                "integer in [-9223372036854775808, 9223372036854775807], found"),
                  std::string::npos)
            << patch << ": " << e;
    }
    patch_state_json(ckpt, R"({"step": 3, "world_size": 1e300})");
    EXPECT_NE(test::error_of([&] { train::load_checkpoint(ckpt); }).find("\"world_size\" must be"),
              std::string::npos);
}

// A skipped non-finite step stores a NaN loss, which JSON writes as null: it must load back.
TEST(CheckpointState, NullLossesFromSkippedStepsLoad) {
    std::vector<at::Tensor> params;
    const std::string ckpt = write_checkpoint(test::scratch_dir("ckpt_null_loss"), params);
    patch_state_json(ckpt, R"({"losses": [1.0, null, 0.8]})");
    train::LoadedCheckpoint ck = train::load_checkpoint(ckpt);
    ASSERT_EQ(ck.state.losses.size(), 3u);
    EXPECT_TRUE(std::isnan(ck.state.losses[1]));
}

TEST(CheckpointState, RngStateOfTheWrongSizeIsRefusedNamingTheFile) {
    std::vector<at::Tensor> params;
    const std::string ckpt = write_checkpoint(test::scratch_dir("ckpt_rng"), params);
    rewrite_state_tensor(ckpt, "rng.cpu", at::zeros({17}, at::kByte));
    const std::string e = test::error_of([&] { train::load_checkpoint(ckpt); });
    EXPECT_NE(e.find(ckpt + "/trainer_state.safetensors: malformed trainer state: 'rng.cpu'"),
              std::string::npos)
        << e;
    rewrite_state_tensor(ckpt, "rng.cpu", at::zeros({4}, at::kFloat));
    EXPECT_NE(test::error_of([&] {
                  train::load_checkpoint(ckpt);
              }).find("'rng.cpu' must be a uint8 vector"),
              std::string::npos);
}

TEST(CheckpointState, OptimizerTensorsOfTheWrongShapeAreRefusedNamingTheFile) {
    std::vector<at::Tensor> params;
    const std::string ckpt = write_checkpoint(test::scratch_dir("ckpt_optim"), params);
    train::LoadedCheckpoint ck = train::load_checkpoint(ckpt);
    auto opt = optim::make_optimizer("adamw_32bit", params);
    for (auto& [key, t] : ck.state.optimizer) {
        if (t.numel() == 16) {
            t = at::zeros({16, 1});  // the same element count in another shape: still foreign
            break;
        }
    }
    const std::string e =
        test::error_of([&] { train::restore_optimizer_state(*opt, ck.state.optimizer, ckpt); });
    EXPECT_NE(e.find(ckpt + "/trainer_state.safetensors: malformed trainer state"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("is Float [16, 1], expected Float [16]"), std::string::npos) << e;
    ck = train::load_checkpoint(ckpt);
    ck.state.optimizer.begin()->second = at::zeros({3});
    EXPECT_NE(test::error_of([&] {
                  train::restore_optimizer_state(*opt, ck.state.optimizer, ckpt);
              }).find(ckpt),
              std::string::npos);
}

// The same through qlora-train --resume: exit 2, one line, the file named.
TEST(CheckpointState, ResumeFromADamagedCheckpointIsOneLine) {
    const std::string dir = test::scratch_dir("ckpt_cli");
    const std::string config = dir + "/c.yaml";
    std::ofstream(config)
        << "model: {path: " << test::shared_data("stories260K/hf") << "}\n"
        << "data: {train: " << test::shared_data("instruct/alpaca_tiny_100.json")
        << ", max_seq_len: 128}\nlora: {r: 2}\ntrain: {max_steps: 2, micro_batch: "
           "1, grad_accum: 1}\n"
        << "output: {dir: " << dir
        << "/run, save_every: 1}\nhardware: {device: cpu}\neval: {every: 0}\n";
    auto first = test::run_command(test::tool("qlora-train") + " " + config);
    ASSERT_EQ(first.exit_code, 0) << first.output;
    const std::string ckpt =
        dir + "/run/checkpoints/step-1";  // the last step saves only the adapter
    io::SafetensorsReader reader(ckpt + "/trainer_state.safetensors");
    const std::string victim = reader.names().front();
    rewrite_state_tensor(ckpt, victim, at::zeros({3, 3}, reader.load(victim).scalar_type()));
    auto r = test::run_command(test::tool("qlora-train") + " " + config +
                               " train.max_steps=3 --resume auto");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    ASSERT_EQ(test::error_lines(r.output).size(), 1u) << r.output;
    EXPECT_NE(r.output.find("trainer_state.safetensors"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("frame #"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qlora
