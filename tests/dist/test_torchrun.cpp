// The collectives and data-parallel pieces across real processes: qlora-dist-check launched by
// the venv's torchrun (python -m torch.distributed.run --no-python) on 127.0.0.1 with 2 and 3
// ranks, the store transport on CPU. Each rank prints what it received; the values are checked
// here against their closed forms. A rank that dies or hangs makes the others fail within the
// timeout with one line naming it; WORLD_SIZE=1 and no torchrun stay single-process.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dist/torchrun_launch.h"
#include "support/test_support.h"

namespace qlora::dist {
namespace {

struct Launch {
    test::CommandResult result;
    double seconds = 0;
    std::vector<nlohmann::json> lines;  // each rank's JSON report
};

// torchrun_flags: extra launcher flags (e.g. a slow monitor, so our timeout is what fires).
Launch torchrun(int ranks, const std::string& tool_args, const std::string& torchrun_flags = "") {
    const std::string cmd =
        test_launch::torchrun(ranks, "qlora-dist-check", tool_args, torchrun_flags);
    auto t0 = std::chrono::steady_clock::now();
    Launch l;
    l.result = test::run_command(cmd);
    l.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::istringstream in(l.result.output);
    for (std::string line; std::getline(in, line);) {
        if (line.starts_with("{")) l.lines.push_back(nlohmann::json::parse(line));
    }
    return l;
}

void expect_exact_collectives(int world) {
    const std::string out = test::scratch_dir("torchrun_collectives_" + std::to_string(world));
    Launch l = torchrun(world, "--backend store --timeout-s 60 --out " + out);
    ASSERT_EQ(l.result.exit_code, 0) << l.result.output;
    ASSERT_EQ(l.lines.size(), static_cast<size_t>(world)) << l.result.output;
    const double tri = world * (world + 1) / 2.0;  // sum over ranks of (rank + 1)
    std::vector<bool> seen(static_cast<size_t>(world), false);
    for (const nlohmann::json& j : l.lines) {
        const int rank = j.at("rank");
        ASSERT_TRUE(rank >= 0 && rank < world);
        seen[static_cast<size_t>(rank)] = true;
        EXPECT_EQ(j.at("world"), world);
        EXPECT_EQ(j.at("local_rank"), rank);  // one node
        EXPECT_EQ(j.at("backend"), "store");
        EXPECT_EQ(j.at("agent_store"), true)
            << "under torchrun every rank is a client of the agent's store";
        EXPECT_EQ(j.at("all_reduce")[0].get<double>(), tri);
        EXPECT_EQ(j.at("all_reduce")[1].get<double>(), 1027 * tri);
        EXPECT_EQ(j.at("all_reduce")[2].get<int64_t>(),
                  world * (int64_t{1} << 40) + world * (world - 1) / 2);
        EXPECT_EQ(j.at("broadcast"), nlohmann::json::parse("[100.0, 104.0]"));
        nlohmann::json gather = nlohmann::json::array();
        for (int r = 0; r < world; ++r) gather.push_back(static_cast<double>(r));
        EXPECT_EQ(j.at("all_gather"), gather);
        const nlohmann::json& dp = j.at("data_parallel");
        EXPECT_EQ(dp.at("grad")[0].get<double>(), tri);
        EXPECT_EQ(dp.at("grad")[1].get<double>(), 2 * tri);
        EXPECT_EQ(dp.at("tokens").get<int64_t>(), 1000 * world + world * (world - 1) / 2);
        EXPECT_EQ(dp.at("loss_sum").get<double>(), 0.5 * tri);
    }
    for (int r = 0; r < world; ++r)
        EXPECT_TRUE(seen[static_cast<size_t>(r)]) << "no report from rank " << r;
    // Rank 0 alone wrote: the marker names it and nothing else appeared.
    size_t files = 0;
    for (const auto& e : std::filesystem::directory_iterator(out)) files += e.is_regular_file();
    EXPECT_EQ(files, 1u);
    std::ifstream marker(std::filesystem::path(out) / "written_by_rank_0");
    std::string text;
    std::getline(marker, text);
    EXPECT_EQ(text, "rank 0");
}

TEST(Torchrun, TwoRanksGetExactCollectives) { expect_exact_collectives(2); }

TEST(Torchrun, ThreeRanksGetExactCollectives) { expect_exact_collectives(3); }

// hardware.parallel: shard_base on stories260K (NF4, LoRA with B non-zero, checkpointed layers,
// a different batch per rank): the sharded base gives the whole base's logits and gradients bit
// for bit, and each rank holds its 1/world slice. Without double quant a rank's slice of a
// projection is at most one block (32 code bytes + a float32 absmax) over the even share;
// padding to the longest rank's buffer adds no more than that per projection.
void expect_sharded_base_matches_whole(int world) {
    Launch l = torchrun(world, "--backend store --timeout-s 60 --shard-model " +
                                   test::shared_data("stories260K/hf"));
    ASSERT_EQ(l.result.exit_code, 0) << l.result.output;
    ASSERT_EQ(l.lines.size(), static_cast<size_t>(world)) << l.result.output;
    for (const nlohmann::json& j : l.lines) {
        const nlohmann::json& checks = j.at("shard_base");
        ASSERT_EQ(checks.size(), 2u);
        for (const nlohmann::json& c : checks) {
            EXPECT_TRUE(c.at("logits_equal").get<bool>()) << c;
            EXPECT_TRUE(c.at("grads_equal").get<bool>()) << c;
            EXPECT_EQ(c.at("lora_tensors"), 5 * 7 * 2);  // A and B of 7 projections, 5 layers
            EXPECT_GT(c.at("min_grad_abs_sum").get<double>(), 0.0) << "a LoRA tensor had no grad";
            const int64_t whole = c.at("base_bytes_whole"), held = c.at("base_bytes_held");
            EXPECT_LE(held, whole) << c;
            if (!c.at("double_quant").get<bool>()) {
                const int64_t per_block = 32 + 4;
                EXPECT_LE(held, whole / world + 5 * 7 * 2 * per_block) << c;
                EXPECT_GE(held * world, whole) << c;
            }
        }
    }
}

TEST(Torchrun, ShardedBaseGivesTheWholeBasesLogitsAndGradients) {
    expect_sharded_base_matches_whole(2);
    expect_sharded_base_matches_whole(3);
}

// The others' stderr lines saying they gave up on `victim`.
std::vector<std::string> give_up_lines(const std::string& output) {
    std::vector<std::string> out;
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) {
        if (line.find("gives up") != std::string::npos) out.push_back(line);
    }
    return out;
}

void expect_others_name(int world, int victim, const std::string& mode) {
    // torchrun's agent would stop the survivors itself once it sees a local worker exit; a slow
    // monitor stands in for a peer on another node, which only our timeout can catch.
    const double timeout_s = 3;
    Launch l = torchrun(world,
                        "--backend store --timeout-s 3 --fail-rank " + std::to_string(victim) +
                            " --fail-mode " + mode,
                        "--monitor-interval=12");
    EXPECT_NE(l.result.exit_code, 0) << l.result.output;
    std::vector<std::string> lines = give_up_lines(l.result.output);
    ASSERT_EQ(lines.size(), static_cast<size_t>(world - 1)) << l.result.output;
    for (const std::string& line : lines) {
        EXPECT_NE(
            line.find("qlora-dist-check: error: dist: rank " + std::to_string(victim) + " of " +
                      std::to_string(world) + " did not reach all_reduce #2 within 3 s"),
            std::string::npos)
            << line;
    }
    // The whole launch: survivors stop at the timeout (the message says the wait hit it), then the
    // launcher's next poll (12 s) and python's start-up (~15 s on a loaded 2-core machine, twice).
    EXPECT_LT(l.seconds, timeout_s + 12 + 60) << l.result.output;
}

TEST(Torchrun, AKilledRankIsNamedByTheOthersWithinTheTimeout) {
    expect_others_name(2, 1, "exit");
    expect_others_name(3, 0, "exit");  // rank 0 too: the store lives in the agent, not in rank 0
}

TEST(Torchrun, AHangingRankIsNamedByTheOthersWithinTheTimeout) {
    expect_others_name(3, 2, "stall");
}

TEST(Torchrun, WorldSizeOneStaysSingleProcess) {
    Launch one = torchrun(1, "--backend store");
    ASSERT_EQ(one.result.exit_code, 0) << one.result.output;
    ASSERT_EQ(one.lines.size(), 1u) << one.result.output;
    EXPECT_EQ(one.lines[0], nlohmann::json::parse(R"({"distributed": false})"));
    test::CommandResult plain =
        test::run_command("env -u WORLD_SIZE -u RANK " + test::tool("qlora-dist-check"));
    ASSERT_EQ(plain.exit_code, 0) << plain.output;
    EXPECT_NE(plain.output.find(R"({"distributed":false})"), std::string::npos) << plain.output;
}

TEST(Torchrun, BadEnvironmentIsAOneLineError) {
    test::CommandResult r = test::run_command(
        "env WORLD_SIZE=2 RANK=5 LOCAL_RANK=0 LOCAL_WORLD_SIZE=2 "
        "MASTER_ADDR=127.0.0.1 MASTER_PORT=29999 " +
        test::tool("qlora-dist-check"));
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_EQ(r.output,
              "qlora-dist-check: error: environment variable RANK must be in [0, 1], got 5\n");
}

}  // namespace
}  // namespace qlora::dist
