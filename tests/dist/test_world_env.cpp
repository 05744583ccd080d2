// torchrun's environment -> WorldEnv: the single-process cases, a full torchrun set, and a
// one-line error for each kind of bad value.
#include <gtest/gtest.h>

#include <map>

#include "dist/world_env.h"
#include "support/test_support.h"

namespace qlora::dist {
namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

std::map<std::string, std::string> torchrun_vars() {
    return {{"RANK", "3"},
            {"LOCAL_RANK", "1"},
            {"WORLD_SIZE", "4"},
            {"LOCAL_WORLD_SIZE", "2"},
            {"MASTER_ADDR", "10.1.2.3"},
            {"MASTER_PORT", "29511"},
            {"TORCHELASTIC_USE_AGENT_STORE", "True"},
            {"TORCHELASTIC_RESTART_COUNT", "2"}};
}

TEST(WorldEnv, NoVariablesIsTheSingleProcessPath) {
    EXPECT_FALSE(read_world_env(env_of({})).has_value());
}

TEST(WorldEnv, WorldSizeOneIsTheSingleProcessPath) {
    EXPECT_FALSE(read_world_env(env_of({{"WORLD_SIZE", "1"},
                                        {"RANK", "0"},
                                        {"LOCAL_RANK", "0"},
                                        {"MASTER_ADDR", "127.0.0.1"},
                                        {"MASTER_PORT", "29500"}}))
                     .has_value());
    EXPECT_EQ(test::error_of([] {
                  read_world_env(env_of({{"WORLD_SIZE", "1"}, {"RANK", "1"}}));
              }),
              "environment variable RANK must be in [0, 0], got 1");
}

TEST(WorldEnv, ReadsEveryTorchrunVariable) {
    std::optional<WorldEnv> w = read_world_env(env_of(torchrun_vars()));
    ASSERT_TRUE(w.has_value());
    EXPECT_EQ(w->rank, 3);
    EXPECT_EQ(w->local_rank, 1);
    EXPECT_EQ(w->world_size, 4);
    EXPECT_EQ(w->local_world_size, 2);
    EXPECT_EQ(w->master_addr, "10.1.2.3");
    EXPECT_EQ(w->master_port, 29511);
    EXPECT_TRUE(w->use_agent_store);
    EXPECT_FALSE(w->store_server());  // under the agent, rank 0 too is a client
    EXPECT_EQ(w->restart_count, 2);
    EXPECT_EQ(describe(*w), "rank 3/4 (local 1/2) store 10.1.2.3:29511 via torchrun's agent");
}

TEST(WorldEnv, WithoutTheAgentRankZeroHostsTheStore) {
    auto vars = torchrun_vars();
    vars.erase("TORCHELASTIC_USE_AGENT_STORE");
    vars["RANK"] = "0";
    std::optional<WorldEnv> w = read_world_env(env_of(vars));
    ASSERT_TRUE(w.has_value());
    EXPECT_TRUE(w->store_server());
    vars["RANK"] = "2";
    EXPECT_FALSE(read_world_env(env_of(vars))->store_server());
}

TEST(WorldEnv, BadValuesAreOneLineErrors) {
    auto with = [](const std::string& name, const std::string& value) {
        auto vars = torchrun_vars();
        vars[name] = value;
        return test::error_of([&] { read_world_env(env_of(vars)); });
    };
    EXPECT_EQ(with("RANK", "4"), "environment variable RANK must be in [0, 3], got 4");
    EXPECT_EQ(with("RANK", "x1"),
              "environment variable RANK must be an integer, got 'x1' (is this process launched by "
              "torchrun?)");
    EXPECT_EQ(with("WORLD_SIZE", "0"),
              "environment variable WORLD_SIZE must be in [1, 1048576], got 0");
    EXPECT_EQ(with("LOCAL_RANK", "2"), "environment variable LOCAL_RANK must be in [0, 1], got 2");
    EXPECT_EQ(with("LOCAL_WORLD_SIZE", "5"),
              "environment variable LOCAL_WORLD_SIZE must be in [1, 4], got 5");
    EXPECT_EQ(with("MASTER_PORT", "70000"),
              "environment variable MASTER_PORT must be in [1, 65535], got 70000");
    EXPECT_EQ(with("MASTER_ADDR", ""),
              "environment variable MASTER_ADDR must be a host name or address, got ''");
    EXPECT_EQ(
        with("TORCHELASTIC_USE_AGENT_STORE", "maybe"),
        "environment variable TORCHELASTIC_USE_AGENT_STORE must be True or False, got 'maybe'");
    const std::string long_value(100, '7');
    EXPECT_EQ(with("RANK", long_value), "environment variable RANK must be an integer, got '" +
                                            std::string(40, '7') +
                                            "...' (is this process launched by torchrun?)");
}

TEST(WorldEnv, MissingVariablesAreNamed) {
    auto vars = torchrun_vars();
    vars.erase("MASTER_PORT");
    EXPECT_EQ(
        test::error_of([&] { read_world_env(env_of(vars)); }),
        "environment variable MASTER_PORT is not set but WORLD_SIZE is 4; launch with torchrun "
        "--no-python "
        "(it sets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT)");
    EXPECT_EQ(test::error_of([] {
                  read_world_env(env_of({{"RANK", "0"}}));
              }),
              "environment variable RANK is set but WORLD_SIZE is not; unset it for a "
              "single-process run, or "
              "launch with torchrun");
}

}  // namespace
}  // namespace qlora::dist
