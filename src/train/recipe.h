// The recipe: the one place a TrainConfig becomes the options of each component (loader, LoRA,
// QAT, optimizer, schedule, data pipeline, memory plan, adapter metadata). The trainer, --dry-run
// and the step benchmark build their components from it, so a config key means one thing.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <optional>

#include "data/dataset.h"
#include "data/loader.h"
#include "lora/adapter_metadata.h"
#include "lora/lora_options.h"
#include "lora/peft_adapter.h"
#include "memory/memory_plan.h"
#include "model/llama_loader.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer_factory.h"
#include "train/config.h"

namespace qlora::tokenizer {
class Tokenizer;
}

namespace qlora::train {

struct Recipe {
    c10::Device device{c10::kCPU};
    c10::ScalarType dtype =
        c10::kFloat;  // compute dtype (model.dtype, auto resolved for the device)
    model::LoadOptions load;
    lora::LoraOptions lora;
    std::optional<lora::QatOptions> qat;  // set when qat.enabled
    optim::OptimizerKind optimizer = optim::OptimizerKind::kPagedAdamw32bit;
    optim::OptimOptions optim;
    data::DatasetOptions dataset;
};

// Everything but what needs the data (schedule length) or the tokenizer (pad id).
Recipe make_recipe(const TrainConfig& config, const c10::Device& device);

// The schedule over `total_steps` optimizer steps (warmup_steps, else warmup_ratio).
optim::LrScheduleOptions schedule_options(const TrainConfig& config, int64_t total_steps);
// micro_batch, max_seq_len, packing, group_by_length, shuffle and seed; the pad id is the
// tokenizer's pad, or EOS when it has none (labels mask padding anyway).
data::LoaderOptions loader_options(const TrainConfig& config, const tokenizer::Tokenizer& tok);
// data.train, and data.eval or data.eval_split, rendered and tokenized as the config says.
data::DataSplits load_splits(const TrainConfig& config, const tokenizer::Tokenizer& tok);

// The memory plan's inputs for `model` trained on `device` (a CUDA device plans bf16 for auto).
memory::PlanInputs plan_inputs(const TrainConfig& config, const model::LlamaConfig& model,
                               const c10::Device& device);

// What the adapter trains against, written beside every adapter (lora/adapter_metadata.h).
lora::AdapterMetadata adapter_metadata(const TrainConfig& config, c10::ScalarType compute_dtype);
// adapter_config.json's fields for this run's adapters.
lora::PeftLoraConfig peft_config(const TrainConfig& config);

}  // namespace qlora::train
