// Replicas: the single-process path when there is no World, data parallelism when there is.
#include "dist/replicas.h"

#include "core/error.h"
#include "core/log.h"
#include "data/loader.h"
#include "dist/sharded_base.h"

namespace qlora::dist {

Replicas::Replicas(c10::Device device, int64_t grad_accum, ParallelSetting parallel,
                   const WorldOptions& options)
    : device_(device), parallel_(parallel) {
    spec_.grad_accum = grad_accum;
    // An explicit `data` or `shard_base` makes even WORLD_SIZE=1 under torchrun a (one-rank)
    // world; auto keeps the single-process path there.
    std::optional<WorldEnv> env = read_world_env(process_env(), parallel != ParallelSetting::kAuto);
    if (!env) return;
    device_ = rank_device(*env, device);
    world_ = std::make_unique<World>(*env, device_, options);
    spec_.rank = env->rank;
    spec_.world_size = env->world_size;
}

Replicas::~Replicas() = default;

std::vector<data::Batch> Replicas::next_window(data::DataLoader& loader) {
    return next_window_shard(loader, spec_);
}

int64_t Replicas::sum(int64_t local) { return world_ ? global_sum(world_->comm(), local) : local; }

double Replicas::sum(double local) { return world_ ? global_sum(world_->comm(), local) : local; }

void Replicas::shard_base(model::LlamaImpl& model) {
    if (!lockstep()) return;
    const int64_t held = dist::shard_base(world_->comm(), model);
    log_info("shard_base: rank ", spec_.rank, " of ", spec_.world_size, " holds ",
             held / (1024 * 1024), " MiB of the 4-bit base (", held, " bytes)");
}

void Replicas::init_parameters(const std::vector<at::Tensor>& params) {
    if (world_) broadcast_parameters(world_->comm(), params);
}

void Replicas::sync_gradients(const std::vector<at::Tensor>& params) {
    if (!world_) return;
    if (!bucket_) bucket_ = std::make_unique<GradBucket>(params);
    bucket_->all_reduce(world_->comm());
}

void Replicas::on_main(const std::function<void()>& write, const char* what) {
    if (world_) {
        on_main_rank(world_->comm(), write, what);
    } else {
        write();
    }
}

}  // namespace qlora::dist
