// The process's place in a distributed run, read from the environment torchrun gives every worker
// (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT,
// TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT). No variables, or WORLD_SIZE=1, is the
// single-process run: read_world_env returns nullopt and nothing distributed is set up.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace qlora::dist {

struct WorldEnv {
    int rank = 0;
    int local_rank = 0;
    int world_size = 1;
    int local_world_size = 1;
    std::string master_addr;
    uint16_t master_port = 0;
    // Under torchrun the agent (on node 0) hosts the TCPStore and every rank, rank 0 included, is
    // a client of it. Without the agent (a hand-made launch), rank 0 hosts the store itself.
    bool use_agent_store = false;
    int restart_count = 0;  // torchrun's attempt number: keys of a restarted attempt never mix

    bool store_server() const { return !use_agent_store && rank == 0; }
};

// Looks a variable up; nullopt when unset. Tests pass a map; the default reads the process env.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
EnvLookup process_env();

// nullopt: no distributed variable set, or WORLD_SIZE=1 (any others must then be consistent with
// a single rank). Otherwise every variable must be present and consistent (0 <= RANK < WORLD_SIZE,
// 0 <= LOCAL_RANK < LOCAL_WORLD_SIZE <= WORLD_SIZE, a port in 1..65535); else a one-line
// qlora::Error naming the variable, what was expected and what was found.
// single_rank_world: WORLD_SIZE=1 under torchrun is a world of one rank too (an explicit
// hardware.parallel: data, or qlora-dist-check --single-rank-world: NCCL checks on one GPU).
std::optional<WorldEnv> read_world_env(const EnvLookup& env = process_env(),
                                       bool single_rank_world = false);

// WORLD_SIZE alone (for planning: --dry-run needs no rank); nullopt when unset, else checked.
std::optional<int64_t> world_size_from_env(const EnvLookup& env = process_env());

// "rank 1/4 (local 1/2) store 10.0.0.1:29500 via torchrun's agent"
std::string describe(const WorldEnv& w);

}  // namespace qlora::dist
