// A training checkpoint: checkpoints/step-N/ holds the PEFT adapter and trainer_state.safetensors
// (optimizer states, RNG states) + trainer_state.json (step, loader cursor, losses so far). It is
// written under a temporary name and renamed into place, so a folder named step-N is complete.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/loader.h"
#include "lora/adapter_metadata.h"
#include "lora/peft_adapter.h"

namespace qlora::train {

struct TrainState {
    int64_t step = 0;                             // optimizer steps done
    data::LoaderState cursor;                     // the next micro-batch to read
    std::map<std::string, at::Tensor> optimizer;  // optimizer state_dict()
    at::Tensor cpu_rng;                           // torch's default CPU generator state (dropout)
    at::Tensor cuda_rng;                          // and the CUDA one, when training on a GPU
    std::vector<double> losses;                   // train loss of every step so far
    // The run's layout: ranks and micro-batches per optimizer step over all of them (world ×
    // grad_accum). Resuming with another world size is exact only when this window is the same
    // (the loader cursor is global). 0 = unknown (a checkpoint from before these were saved).
    int64_t world_size = 1;
    int64_t window_micro_batches = 0;
};

// Writes dir/checkpoints/step-N atomically (the adapter, its qlora_adapter.json and the trainer
// state); keeps the newest `keep` checkpoints (0 = all). Returns the checkpoint's path.
std::string save_checkpoint(const std::string& output_dir, const lora::PeftAdapter& adapter,
                            const lora::AdapterMetadata& metadata, const TrainState& state,
                            int64_t keep);

// The newest complete checkpoints/step-N under output_dir (temporary folders of an interrupted
// save are ignored), or nullopt.
std::optional<std::string> latest_checkpoint(const std::string& output_dir);

struct LoadedCheckpoint {
    lora::PeftAdapter adapter;
    TrainState state;
};
// Reads a checkpoint folder; errors name the folder and the missing or malformed entry.
LoadedCheckpoint load_checkpoint(const std::string& dir);

}  // namespace qlora::train
