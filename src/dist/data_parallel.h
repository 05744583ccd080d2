// The pieces a data-parallel trainer calls, each a small function of (collectives, inputs):
//  - the shared shuffle cut into shards: every rank walks the same seeded DataLoader (same order,
//    same cursor); a global accumulation window is world × grad_accum consecutive micro-batches and
//    rank r trains on micro-batches [r·grad_accum, (r+1)·grad_accum) of it. Every rank therefore
//    takes the same number of optimizer steps, and the window's micro-batches are exactly those a
//    single process with grad_accum × world would see, so the losses and adapters agree;
//  - the loss is the token mean over the global window: the label-token count is all-reduced
//    before the backward, each rank divides its summed loss by the global count, and the summed
//    (not averaged) gradients are then the global gradient;
//  - LoRA gradients travel in one flat float32 bucket per window;
//  - LoRA init is broadcast from rank 0;
//  - files are written by rank 0 only while the others wait, and they learn if it failed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "data/batch.h"
#include "dist/collectives.h"

namespace qlora::data {
class DataLoader;
}

namespace qlora::dist {

struct ShardSpec {
    int rank = 0;
    int world_size = 1;
    int64_t grad_accum = 1;  // micro-batches per rank per optimizer step

    int64_t window() const { return grad_accum * world_size; }
    // Whether micro-batch `index` (0-based, within the global window) is this rank's.
    bool owns(int64_t index) const { return index / grad_accum == rank; }
};

// Optimizer steps per epoch of `batches` micro-batches: ceil(batches / window), the same on every
// rank (the single-process rule with grad_accum × world).
int64_t steps_per_epoch(int64_t batches, const ShardSpec& spec);

// Advances the shared loader by one global window and returns this rank's grad_accum batches.
std::vector<data::Batch> next_window_shard(data::DataLoader& loader, const ShardSpec& spec);

// Eval batches are dealt round-robin: batch i is rank i % world_size's.
inline bool owns_eval_batch(int64_t index, int rank, int world_size) {
    return index % world_size == rank;
}

// The sum over ranks of an integer (label tokens) or a float64 (summed losses): exact for counts.
int64_t global_sum(Collectives& comm, int64_t local);
double global_sum(Collectives& comm, double local);

// All parameters' gradients in one contiguous float32 buffer on comm.device(), reduced in a
// single collective. After the first call the float32 gradients are views of the buffer (as
// DDP's gradient_as_bucket_view), so later windows accumulate straight into it: no copies and no
// second copy of the gradients in memory. A parameter without a gradient contributes zeros (its
// gradient is then defined afterwards, as on ranks where it had one).
class GradBucket {
  public:
    explicit GradBucket(std::vector<at::Tensor> params);
    // After it, every rank holds the sum over ranks of its gradients.
    void all_reduce(Collectives& comm);
    int64_t numel() const { return numel_; }

  private:
    std::vector<at::Tensor> params_;
    int64_t numel_ = 0;
    at::Tensor buffer_;
};

// Every rank's parameters become rank 0's (one flat broadcast): LoRA A is random at init, and a
// replica that starts elsewhere never agrees again.
void broadcast_parameters(Collectives& comm, const std::vector<at::Tensor>& params, int root = 0);

// Runs `write` on rank 0 only; every rank leaves together. If rank 0's write throws, rank 0
// rethrows it and the others throw a one-line error saying rank 0 failed.
void on_main_rank(Collectives& comm, const std::function<void()>& write, const char* what);

}  // namespace qlora::dist
