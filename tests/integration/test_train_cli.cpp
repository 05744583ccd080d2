// qlora-train end to end on stories260K (CPU): the loss falls and its first values match a
// recorded list (regression guard), a run killed with SIGKILL and resumed ends bit-identical to an
// uninterrupted one, half-written checkpoints are ignored, and bad configs fail cleanly.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/safetensors.h"
#include "support/test_support.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;

// A small but real run: NF4 base, LoRA r 4 with dropout (so resume must restore the RNG), Alpaca.
std::string write_config(const std::string& dir, int steps, int save_every) {
    const std::string path = dir + "/train.yaml";
    std::ofstream out(path);
    out << "model: {path: " << qlora::test::shared_data("stories260K/hf") << "}\n"
        << "quant: {type: nf4, blocksize: 64, double_quant: true}\n"
        << "lora: {r: 4, alpha: 8, dropout: 0.1, targets: all-linear}\n"
        << "data: {train: " << qlora::test::shared_data("instruct/alpaca_tiny_100.json")
        << ", format: alpaca, template: alpaca, max_seq_len: 128}\n"
        << "train: {max_steps: " << steps << ", micro_batch: 2, grad_accum: 2, seed: 7}\n"
        << "optim: {name: adamw_32bit, lr: 3.0e-3, schedule: cosine, warmup_steps: 2, "
           "max_grad_norm: 1.0}\n"
        << "eval: {every: 0}\n"
        << "output: {dir: " << dir << "/run, save_every: " << save_every << ", keep: 2}\n"
        << "hardware: {device: cpu}\n";
    return path;
}

std::string train_cmd(const std::string& config, const std::string& extra = "") {
    return qlora::test::tool("qlora-train") + " " + config + " " + extra;
}

// step -> loss, the last line of each step winning (a resumed run rewrites the steps after its
// checkpoint).
std::map<int64_t, double> losses(const std::string& run_dir) {
    std::map<int64_t, double> out;
    std::ifstream in(run_dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line);
        if (j.contains("loss")) out[j["step"].get<int64_t>()] = j["loss"].get<double>();
    }
    return out;
}

TEST(TrainCli, LossFallsAndMatchesRecordedCurve) {
    const std::string dir = qlora::test::scratch_dir("train_curve");
    auto r = qlora::test::run_command(train_cmd(write_config(dir, 20, 0)));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto l = losses(dir + "/run");
    ASSERT_EQ(l.size(), 20u);
    // Recorded from this configuration (CPU, float32, LoRA A seeded by FNV-1a of each module name,
    // so the same on every standard library; LoRA dropout masks from kernels/dropout_mask_cpu.h,
    // re-recorded when they replaced bernoulli_, and when the fused RMSNorm replaced the ATen
    // ops: its float32 roundings differ in the last bits, and Adam's first update moves every
    // element of A by ±lr whatever its gradient's size, which carries those bits into the curve
    // from step 3); a change in any piece shows up here. The tolerance covers float summation
    // order only.
    const double recorded[] = {4.528454, 4.531006, 3.791172, 4.775797, 4.478043};
    for (int i = 0; i < 5; ++i) EXPECT_NEAR(l[i + 1], recorded[i], 1e-5) << "step " << i + 1;
    double first = (l[1] + l[2] + l[3]) / 3, last = (l[18] + l[19] + l[20]) / 3;
    EXPECT_LT(last, first * 0.9) << "loss did not fall: " << first << " -> " << last;
    EXPECT_TRUE(fs::exists(dir + "/run/adapter/adapter_model.safetensors"));
    EXPECT_TRUE(fs::exists(dir + "/run/config.resolved.yaml"));
}

// The trained adapter is what qlora-generate / qlora-eval apply with --adapter.
TEST(TrainCli, TrainedAdapterLoadsIntoGenerateAndEval) {
    const std::string dir = qlora::test::scratch_dir("train_adapter_use");
    ASSERT_EQ(qlora::test::run_command(train_cmd(write_config(dir, 6, 0))).exit_code, 0);
    const std::string model = qlora::test::shared_data("stories260K/hf");
    const std::string text = qlora::test::shared_data("text/tinystories_sample_cs336.txt");
    auto base = qlora::test::run_command(qlora::test::tool("qlora-eval") + " --model " + model +
                                         " --quant nf4 --data " + text);
    auto tuned = qlora::test::run_command(qlora::test::tool("qlora-eval") + " --model " + model +
                                          " --quant nf4 --data " + text + " --adapter " + dir +
                                          "/run/adapter");
    ASSERT_EQ(base.exit_code, 0) << base.output;
    ASSERT_EQ(tuned.exit_code, 0) << tuned.output;
    auto loss_of = [](const std::string& out) {
        return nlohmann::json::parse(out.substr(out.rfind('{'))).at("loss").get<double>();
    };
    EXPECT_NE(loss_of(base.output), loss_of(tuned.output));  // the adapter changes the model
    auto gen = qlora::test::run_command(
        qlora::test::tool("qlora-generate") + " --model " + model + " --quant nf4 --adapter " +
        dir + "/run/adapter --prompt 'Once upon a time' --max-new-tokens 8 --temperature 0");
    EXPECT_EQ(gen.exit_code, 0) << gen.output;
    EXPECT_NE(gen.output.find("Once upon a time"), std::string::npos) << gen.output;
    // An adapter for another shape (a 2-layer, hidden-48 model here) is refused with a clear
    // message.
    const std::string other = dir + "/other-model";
    fs::create_directories(other);
    for (const char* f : {"config.json", "model.safetensors"}) {
        fs::copy_file(std::string(QLORA_SOURCE_DIR) + "/tests/data/llama/gqa_tied/" + f,
                      other + "/" + f);
    }
    fs::copy_file(model + "/tokenizer.model", other + "/tokenizer.model");
    auto wrong = qlora::test::run_command(qlora::test::tool("qlora-eval") + " --model " + other +
                                          " --data " + text + " --adapter " + dir + "/run/adapter");
    EXPECT_EQ(wrong.exit_code, 2) << wrong.output;
    EXPECT_NE(wrong.output.find("is it for another model?"), std::string::npos) << wrong.output;
}

TEST(TrainCli, KilledAndResumedRunEqualsUninterrupted) {
    const std::string a = qlora::test::scratch_dir("train_resume_a");
    const std::string b = qlora::test::scratch_dir("train_resume_b");
    auto full = qlora::test::run_command(train_cmd(write_config(a, 12, 3)));
    ASSERT_EQ(full.exit_code, 0) << full.output;

    // Run B in the background and SIGKILL it once a checkpoint exists.
    const std::string config_b = write_config(b, 12, 3);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);  // its own process group: the kill reaches qlora-train, not just the shell
        execl("/bin/sh", "sh", "-c", (train_cmd(config_b) + " > " + b + "/log 2>&1").c_str(),
              nullptr);
        _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    bool killed = false;
    while (std::chrono::steady_clock::now() < deadline) {
        if (fs::exists(b + "/run/checkpoints/step-3/trainer_state.json")) {
            kill(-pid, SIGKILL);
            killed = true;
            break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(killed) << "no checkpoint appeared within 120 s";
    ASSERT_FALSE(fs::exists(b + "/run/adapter")) << "run B finished before it could be killed";

    auto resumed = qlora::test::run_command(train_cmd(config_b, "--resume auto"));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;

    EXPECT_EQ(losses(a + "/run"), losses(b + "/run"));
    io::SafetensorsReader wa(a + "/run/adapter/adapter_model.safetensors");
    io::SafetensorsReader wb(b + "/run/adapter/adapter_model.safetensors");
    ASSERT_EQ(wa.names(), wb.names());
    for (const auto& name : wa.names()) {
        EXPECT_TRUE(qlora::test::tensors_identical(wa.load(name), wb.load(name))) << name;
    }
}

TEST(TrainCli, ResumeAutoIgnoresHalfWrittenCheckpoints) {
    const std::string dir = qlora::test::scratch_dir("train_half_written");
    const std::string config = write_config(dir, 4, 2);
    auto first = qlora::test::run_command(train_cmd(config));
    ASSERT_EQ(first.exit_code, 0) << first.output;
    // What a crash mid-save leaves: a temporary folder, and a step folder without its state file.
    fs::create_directories(dir + "/run/checkpoints/step-9.tmp-4242");
    fs::create_directories(dir + "/run/checkpoints/step-8");
    std::ofstream(dir + "/run/checkpoints/step-8/adapter_config.json") << "{";
    auto resumed = qlora::test::run_command(train_cmd(config, "train.max_steps=6 --resume auto"));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed from " + dir + "/run/checkpoints/step-2"),
              std::string::npos)
        << resumed.output;
}

TEST(TrainCli, FreshRunRefusesAnOutputDirWithCheckpoints) {
    const std::string dir = qlora::test::scratch_dir("train_refuse");
    const std::string config = write_config(dir, 2, 1);
    ASSERT_EQ(qlora::test::run_command(train_cmd(config)).exit_code, 0);
    auto again = qlora::test::run_command(train_cmd(config));
    EXPECT_EQ(again.exit_code, 2) << again.output;
    EXPECT_NE(again.output.find("already holds checkpoints; pass --resume auto"), std::string::npos)
        << again.output;
}

// Ctrl-C: a checkpoint is saved, the exit is clean (0), and --resume auto finishes the run.
TEST(TrainCli, SigintSavesAndExitsCleanly) {
    const std::string dir = qlora::test::scratch_dir("train_sigint");
    const std::string config = write_config(dir, 30, 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        const std::string log = dir + "/log";
        freopen(log.c_str(), "w", stdout);
        freopen(log.c_str(), "a", stderr);
        const std::string bin = qlora::test::tool("qlora-train");
        execl(bin.c_str(), bin.c_str(), config.c_str(), nullptr);
        _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline && losses(dir + "/run").size() < 2) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    std::ifstream log_in(dir + "/log");
    std::string log((std::istreambuf_iterator<char>(log_in)), std::istreambuf_iterator<char>());
    ASSERT_TRUE(WIFEXITED(status)) << log;
    EXPECT_EQ(WEXITSTATUS(status), 0) << log;
    EXPECT_NE(log.find("interrupted at step"), std::string::npos) << log;
    const int64_t saved = static_cast<int64_t>(losses(dir + "/run").size());
    EXPECT_TRUE(
        fs::exists(dir + "/run/checkpoints/step-" + std::to_string(saved) + "/trainer_state.json"))
        << log;
    EXPECT_LT(saved, 30);
    auto resumed = qlora::test::run_command(train_cmd(config, "--resume auto"));
    EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
}

// A diverging run stops with a message and exit code 1; with skip_nonfinite it skips those steps.
TEST(TrainCli, NonFiniteLossStopsOrSkips) {
    const std::string dir = qlora::test::scratch_dir("train_nonfinite");
    const std::string config = write_config(dir, 6, 0);
    auto stop = qlora::test::run_command(train_cmd(config, "optim.lr=1e30 optim.max_grad_norm=0"));
    EXPECT_EQ(stop.exit_code, 1) << stop.output;
    EXPECT_NE(stop.output.find("non-finite"), std::string::npos) << stop.output;
    EXPECT_FALSE(fs::exists(dir + "/run/adapter"));
    qlora::test::scratch_dir("train_nonfinite");
    auto skip = qlora::test::run_command(train_cmd(
        write_config(dir, 6, 0), "optim.lr=1e30 optim.max_grad_norm=0 train.skip_nonfinite=true"));
    EXPECT_EQ(skip.exit_code, 0) << skip.output;
    EXPECT_NE(skip.output.find("update skipped"), std::string::npos) << skip.output;
}

TEST(TrainCli, BadConfigIsOneClearErrorAndExitCode2) {
    const std::string dir = qlora::test::scratch_dir("train_bad_config");
    std::ofstream(dir + "/bad.yaml") << "lora:\n  rnak: 8\n";
    auto r = qlora::test::run_command(train_cmd(dir + "/bad.yaml"));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("bad.yaml:2:3"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("did you mean 'lora.r'"), std::string::npos) << r.output;
}

TEST(TrainCli, DryRunPlansLlama65bUnder48GB) {
    auto r = qlora::test::run_command(
        train_cmd(std::string(QLORA_SOURCE_DIR) + "/configs/llama65b.yaml",
                  "--dry-run --model-config " + std::string(QLORA_SOURCE_DIR) +
                      "/configs/model-configs/llama-65b.json"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("-> FITS"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("16-bit base instead of 4-bit (plain LoRA)"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("would NOT fit"), std::string::npos) << r.output;
}

// The 70B case through the tool: Llama-2-70B QLoRA, r 16, seq 2048, micro-batch 1, on
// 2 x 24 GB with the sharded base and offloaded checkpoints, plus the comparison variants (the
// 16-bit one plans a dense base split the same way).
TEST(TrainCli, DryRunPlansLlama2_70BShardedOverTwo24GBCards) {
    auto r = qlora::test::run_command(
        train_cmd(std::string(QLORA_SOURCE_DIR) + "/configs/llama2-7b.yaml",
                  "--dry-run --model-config " + std::string(QLORA_SOURCE_DIR) +
                      "/configs/model-configs/llama-2-70b.json hardware.world_size=2 "
                      "hardware.parallel=shard_base train.offload_activations=true lora.r=16 "
                      "data.max_seq_len=2048 train.micro_batch=1 hardware.memory_limit_gb=24"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("per rank of 2 (hardware.parallel shard_base"), std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("host: offloaded ckpts"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("-> FITS"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("16-bit base instead of 4-bit (plain LoRA)"), std::string::npos)
        << r.output;
}

}  // namespace
}  // namespace qlora
