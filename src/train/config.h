// TrainConfig: the typed form of a qlora-train YAML file (DESIGN.md section 9). Defaults are the
// QLoRA paper's recipe, so a config only states what differs from it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/records.h"
#include "data/templates.h"
#include "dist/parallel_setting.h"
#include "lora/lora_options.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer_factory.h"
#include "quant/fake_quant.h"
#include "quant/quant4_tensor.h"

namespace qlora::train {

struct ModelConfig {
    std::string path;  // Hugging Face model folder (config.json, safetensors, tokenizer.model)
    std::string dtype = "auto";  // auto (bf16 on cuda, fp32 on cpu), float32, bfloat16, float16
    bool operator==(const ModelConfig&) const = default;
};

struct QuantConfig {
    bool enabled = true;  // false: LoRA over a dense frozen base (plain LoRA)
    quant::QuantType type = quant::QuantType::kNF4;  // nf4 | fp4
    int64_t blocksize = 64;                          // power of two in [32, 4096]
    bool double_quant = true;                        // 8-bit absmax in nested blocks of 256
    bool operator==(const QuantConfig&) const = default;
};

struct LoraConfig {
    int64_t r = 64;
    double alpha = 16.0;
    double dropout = 0.05;
    // "all-linear" or module names (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj).
    std::vector<std::string> targets = {"all-linear"};
    bool use_rslora = false;  // scale alpha / sqrt(r) instead of alpha / r
    bool operator==(const LoraConfig&) const = default;
};

struct DataConfig {
    std::string train;                 // .jsonl, .json (array) or .txt (text format only)
    std::optional<std::string> eval;   // an eval file ...
    std::optional<double> eval_split;  // ... or a deterministic fraction of train, (0, 1)
    data::Format format = data::Format::kAlpaca;           // text | alpaca | chat
    data::Template template_name = data::Template::kAuto;  // YAML key "template"
    int64_t max_seq_len = 512;
    bool packing = false;
    bool group_by_length = false;
    bool train_on_inputs = false;  // false: loss on completions only (prompt labels -100)
    data::OnBadRecord on_bad_record = data::OnBadRecord::kFatal;  // fatal | skip
    bool shuffle = true;
    bool operator==(const DataConfig&) const = default;
};

struct LoopConfig {                    // YAML section "train"
    std::optional<int64_t> max_steps;  // optimizer steps; exclusive with epochs
    std::optional<int64_t> epochs;     // when neither is given: 1 epoch
    int64_t micro_batch = 1;
    int64_t grad_accum = 16;
    bool gradient_checkpointing = true;
    // Checkpointed layer inputs wait in pinned host memory until their recompute (CUDA only).
    bool offload_activations = false;
    uint64_t seed = 42;
    bool skip_nonfinite = false;  // skip a step with a non-finite loss/grad instead of stopping
    int64_t log_every = 1;
    bool operator==(const LoopConfig&) const = default;
};

struct OptimConfig {
    optim::OptimizerKind name = optim::OptimizerKind::kPagedAdamw32bit;
    double lr = 2e-4;
    double weight_decay = 0.0;
    std::vector<double> betas = {0.9, 0.999};
    double eps = 1e-8;
    double max_grad_norm = 0.3;                                     // 0 disables clipping
    optim::ScheduleKind schedule = optim::ScheduleKind::kConstant;  // constant | linear | cosine
    std::optional<double> warmup_ratio = 0.03;  // exclusive with warmup_steps; setting
    std::optional<int64_t> warmup_steps;        // warmup_steps alone drops the default ratio
    bool operator==(const OptimConfig&) const = default;
};

struct EvalConfig {
    int64_t every = 200;               // optimizer steps between evals; 0: only at the end
    int64_t max_batches = 0;           // 0: the whole eval set
    std::vector<std::string> prompts;  // sample generations at eval time
    int64_t max_new_tokens = 64;
    bool on_start = false;  // also eval (and sample) before the first step: the base's figures
    bool operator==(const EvalConfig&) const = default;
};

struct OutputConfig {
    std::string dir;           // default: runs/<config file stem>, from the working dir
    int64_t save_every = 250;  // 0: only the final adapter
    int64_t keep = 3;          // checkpoints kept; 0 keeps all
    bool operator==(const OutputConfig&) const = default;
};

// Quantization-aware training (DESIGN.md section 11): fake quantization with a straight-through
// estimator in the forward of every decoder projection (quant/fake_quant.h, lora/lora_options.h).
// weight nf4 takes its blocksize and double quant from the quant section (the hf-nf4 format);
// int4/int8 fake-quantize a 16-bit base, so they need quant.enabled: false.
struct QatConfig {
    bool enabled = false;
    // int4 (per group, Q4_0 arithmetic) | nf4 | int8 (per channel)
    quant::FakeQuantWeight weight = quant::FakeQuantWeight::kNF4;
    int64_t group_size = 32;  // int4 only: power of two in [32, 256]
    lora::QatActivations activations =
        lora::QatActivations::kNone;  // int8: per token, dynamic asymmetric
    lora::QatMode mode =
        lora::QatMode::kMergeAware;  // lora: Q(W0) + s*B*A | merge_aware: Q(W0 + s*B*A)
    int64_t start_step = 0;          // optimizer steps run without fake quant first
    bool operator==(const QatConfig&) const = default;
};

struct HardwareConfig {
    std::string device = "auto";  // auto | cpu | cuda | cuda:N
    std::optional<double> memory_limit_gb;
    // Multi-GPU (src/dist/): auto = data when WORLD_SIZE > 1; data | shard_base. world_size plans
    // a multi-GPU run with --dry-run without GPUs (under torchrun, WORLD_SIZE wins).
    dist::ParallelSetting parallel = dist::ParallelSetting::kAuto;
    std::optional<int64_t> world_size;
    double dist_timeout_s = 600;  // a collective waiting longer names the missing ranks and fails
    bool operator==(const HardwareConfig&) const = default;
};

struct TrainConfig {
    ModelConfig model;
    QuantConfig quant;
    LoraConfig lora;
    DataConfig data;
    LoopConfig train;
    OptimConfig optim;
    EvalConfig eval;
    OutputConfig output;
    QatConfig qat;
    HardwareConfig hardware;

    std::string source;  // the file it was loaded from (not part of equality)
    bool operator==(const TrainConfig& o) const {
        return model == o.model && quant == o.quant && lora == o.lora && data == o.data &&
               train == o.train && optim == o.optim && eval == o.eval && output == o.output &&
               qat == o.qat && hardware == o.hardware;
    }
};

// Loads and validates `path`, then applies `overrides` ("lora.r=16", "optim.betas=[0.9, 0.95]":
// values parsed as YAML). Every problem (unknown key with the closest valid one suggested, wrong
// type, bad value) is collected and thrown as one qlora::Error, one "FILE:LINE:COL: ..." line each.
// Paths written in the file are resolved against the file's folder; paths given as overrides or
// left at defaults, against the working directory. Paths are not checked to exist (check_paths).
TrainConfig load_config(const std::string& path, const std::vector<std::string>& overrides = {});

// Throws one qlora::Error listing each configured input (model.path, its config.json, data.train,
// data.eval) that does not exist. Kept apart so `--dry-run` can validate a recipe anywhere.
void check_paths(const TrainConfig& config);

// Every key, defaults included, as YAML that load_config reads back to an equal config.
std::string to_yaml(const TrainConfig& config);
// Writes to_yaml(config) to `path` (creating its folder).
void save_resolved_config(const TrainConfig& config, const std::string& path);

// "all-linear" expanded to the projection names the model has.
std::vector<std::string> resolved_lora_targets(const LoraConfig& lora);

}  // namespace qlora::train
