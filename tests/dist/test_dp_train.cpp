// Data-parallel qlora-train on CPU under the venv's torchrun: 2 and 3 ranks train stories260K
// for 20 steps and end with the losses and adapter of one process whose grad_accum is
// grad_accum × world. The windows hold the same micro-batches and the loss divides by the same
// global label count; only the order of the float32 gradient sums differs (per rank, then across
// ranks in rank order, against one running sum), a relative error of a few ulp per step that
// Adam carries forward. Bound: losses within 1e-5 relative, adapter elements within 2e-5 +
// 1e-4·|w|. Rank 0 alone writes; a rank killed mid-run makes rank 0 fail within
// hardware.dist_timeout_s naming it, and --resume auto then finishes with the uninterrupted run's
// adapter bit for bit. hardware.parallel: shard_base trains bit for bit as data parallelism
// does, and survives a killed rank the same way.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>

#include "dist/torchrun_launch.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace qlora::dist {
namespace {

namespace fs = std::filesystem;

// with_eval: an eval split of 5 batches (3 scored) and a prompt sample every 10 steps.
std::string write_config(const std::string& dir, int64_t grad_accum, int64_t save_every,
                         bool with_eval = false) {
    const std::string path = dir + "/train.yaml";
    std::ofstream out(path);
    out << "model: {path: " << test::shared_data("stories260K/hf") << "}\n"
        << "quant: {type: nf4, blocksize: 64, double_quant: true}\n"
        // dropout 0: each rank's masks would come from its own RNG stream, unlike one process
        << "lora: {r: 4, alpha: 8, dropout: 0.0, targets: all-linear}\n"
        << "data: {train: " << test::shared_data("instruct/alpaca_tiny_100.json")
        << ", format: alpaca, template: alpaca, max_seq_len: 128"
        << (with_eval ? ", eval_split: 0.1}\n" : "}\n")
        << "train: {max_steps: 20, micro_batch: 2, grad_accum: " << grad_accum << ", seed: 7}\n"
        << "optim: {name: adamw_32bit, lr: 3.0e-3, schedule: cosine, warmup_steps: 2, "
           "max_grad_norm: 1.0}\n"
        << (with_eval ? "eval: {every: 10, max_batches: 3, prompts: [\"Tell me a story.\"], "
                        "max_new_tokens: 16}\n"
                      : "eval: {every: 0}\n")
        << "output: {dir: " << dir << "/run, save_every: " << save_every << ", keep: 0}\n"
        << "hardware: {device: cpu, dist_timeout_s: 5}\n";
    return path;
}

std::string torchrun(int ranks, const std::string& config, const std::string& extra = "",
                     const std::string& launcher_flags = "") {
    return test_launch::torchrun(ranks, "qlora-train", config + " " + extra, launcher_flags);
}

std::map<int64_t, double> losses(const std::string& run_dir) {
    std::map<int64_t, double> out;
    std::ifstream in(run_dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
        auto j = nlohmann::json::parse(line);
        if (j.contains("loss")) {
            EXPECT_FALSE(out.count(j["step"].get<int64_t>())) << "step written twice: " << line;
            out[j["step"].get<int64_t>()] = j["loss"].get<double>();
        }
    }
    return out;
}

std::map<std::string, at::Tensor> adapter(const std::string& run_dir) {
    io::SafetensorsReader r(run_dir + "/adapter/adapter_model.safetensors");
    std::map<std::string, at::Tensor> out;
    for (const std::string& name : r.names()) out[name] = r.load(name);
    return out;
}

std::set<std::string> files_under(const std::string& dir) {
    std::set<std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir)) {
        if (e.is_regular_file()) out.insert(fs::relative(e.path(), dir).string());
    }
    return out;
}

void expect_matches_single_process(const std::string& single, const std::string& parallel) {
    const auto a = losses(single), b = losses(parallel);
    ASSERT_EQ(a.size(), 20u);
    ASSERT_EQ(b.size(), 20u);
    for (const auto& [step, loss] : a)
        EXPECT_NEAR(b.at(step), loss, 1e-5 * std::abs(loss)) << "step " << step;
    const auto ta = adapter(single), tb = adapter(parallel);
    ASSERT_EQ(ta.size(), tb.size());
    for (const auto& [name, t] : ta)
        EXPECT_TRUE(test::tensors_close(t, tb.at(name), 2e-5, 1e-4)) << name;
    // Rank 0 alone wrote: the same files as one process, each metric line once (checked above).
    EXPECT_EQ(files_under(single), files_under(parallel));
}

TEST(DataParallelTrain, TwoAndThreeRanksMatchOneProcessWithTheGlobalWindow) {
    for (int world : {2, 3}) {
        const std::string one = test::scratch_dir("dp_single_" + std::to_string(world));
        const std::string many = test::scratch_dir("dp_ranks_" + std::to_string(world));
        auto r1 =
            // One thread, as torchrun gives each rank: then both sides reduce alike within a
            // micro-batch, and one process on all cores of a busy machine is many times slower.
            test::run_command("env OMP_NUM_THREADS=1 " + test::tool("qlora-train") + " " +
                              write_config(one, 2 * world, 0));
        ASSERT_EQ(r1.exit_code, 0) << r1.output;
        auto rw = test::run_command(torchrun(world, write_config(many, 2, 0)));
        ASSERT_EQ(rw.exit_code, 0) << rw.output;
        expect_matches_single_process(one + "/run", many + "/run");
    }
}

// Every record but the timings: losses, learning rates, gradient norms, evals and samples.
std::vector<nlohmann::json> records(const std::string& run_dir) {
    std::vector<nlohmann::json> out;
    std::ifstream in(run_dir + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
        nlohmann::json j = nlohmann::json::parse(line);
        for (const char* timing : {"tokens_per_s", "peak_memory_mb", "elapsed_s"}) j.erase(timing);
        out.push_back(j);
    }
    return out;
}

// hardware.parallel: shard_base trains as data parallelism does, over layers gathered from the
// ranks' block slices: the gathered bytes are the ones each data-parallel rank holds whole, so
// every loss, gradient norm, eval and sample and the adapter are bit for bit the data-parallel
// run's (which matches one process, above). Eval scores 3 batches on 2 or 3 ranks, so a rank
// joins the last round's gathers without a batch; every rank generates the samples. Without
// double quant the blocks split evenly (stories260K's projections hold fewer than 256 blocks, the
// granularity under double quant).
TEST(ShardBaseTrain, TrainsBitForBitAsDataParallelWithEvalAndSamples) {
    for (int world : {2, 3}) {
        std::map<std::string, std::string> runs;
        for (const char* mode : {"data", "shard_base"}) {
            const std::string dir =
                test::scratch_dir(std::string("sb_") + mode + "_" + std::to_string(world));
            auto r = test::run_command(
                torchrun(world, write_config(dir, 2, 0, /*with_eval=*/true),
                         std::string("quant.double_quant=false hardware.parallel=") + mode));
            ASSERT_EQ(r.exit_code, 0) << r.output;
            if (std::string(mode) == "shard_base") {
                for (int rank = 0; rank < world; ++rank) {
                    EXPECT_NE(r.output.find("shard_base: rank " + std::to_string(rank) + " of " +
                                            std::to_string(world) + " holds"),
                              std::string::npos)
                        << r.output;
                }
            }
            runs[mode] = dir + "/run";
        }
        const auto a = records(runs["data"]), b = records(runs["shard_base"]);
        ASSERT_EQ(a.size(), 20u + 2 * 2) << "20 steps, 2 evals with a sample each";
        EXPECT_EQ(a, b);
        const auto ta = adapter(runs["data"]), tb = adapter(runs["shard_base"]);
        ASSERT_EQ(ta.size(), tb.size());
        for (const auto& [name, t] : ta)
            EXPECT_TRUE(test::tensors_identical(t, tb.at(name))) << name;
        EXPECT_EQ(files_under(runs["data"]), files_under(runs["shard_base"]));
    }
}

TEST(ShardBaseTrain, RefusesADenseBaseAndTrainingWithoutCheckpointing) {
    const std::string dir = test::scratch_dir("sb_refuse");
    const std::string config = write_config(dir, 2, 0);
    auto dense =
        test::run_command(torchrun(2, config, "hardware.parallel=shard_base quant.enabled=false"));
    EXPECT_NE(dense.exit_code, 0);
    EXPECT_NE(dense.output.find("hardware.parallel: shard_base splits the 4-bit base: it needs "
                                "quant.enabled: true, found false"),
              std::string::npos)
        << dense.output;
    auto no_ckpt = test::run_command(
        torchrun(2, config, "hardware.parallel=shard_base train.gradient_checkpointing=false"));
    EXPECT_NE(no_ckpt.exit_code, 0);
    EXPECT_NE(no_ckpt.output.find("shard_base needs train.gradient_checkpointing: true"),
              std::string::npos)
        << no_ckpt.output;
}

// Rank 1 SIGKILLed once step 5's checkpoint exists: rank 0 fails within the timeout naming it,
// and --resume auto then ends on the uninterrupted run's adapter bit for bit. `mode`: the
// command-line overrides of every run.
void expect_killed_rank_then_resume(const std::string& label, const std::string& mode) {
    const std::string full = test::scratch_dir(label + "_full");
    const std::string cut = test::scratch_dir(label + "_cut");
    auto uninterrupted = test::run_command(torchrun(2, write_config(full, 2, 5), mode));
    ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.output;

    // A slow launcher monitor stands in for a rank on another node: only our timeout sees it.
    const std::string log = cut + "/log";
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
        setpgid(0, 0);
        const std::string cmd =
            "exec " + torchrun(2, write_config(cut, 2, 5), mode, "--monitor-interval=15") + " > " +
            log + " 2>&1";
        execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
        _exit(127);
    }
    // Once step 5's checkpoint exists, SIGKILL rank 1 (the worker whose environment says RANK=1).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
    bool killed = false;
    while (!killed && std::chrono::steady_clock::now() < deadline) {
        if (fs::exists(cut + "/run/checkpoints/step-5/trainer_state.json")) {
            auto workers = test::run_command("pgrep -P " + std::to_string(pid));
            std::istringstream ids(workers.output);
            for (std::string id; ids >> id;) {
                std::ifstream environ("/proc/" + id + "/environ");
                // NUL-separated; a leading NUL lets "\0RANK=1\0" match the first entry too (and
                // never LOCAL_RANK or ROLE_RANK).
                std::string env(1, '\0');
                env.append(std::istreambuf_iterator<char>(environ), {});
                if (env.find(std::string("\0RANK=1\0", 8)) != std::string::npos) {
                    kill(std::stoi(id), SIGKILL);
                    killed = true;
                }
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    const auto t_kill = std::chrono::steady_clock::now();
    ASSERT_TRUE(killed) << "no checkpoint or no rank 1 within 180 s";
    // Rank 0 gives up within the timeout (5 s); the launcher reaps everything at its next poll.
    int status = 0;
    waitpid(pid, &status, 0);
    std::ifstream in(log);
    const std::string out((std::istreambuf_iterator<char>(in)), {});
    EXPECT_NE(WEXITSTATUS(status), 0) << out;
    // Rank 0 stops in the next collective it needs rank 1 for (a step's label count, or the
    // broadcast that ends a checkpoint write).
    EXPECT_NE(out.find("qlora-train: error: dist: rank 1 of 2 did not reach "), std::string::npos)
        << out;
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t_kill).count(),
              5 + 15 + 30)
        << out;
    ASSERT_FALSE(fs::exists(cut + "/run/adapter")) << "the run finished before rank 1 was killed";

    auto resumed = test::run_command(torchrun(2, cut + "/train.yaml", "--resume auto " + mode));
    ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_NE(resumed.output.find("resumed from"), std::string::npos) << resumed.output;
    const auto ta = adapter(full + "/run"), tb = adapter(cut + "/run");
    ASSERT_EQ(ta.size(), tb.size());
    for (const auto& [name, t] : ta) EXPECT_TRUE(test::tensors_identical(t, tb.at(name))) << name;
}

TEST(DataParallelTrain, AKilledRankStopsTheRunAndResumeAutoFinishesIt) {
    expect_killed_rank_then_resume("dp", "");
}

// Under shard_base rank 0 is inside a layer's gather (forward, or the recompute in backward)
// when rank 1 dies: the same one-line error, the same resume.
TEST(ShardBaseTrain, AKilledRankStopsTheRunAndResumeAutoFinishesIt) {
    expect_killed_rank_then_resume("sb", "hardware.parallel=shard_base quant.double_quant=false");
}

TEST(DataParallelTrain, ResumeRefusesAnotherGlobalWindow) {
    const std::string dir = test::scratch_dir("dp_window");
    const std::string config = write_config(dir, 2, 5);
    auto first = test::run_command(torchrun(2, config, "train.max_steps=6"));
    ASSERT_EQ(first.exit_code, 0) << first.output;
    auto other = test::run_command(torchrun(3, config, "--resume auto"));
    EXPECT_NE(other.exit_code, 0);
    EXPECT_NE(other.output.find(
                  "was trained on 2 rank(s) with 4 micro-batches per step; this run has 3 x "
                  "grad_accum 2 = 6"),
              std::string::npos)
        << other.output;
    auto same_window = test::run_command(
        torchrun(4, config, "--resume auto train.grad_accum=1 train.max_steps=6"));
    EXPECT_EQ(same_window.exit_code, 0)
        << same_window.output;  // 4 × 1 = 2 × 2: shards recompute exactly
}

}  // namespace
}  // namespace qlora::dist
