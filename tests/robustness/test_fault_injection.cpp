// Fault injection on real qlora-train / qlora-export runs (stories260K, CPU): SIGKILL at random
// moments (some while a checkpoint is being written) and --resume auto ends bit-identical to an
// uninterrupted run; a file-size limit or a full file system hit mid-checkpoint or mid-export is a
// clear error that leaves the previous checkpoint/output intact; a read-only output folder is
// refused before training; a second run on the same output folder is refused by a lock a killed run
// never leaves stuck.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <thread>

#include "io/safetensors.h"
#include "robustness/robustness_support.h"
#include "train/train_state.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

std::string write_config(const std::string& dir, int steps, int save_every) {
    const std::string path = dir + "/train.yaml";
    std::ofstream(path)
        << "model: {path: " << test::shared_data("stories260K/hf") << "}\n"
        << "quant: {type: nf4, blocksize: 64, double_quant: true}\n"
        << "lora: {r: 4, alpha: 8, dropout: 0.1, targets: all-linear}\n"
        << "data: {train: " << test::shared_data("instruct/alpaca_tiny_100.json")
        << ", format: alpaca, template: alpaca, max_seq_len: 128}\n"
        << "train: {max_steps: " << steps << ", micro_batch: 2, grad_accum: 2, seed: 11}\n"
        << "optim: {name: adamw_32bit, lr: 3.0e-3, schedule: cosine, warmup_steps: 2}\n"
        << "eval: {every: 0}\n"
        << "output: {dir: " << dir << "/run, save_every: " << save_every << ", keep: 2}\n"
        << "hardware: {device: cpu}\n";
    return path;
}

// A child in its own process group running `argv` with stdout+stderr to `log`, optionally under a
// file-size limit (bytes).
pid_t spawn(const std::vector<std::string>& argv, const std::string& log,
            rlim_t fsize_limit = RLIM_INFINITY) {
    const pid_t pid = fork();
    if (pid != 0) return pid;
    setpgid(0, 0);
    if (fsize_limit != RLIM_INFINITY) {
        struct rlimit r {
            fsize_limit, fsize_limit
        };
        setrlimit(RLIMIT_FSIZE, &r);
    }
    freopen(log.c_str(), "a", stdout);
    freopen(log.c_str(), "a", stderr);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
}

int wait_exit(pid_t pid) {
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

std::vector<std::string> train_argv(const std::string& config,
                                    const std::vector<std::string>& extra = {}) {
    std::vector<std::string> argv = {test::tool("qlora-train"), config};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return argv;
}

std::map<int64_t, double> losses(const std::string& run_dir) {
    std::map<int64_t, double> out;
    std::ifstream in(run_dir + "/metrics.jsonl");
    std::string line;
    while (std::getline(in, line)) {
        auto j = nlohmann::json::parse(line);  // every line must be valid JSON, also after kills
        if (j.contains("loss")) out[j["step"].get<int64_t>()] = j["loss"].get<double>();
    }
    return out;
}

bool checkpoint_being_written(const std::string& run_dir) {
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(run_dir + "/checkpoints", ec)) {
        if (e.path().filename().string().find(".tmp-") != std::string::npos) return true;
    }
    return false;
}

void expect_same_adapter(const std::string& a, const std::string& b) {
    io::SafetensorsReader wa(a + "/adapter_model.safetensors");
    io::SafetensorsReader wb(b + "/adapter_model.safetensors");
    ASSERT_EQ(wa.names(), wb.names());
    for (const auto& name : wa.names())
        EXPECT_TRUE(test::tensors_identical(wa.load(name), wb.load(name))) << name;
}

// One run killed again and again (random moments; every third kill lands while a checkpoint
// folder is being written), each time continued with --resume auto, until it completes.
TEST(FaultInjection, SigkillAtRandomMomentsThenResumeIsBitIdentical) {
    constexpr int kTrials = 20;
    const std::string a = test::scratch_dir("fault_kill_ref");
    const std::string b = test::scratch_dir("fault_kill_chain");
    const auto t0 = clock_type::now();
    auto ref = test::run_command(test::tool("qlora-train") + " " + write_config(a, 16, 2));
    ASSERT_EQ(ref.exit_code, 0) << ref.output;
    const double full_ms =
        std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();

    const std::string config = write_config(b, 16, 2);
    std::mt19937_64 rng(1234);
    int kills = 0, during_checkpoint = 0, resumes = 0, finished_early = 0;
    bool done = false;
    for (int trial = 0; trial < kTrials && !done; ++trial) {
        const pid_t pid = spawn(train_argv(config, {"--resume", "auto"}), b + "/log");
        const bool at_checkpoint = trial % 3 == 2;
        // Kill at a random point of the run's own progress (not wall time: the machine's load
        // varies): once metrics.jsonl reaches a random step of those left, after a random delay.
        // Polled while the run appends: a half-written last line is not a step yet.
        const auto last_step = [&] {
            try {
                auto l = losses(b + "/run");
                return l.empty() ? int64_t{0} : l.rbegin()->first;
            } catch (const std::exception&) {
                return int64_t{0};
            }
        };
        // At most two steps past where the run stands, so the chain takes many kills to finish.
        const int64_t from = std::min<int64_t>(last_step(), 15);
        const int64_t kill_step =
            std::uniform_int_distribution<int64_t>(from, std::min<int64_t>(from + 2, 15))(rng);
        const auto extra =
            std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 200)(rng));
        std::optional<clock_type::time_point> deadline;
        const auto give_up = clock_type::now() + std::chrono::seconds(60);
        int status = 0;
        bool exited = false;
        while (clock_type::now() < give_up) {
            if (waitpid(pid, &status, WNOHANG) == pid) {
                exited = true;
                break;
            }
            if (!deadline && last_step() >= kill_step) deadline = clock_type::now() + extra;
            const bool now = at_checkpoint ? checkpoint_being_written(b + "/run")
                                           : deadline && clock_type::now() >= *deadline;
            if (now) break;
            std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
        if (exited) {
            ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
                << test::read_text(b + "/log");
            ++finished_early;
            done = true;
            break;
        }
        kill(-pid, SIGKILL);
        waitpid(pid, &status, 0);
        ++kills;
        during_checkpoint += at_checkpoint ? 1 : 0;
        resumes += 1;
    }
    if (!done) {
        const pid_t pid = spawn(train_argv(config, {"--resume", "auto"}), b + "/log");
        ASSERT_EQ(wait_exit(pid), 0) << test::read_text(b + "/log");
    }
    std::printf(
        "[fault injection] %d SIGKILLs (%d while a checkpoint was being written), %d resumes; "
        "reference run %.0f ms\n",
        kills, during_checkpoint, resumes, full_ms);
    RecordProperty("sigkills", kills);
    EXPECT_GE(kills, kTrials / 2) << "the runs finished before most kills";
    EXPECT_EQ(losses(a + "/run"), losses(b + "/run"));
    expect_same_adapter(a + "/run/adapter", b + "/run/adapter");
}

TEST(FaultInjection, FileSizeLimitDuringACheckpointKeepsThePreviousOne) {
    const std::string dir = test::scratch_dir("fault_fsize_ckpt");
    const std::string config = write_config(dir, 4, 2);
    auto first = test::run_command(test::tool("qlora-train") + " " + config);
    ASSERT_EQ(first.exit_code, 0) << first.output;
    // save_every 2 over 4 steps: step-2 is the checkpoint (the last step writes the adapter only).
    const std::string ckpt = dir + "/run/checkpoints/step-2";
    const auto before = test::tree_digest(ckpt);
    ASSERT_GT(fs::file_size(ckpt + "/trainer_state.safetensors"), 48u * 1024);
    const pid_t pid = spawn(train_argv(config, {"train.max_steps=8", "--resume", "auto"}),
                            dir + "/log", 48 * 1024);
    EXPECT_EQ(wait_exit(pid), 1) << test::read_text(dir + "/log");
    const std::string log = test::read_text(dir + "/log");
    const auto errors = test::error_lines(log);
    ASSERT_EQ(errors.size(), 1u) << log;
    EXPECT_NE(errors[0].find("File too large"), std::string::npos) << log;
    EXPECT_EQ(test::tree_digest(ckpt), before);
    EXPECT_EQ(train::latest_checkpoint(dir + "/run"), std::optional<std::string>(ckpt));
    EXPECT_NO_THROW(train::load_checkpoint(ckpt));
    auto resumed = test::run_command(test::tool("qlora-train") + " " + config +
                                     " train.max_steps=6 --resume auto");
    EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
}

TEST(FaultInjection, FileSizeLimitDuringAnExportKeepsThePreviousOutput) {
    const std::string dir = test::scratch_dir("fault_fsize_export");
    test::write_small_adapter(dir + "/adapter");
    const std::vector<std::string> argv = {test::tool("qlora-export"),
                                           "--base",
                                           test::shared_data("stories260K/hf"),
                                           "--adapter",
                                           dir + "/adapter",
                                           "--format",
                                           "hf-bf16",
                                           "--out",
                                           dir + "/out",
                                           "--overwrite"};
    ASSERT_EQ(wait_exit(spawn(argv, dir + "/log0")), 0) << test::read_text(dir + "/log0");
    const auto before = test::tree_digest(dir + "/out");
    EXPECT_EQ(wait_exit(spawn(argv, dir + "/log", 64 * 1024)), 1) << test::read_text(dir + "/log");
    EXPECT_NE(test::read_text(dir + "/log").find("File too large"), std::string::npos)
        << test::read_text(dir + "/log");
    EXPECT_EQ(test::tree_digest(dir + "/out"), before);
    for (const auto& e : fs::directory_iterator(dir)) {
        EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    }
}

// A full file system: `folder` becomes a private tmpfs (unshare -m as root, else an unprivileged
// user namespace) holding a copy of `seed`, sized to what the copy uses plus `margin_kb`; `command`
// runs there with its output in `log`, and what the folder then holds is copied to `after` (the
// tmpfs goes with the namespace). Returns the command's exit status, or nullopt where this machine
// allows neither kind of private mount.
std::optional<int> run_on_full_tmpfs(const std::string& folder, const std::string& seed,
                                     int margin_kb, const std::string& command,
                                     const std::string& log, const std::string& after) {
    const std::string unshare = ::geteuid() == 0 ? "unshare -m" : "unshare -rm";
    if (test::run_command(unshare + " true").exit_code != 0) return std::nullopt;
    fs::create_directories(after);
    const std::string rc_file = after + ".rc";
    const std::string script = "set -e; mount -t tmpfs -o size=64m tmpfs " + folder + "; cp -a " +
                               seed + "/. " + folder + "/; used=$(df -k --output=used " + folder +
                               " | tail -1); mount -o remount,size=$((used + " +
                               std::to_string(margin_kb) + "))k " + folder + "; rc=0; " + command +
                               " > " + log + " 2>&1 || rc=$?; cp -a " + folder + "/. " + after +
                               "/; echo $rc > " + rc_file;
    auto r = test::run_command(unshare + " sh -c '" + script + "'");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    if (!fs::exists(rc_file)) return -1;  // the script failed before the command: r says why
    return std::stoi(test::read_text(rc_file));
}

void expect_no_temporaries(const std::string& folder) {
    for (const auto& e : fs::recursive_directory_iterator(folder)) {
        EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    }
}

// The one error line a run that hit `expected` (strerror text) printed to `log_file`; empty (and
// a test failure) if there is not exactly one.
std::string the_error_line(const std::string& log_file, const std::string& expected) {
    const std::string log = test::read_text(log_file);
    const auto errors = test::error_lines(log);
    EXPECT_EQ(errors.size(), 1u) << log;
    if (errors.size() != 1) return "";
    EXPECT_NE(errors[0].find(expected), std::string::npos) << log;
    return errors[0];
}

TEST(FaultInjection, FullFileSystemDuringACheckpointKeepsThePreviousOne) {
    const std::string dir = test::scratch_dir("fault_enospc_ckpt");
    const std::string config = write_config(dir, 4, 2);
    auto first = test::run_command(test::tool("qlora-train") + " " + config);
    ASSERT_EQ(first.exit_code, 0) << first.output;
    const auto before = test::tree_digest(dir + "/run/checkpoints/step-2");
    ASSERT_FALSE(before.empty());
    fs::copy(dir + "/run", dir + "/seed", fs::copy_options::recursive);
    // 32 KiB free: room for the metrics lines and the resolved config, not for a checkpoint
    // (its trainer_state.safetensors alone is over 48 KiB).
    ASSERT_GT(fs::file_size(dir + "/run/checkpoints/step-2/trainer_state.safetensors"), 48u * 1024);
    const std::optional<int> rc = run_on_full_tmpfs(
        dir + "/run", dir + "/seed", 32,
        test::tool("qlora-train") + " " + config + " train.max_steps=8 --resume auto", dir + "/log",
        dir + "/after");
    if (!rc) GTEST_SKIP() << "no private tmpfs here (needs root or user namespaces)";
    EXPECT_EQ(*rc, 1) << test::read_text(dir + "/log");
    const std::string error = the_error_line(dir + "/log", "No space left on device");
    EXPECT_NE(error.find("checkpoints/step-4"), std::string::npos) << error;  // names the file
    EXPECT_EQ(test::tree_digest(dir + "/after/checkpoints/step-2"), before);
    expect_no_temporaries(dir + "/after");
    // What the full disk held resumes once there is room again.
    fs::remove_all(dir + "/run");
    fs::rename(dir + "/after", dir + "/run");
    EXPECT_EQ(train::latest_checkpoint(dir + "/run"),
              std::optional<std::string>(dir + "/run/checkpoints/step-2"));
    auto resumed = test::run_command(test::tool("qlora-train") + " " + config +
                                     " train.max_steps=6 --resume auto");
    EXPECT_EQ(resumed.exit_code, 0) << resumed.output;
    EXPECT_EQ(losses(dir + "/run").count(6), 1u) << resumed.output;
}

TEST(FaultInjection, FullFileSystemDuringAnExportKeepsThePreviousOutput) {
    const std::string dir = test::scratch_dir("fault_enospc_export");
    test::write_small_adapter(dir + "/adapter");
    const std::string export_to = " --base " + test::shared_data("stories260K/hf") + " --adapter " +
                                  dir + "/adapter --format hf-bf16 --overwrite --out ";
    auto first = test::run_command(test::tool("qlora-export") + export_to + dir + "/seed/out");
    ASSERT_EQ(first.exit_code, 0) << first.output;
    const auto before = test::tree_digest(dir + "/seed/out");
    ASSERT_FALSE(before.empty());
    fs::create_directories(dir + "/exp");
    const std::optional<int> rc = run_on_full_tmpfs(
        dir + "/exp", dir + "/seed", 64, test::tool("qlora-export") + export_to + dir + "/exp/out",
        dir + "/log", dir + "/after");
    if (!rc) GTEST_SKIP() << "no private tmpfs here (needs root or user namespaces)";
    EXPECT_EQ(*rc, 1) << test::read_text(dir + "/log");
    const std::string error = the_error_line(dir + "/log", "No space left on device");
    EXPECT_NE(error.find("model.safetensors"), std::string::npos) << error;  // names the file
    EXPECT_EQ(test::tree_digest(dir + "/after/out"), before);
    expect_no_temporaries(dir + "/after");
}

// As root a chmod does not stop writes, so the folder is a read-only tmpfs in a private mount
// namespace (unshare -m); otherwise a chmod'ed folder.
TEST(FaultInjection, ReadOnlyOutputFolderIsRefusedBeforeTraining) {
    const std::string dir = test::scratch_dir("fault_readonly");
    const std::string config = write_config(dir, 4, 2);
    fs::create_directories(dir + "/run");
    std::string command = test::tool("qlora-train") + " " + config;
    if (::geteuid() == 0) {
        command =
            "unshare -m sh -c 'mount -t tmpfs -o ro tmpfs " + dir + "/run && " + command + "'";
    } else {
        fs::permissions(dir + "/run", fs::perms::owner_read | fs::perms::owner_exec);
    }
    const auto t0 = clock_type::now();
    auto r = test::run_command(command);
    fs::permissions(dir + "/run", fs::perms::owner_all);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("is not writable"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("refusing to start training"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("step 1"), std::string::npos) << r.output;
    EXPECT_LT(std::chrono::duration<double>(clock_type::now() - t0).count(), 20.0);
}

TEST(FaultInjection, SecondRunOnTheSameOutputIsRefusedAndAKilledRunLeavesNoStaleLock) {
    const std::string dir = test::scratch_dir("fault_lock");
    const std::string config = write_config(dir, 400, 2);
    const pid_t first = spawn(train_argv(config), dir + "/log1");
    const auto deadline = clock_type::now() + std::chrono::seconds(60);
    while (clock_type::now() < deadline &&
           !fs::exists(dir + "/run/checkpoints/step-2/trainer_state.json")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(fs::exists(dir + "/run/checkpoints/step-2")) << test::read_text(dir + "/log1");
    auto second = test::run_command(test::tool("qlora-train") + " " + config + " --resume auto");
    EXPECT_EQ(second.exit_code, 2) << second.output;
    EXPECT_NE(second.output.find("is in use by another qlora-train run"), std::string::npos)
        << second.output;
    kill(-first, SIGKILL);
    wait_exit(first);
    auto third = test::run_command(test::tool("qlora-train") + " " + config +
                                   " train.max_steps=4 --resume auto");
    EXPECT_EQ(third.exit_code, 0) << third.output;
}

}  // namespace
}  // namespace qlora
