// One optimizer step's accumulation window: grad_accum micro-batches whose loss is divided by the
// label tokens of the whole window, backward through each, then clipping and the update.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "data/loader.h"
#include "dist/replicas.h"
#include "model/llama.h"
#include "optim/optimizer.h"

namespace qlora::train {

struct WindowResult {
    double loss = 0;           // token mean over the window (0 when it has no label token)
    double grad_norm = 0;      // before clipping
    int64_t label_tokens = 0;  // shifted label tokens of the window
    int64_t tokens = 0;        // non-padding tokens read
    bool updated = false;      // false: the step was skipped (non-finite loss or gradient)
};

struct WindowOptions {
    int64_t grad_accum = 1;
    double max_grad_norm = 0;     // 0: no clipping
    bool skip_nonfinite = false;  // a non-finite loss/gradient skips the update instead of stopping
    c10::Device device{c10::kCPU};
    // Data parallelism: this rank reads its share of the global window, counts and gradients are
    // summed over ranks before the loss division and the clipping. nullptr: one process.
    dist::Replicas* replicas = nullptr;
};

// Reads the window from `loader`, accumulates gradients into `params`, clips and steps `optimizer`
// at `lr`; gradients are zero afterwards. `step` (1-based) only labels messages. Throws a runtime
// qlora::Error for a non-finite loss or gradient unless skip_nonfinite.
WindowResult run_window(model::LlamaImpl& model, data::DataLoader& loader,
                        std::vector<at::Tensor>& params, optim::Optimizer& optimizer, double lr,
                        int64_t step, const WindowOptions& options);

}  // namespace qlora::train
