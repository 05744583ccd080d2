// qlora-bench step: one QLoRA training step (forward, loss, backward through the LoRA adapters,
// optimizer step) on a randomly initialized Llama of a named shape, with the frozen base in NF4
// and, as the baseline measured in the same run, the same model with a 16-bit base (plain LoRA).
// Reports median step time, tokens/s, and the peak memory of the step (CUDA allocator peak, or
// peak RSS on CPU) for each, and their ratios. The components come from train/recipe, built from
// a TrainConfig holding these options and the documented defaults for every other key.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

#include "model/llama_config.h"

namespace qlora::bench {

struct StepBenchOptions {
    std::string shape = "tiny";  // tiny | 1b | 7b | 13b | 65b (Llama shapes, vocab 32000)
    int64_t layers = 0;          // >0: keep only this many decoder layers (a cheaper run)
    int64_t seq = 512;
    int64_t micro_batch = 1;
    int64_t lora_r = 64;  // the QLoRA paper's r, alpha 16, every linear
    double lora_alpha = 16.0;
    double lora_dropout = 0.05;  // lora.dropout's default, as qlora-train runs
    std::string optimizer = "paged_adamw_32bit";
    bool checkpointing = true;
    std::vector<std::string> bases = {"nf4", "bf16"};  // nf4 | fp4 | bf16 | fp16 | fp32
    std::string compute_dtype = "auto";  // a 4-bit base's model.dtype (a dense base's is its name)
    int warmup = 2;
    int iters = 5;
    // Non-empty: after the timed steps, one more step of each base is traced into
    // `<trace_prefix><base>.json` (Chrome trace format: every ATen op with its thread and times).
    std::string trace_prefix;
};

// The LlamaConfig of a named shape (qlora::Error for an unknown name), with `layers` applied.
model::LlamaConfig step_bench_config(const std::string& shape, int64_t layers);

// One JSON line per base, then one summary line comparing the first base with the last.
std::vector<std::string> bench_step(const StepBenchOptions& options, const c10::Device& device);

}  // namespace qlora::bench
