// Store connection and collectives set-up for a torchrun-launched process.
#include "dist/world.h"

#include <c10/util/Logging.h>

#include <algorithm>
#include <cstdlib>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "core/error.h"
#include "core/log.h"
#include "dist/nccl_collectives.h"
#include "dist/store_collectives.h"

#ifdef QLORA_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#endif

namespace qlora::dist {
namespace {

std::string first_line(const char* what) {
    std::string s(what);
    return s.substr(0, s.find('\n'));
}

// c10d logs a few warning lines on stderr for every store wait that times out; our error says
// what happened in one line. A user's TORCH_CPP_LOG_LEVEL, or QLORA_LOG_LEVEL=debug, keeps them.
void quiet_c10d_warnings() {
    if (std::getenv("TORCH_CPP_LOG_LEVEL") != nullptr || log_level() >= LogLevel::kDebug) return;
    FLAGS_caffe2_log_level = std::max(FLAGS_caffe2_log_level, 2);  // 2 = ERROR
}

c10::intrusive_ptr<c10d::Store> connect_store(const WorldEnv& env,
                                              std::chrono::milliseconds timeout) {
    c10d::TCPStoreOptions o;
    o.port = env.master_port;
    o.isServer = env.store_server();
    o.numWorkers = env.world_size;
    o.waitWorkers = false;  // our own handshake below names the ranks that never came
    o.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> tcp;
    try {
        tcp = c10::make_intrusive<c10d::TCPStore>(env.master_addr, o);
    } catch (const c10::Error& e) {
        QLORA_RUNTIME_CHECK(false, "dist: rank ", env.rank, " cannot ",
                            o.isServer ? "host" : "reach", " the rendezvous store at ",
                            env.master_addr, ":", env.master_port, ": ",
                            first_line(e.what_without_backtrace()));
    }
    // torchrun's agent keeps its own keys in the same store; a restarted attempt gets fresh keys.
    return c10::make_intrusive<c10d::PrefixStore>(
        "qlora/attempt_" + std::to_string(env.restart_count) + "/", tcp);
}

}  // namespace

Backend parse_backend(const std::string& name) {
    if (name == "auto") return Backend::kAuto;
    if (name == "nccl") return Backend::kNccl;
    if (name == "store") return Backend::kStore;
    QLORA_FAIL("dist backend must be auto, nccl or store, got '", name.substr(0, 40), "'");
}

c10::Device rank_device(const WorldEnv& env, c10::Device requested) {
    if (!requested.is_cuda()) return requested;
    int visible = 0;
#ifdef QLORA_WITH_CUDA
    visible = static_cast<int>(c10::cuda::device_count());
#endif
    QLORA_CHECK(env.local_rank < visible, "dist: LOCAL_RANK ", env.local_rank,
                " needs cuda:", env.local_rank, " but ", visible,
                " CUDA device(s) are visible; start at most ", visible,
                " processes per node (torchrun --nproc-per-node)");
    return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

World::World(const WorldEnv& env, c10::Device device, const WorldOptions& options) : env_(env) {
    quiet_c10d_warnings();
    store_ = connect_store(env, options.timeout);
    Backend backend = options.backend;
    if (backend == Backend::kAuto) backend = device.is_cuda() ? Backend::kNccl : Backend::kStore;
    if (backend == Backend::kNccl) {
        QLORA_CHECK(device.is_cuda(), "dist: the nccl backend needs hardware.device cuda, got ",
                    device.str());
        auto nccl_store = c10::make_intrusive<c10d::PrefixStore>("nccl/", store_);
        comm_ =
            make_nccl_collectives(nccl_store, env.rank, env.world_size, device, options.timeout);
    } else {
        QLORA_CHECK(device.is_cpu(), "dist: the store transport is for CPU runs only (device ",
                    device.str(), "); use the nccl backend on GPUs");
        auto cpu_store = c10::make_intrusive<c10d::PrefixStore>("cpu/", store_);
        comm_ = std::make_unique<StoreCollectives>(cpu_store, env.rank, env.world_size,
                                                   options.timeout);
    }
    comm_->barrier();  // every rank has joined, or the error names those that did not
    log_info("dist: ", describe(env), ", ", comm_->backend(), " collectives on ", device.str());
}

World::~World() = default;

std::unique_ptr<World> world_from_env(c10::Device device, const WorldOptions& options,
                                      bool single_rank_world) {
    std::optional<WorldEnv> env = read_world_env(process_env(), single_rank_world);
    if (!env) return nullptr;
    return std::make_unique<World>(*env, rank_device(*env, device), options);
}

}  // namespace qlora::dist
