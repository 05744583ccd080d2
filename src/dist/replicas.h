// Replicas: what the trainer calls for data parallelism (and shard_base, which trains the same way
// over a sharded base: dist/sharded_base.h), one object for every case. Without
// torchrun's variables (or with WORLD_SIZE=1) it holds no World and every call is the
// single-process behaviour exactly (next_window = grad_accum × loader.next(), sums return their
// input, writes just run), so the trainer has one code path and the single-GPU run is unchanged.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/batch.h"
#include "dist/data_parallel.h"
#include "dist/parallel_setting.h"
#include "dist/world.h"

namespace qlora::data {
class DataLoader;
}
namespace qlora::model {
class LlamaImpl;
}

namespace qlora::dist {

class Replicas {
  public:
    // `device` is the configured device; under torchrun a CUDA device becomes cuda:LOCAL_RANK
    // (read it back with device()).
    Replicas(c10::Device device, int64_t grad_accum, ParallelSetting parallel,
             const WorldOptions& options);
    ~Replicas();

    bool distributed() const { return world_ != nullptr; }
    int rank() const { return spec_.rank; }
    int world_size() const { return spec_.world_size; }
    bool is_main() const { return spec_.rank == 0; }
    c10::Device device() const { return device_; }
    // shard_base: every forward gathers each layer from all ranks, so every rank must run the
    // same forwards (eval rounds, prompt samples) in the same order.
    bool lockstep() const { return world_ != nullptr && parallel_ == ParallelSetting::kShardBase; }

    int64_t steps_per_epoch(int64_t batches) const { return dist::steps_per_epoch(batches, spec_); }
    // This rank's micro-batches of the next global window (see data_parallel.h).
    std::vector<data::Batch> next_window(data::DataLoader& loader);
    int64_t sum(int64_t local);
    double sum(double local);
    bool any(bool local) { return sum(static_cast<int64_t>(local)) > 0; }
    bool owns_eval_batch(int64_t index) const {
        return dist::owns_eval_batch(index, rank(), world_size());
    }

    // Under shard_base, keeps this rank's slice of every decoder layer's 4-bit base and drops the
    // rest (a no-op otherwise). The config made sure the layers are checkpointed: otherwise
    // autograd would keep every gathered layer until the backward.
    void shard_base(model::LlamaImpl& model);
    // Rank 0's LoRA init everywhere.
    void init_parameters(const std::vector<at::Tensor>& params);
    // The window's gradients summed over ranks, in one bucket.
    void sync_gradients(const std::vector<at::Tensor>& params);
    // `write` on rank 0 only, the others waiting (on_main_rank).
    void on_main(const std::function<void()>& write, const char* what);

  private:
    c10::Device device_;
    ParallelSetting parallel_;
    ShardSpec spec_;
    std::unique_ptr<World> world_;
    std::unique_ptr<GradBucket> bucket_;
};

}  // namespace qlora::dist
