// The memory plan: bytes a QLoRA run needs, per component, from shapes and options alone (no
// weights loaded). The trainer prints it for --dry-run and checks it against
// hardware.memory_limit_gb.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>

#include "lora/lora_options.h"
#include "model/llama_config.h"
#include "optim/optimizer_factory.h"
#include "quant/quant4_tensor.h"

namespace qlora::memory {

// How a multi-GPU run splits the work (hardware.parallel; src/dist/).
//  kData: every rank holds the whole 4-bit base and the LoRA; gradients meet in one flat bucket.
//  kShardBase: FSDP-style (dist/sharded_base.h); each rank owns a block-aligned 1/world slice of
//    every layer's NF4 bytes and their double-quant scales; a layer is all-gathered for its
//    forward and again for its backward recompute, then freed. Dense weights (embeddings, norms,
//    lm_head) and the LoRA parameters, gradients and optimizer states stay replicated (the LoRA
//    gradients meet in the data-parallel bucket).
enum class ParallelMode { kData, kShardBase };
const char* parallel_mode_name(ParallelMode mode);

struct PlanInputs {
    model::LlamaConfig model;
    lora::LoraOptions lora;
    bool quantize = true;  // q/k/v/o/gate/up/down in 4 bits; false = dense base in weight_dtype
    quant::Quant4Options quant;
    // dtype of the frozen non-quantized weights (embeddings, norms, lm_head, a dense base) and of
    // activations (the compute dtype).
    c10::ScalarType weight_dtype = c10::kBFloat16;
    optim::OptimizerKind optimizer = optim::OptimizerKind::kPagedAdamw32bit;
    optim::OptimOptions optim_options;
    int64_t micro_batch = 1;
    int64_t seq_len = 512;
    bool checkpointing = true;
    // QAT (lora/lora_options.h): every decoder projection fake-quantizes its weight in the forward
    // (and again in backward): Q(W0), or Q(W0 + s·B·A) when merge-aware, one layer at a time.
    bool qat = false;
    bool qat_merge_aware = false;
    bool qat_activations_int8 =
        false;  // each projection also saves its fake-quantized input + mask
    // Ranks of a multi-GPU run; 1 is the single-GPU plan, unchanged. With more, the plan is per
    // rank: each rank trains its own micro_batch × seq_len.
    int64_t world_size = 1;
    ParallelMode parallel = ParallelMode::kData;
    // With checkpointing: the saved layer inputs live in pinned host memory and come back one
    // layer ahead of its backward recompute (two layers' inputs stay on the device).
    bool offload_activations = false;
};

// Every figure in bytes.
struct MemoryPlan {
    int64_t quantized_weights = 0;  // NF4 codes + absmax + nested state, as Quant4Tensor::nbytes
    int64_t dense_weights = 0;      // embeddings, norms, lm_head (+ the base when not quantized)
    int64_t lora_params = 0;
    int64_t lora_grads = 0;
    int64_t optimizer_resident = 0;
    int64_t optimizer_paged = 0;  // managed memory on CUDA: the driver may evict it to host RAM
    int64_t activations = 0;      // saved for backward at the peak (estimate)
    int64_t workspace = 0;        // transients: one dequantized weight, logits and their gradient
    // QAT transient of the largest projection: float32 W (or the merged W0 + s·B·A), Q(W), one
    // float32 intermediate and the cast to the compute dtype; merge-aware adds the STE mask, dL/dM
    // and float32 copies of the layer's input and output gradient. Never more than one layer's.
    int64_t qat_transient = 0;
    int64_t lora_numel = 0;  // trainable parameter count
    // Multi-GPU only (0 on one GPU): shard_base's gathered layer (the all-gathered rows and the
    // projections rebuilt from them), and the collective buffers (the flat float32 gradient
    // bucket, which float32 LoRA gradients are views of, so 0 then).
    int64_t gathered_weights = 0;
    int64_t comm_buffers = 0;
    int64_t world_size = 1;
    ParallelMode parallel = ParallelMode::kData;
    int64_t host_activations = 0;  // offloaded checkpoints, in host RAM (not in total())

    int64_t total() const {
        return quantized_weights + dense_weights + lora_params + lora_grads + optimizer_resident +
               optimizer_paged + activations + workspace + qat_transient + gathered_weights +
               comm_buffers;
    }
    // What must stay on the device when paged states are evicted.
    int64_t total_without_paged() const { return total() - optimizer_paged; }
    // A multi-line table (GiB and bytes per component); per rank when world_size > 1.
    std::string describe() const;
};

// Bytes of one quantized [rows, cols] weight, exactly as Quant4Tensor::nbytes counts them.
int64_t quant4_nbytes(int64_t numel, const quant::Quant4Options& options);

// Throws qlora::Error for bad options (via lora::validate) or non-positive batch/sequence.
MemoryPlan plan_memory(const PlanInputs& inputs);

}  // namespace qlora::memory
