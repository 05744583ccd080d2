// A distributed run's world: the rendezvous store (torchrun's agent store, or one hosted by rank
// 0 when there is no agent), a start-up handshake and the collectives. Built once per process
// from the environment (world_env.h); a single-process run has no World at all.
#pragma once

#include <c10/core/Device.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include "dist/collectives.h"
#include "dist/world_env.h"

namespace qlora::dist {

enum class Backend { kAuto, kNccl, kStore };
// "auto" | "nccl" | "store"; a one-line error otherwise.
Backend parse_backend(const std::string& name);

struct WorldOptions {
    Backend backend = Backend::kAuto;  // auto: NCCL on CUDA devices, the store transport on CPU
    std::chrono::milliseconds timeout = std::chrono::seconds(300);
};

// The device this rank computes on: `requested` with CUDA becomes cuda:LOCAL_RANK (checked
// against the visible device count); CPU stays CPU.
c10::Device rank_device(const WorldEnv& env, c10::Device requested);

class World {
  public:
    // Connects to the store, creates the collectives on `device` and waits (up to the timeout)
    // until every rank has joined; errors name the ranks that did not.
    World(const WorldEnv& env, c10::Device device, const WorldOptions& options);
    ~World();
    World(const World&) = delete;
    World& operator=(const World&) = delete;

    const WorldEnv& env() const { return env_; }
    int rank() const { return env_.rank; }
    int size() const { return env_.world_size; }
    bool is_main() const { return env_.rank == 0; }
    Collectives& comm() { return *comm_; }

  private:
    WorldEnv env_;
    c10::intrusive_ptr<c10d::Store> store_;
    std::unique_ptr<Collectives> comm_;
};

// The World of this process, or nullptr for a single-process run (no torchrun variables, or
// WORLD_SIZE=1): the caller then takes exactly the path it always took.
std::unique_ptr<World> world_from_env(c10::Device device, const WorldOptions& options,
                                      bool single_rank_world = false);

}  // namespace qlora::dist
