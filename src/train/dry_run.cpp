// Builds memory plans for the configured run and for variants without 4-bit weights, without
// checkpointing and without paging, and renders them beside the memory limit.
#include "train/dry_run.h"

#include <cstdio>
#include <filesystem>

#include "core/device.h"
#include "core/error.h"
#include "dist/world_env.h"
#include "memory/memory_plan.h"
#include "model/gguf_model.h"
#include "model/llama_config.h"
#include "optim/optimizer_factory.h"
#include "quant/quant4_tensor.h"
#include "train/qat_options.h"
#include "train/recipe.h"

namespace fs = std::filesystem;

namespace qlora::train {
namespace {

double gib(int64_t bytes) { return static_cast<double>(bytes) / static_cast<double>(1ull << 30); }

// Under torchrun WORLD_SIZE is the truth; hardware.world_size plans a run without GPUs.
int64_t planned_world_size(const TrainConfig& c) {
    if (std::optional<int64_t> env = dist::world_size_from_env()) return *env;
    return c.hardware.world_size.value_or(1);
}

std::string parallel_line(const memory::PlanInputs& in) {
    if (in.world_size == 1) return {};
    const char* what =
        in.parallel == memory::ParallelMode::kData
            ? "every rank holds the whole 4-bit base; LoRA gradients all-reduced in one bucket"
            : "FSDP-style: each rank owns 1/world of every layer's NF4 blocks, LoRA and its "
              "states replicated; a layer is all-gathered for its forward and its backward "
              "recompute";
    return detail::concat("per rank of ", in.world_size, " (hardware.parallel ",
                          memory::parallel_mode_name(in.parallel), ": ", what,
                          "); each rank trains micro_batch x seq, the global batch is ",
                          in.world_size, " x micro_batch x grad_accum\n");
}

// The model's shape comes from --model-config, a .gguf model, or the model folder's config.json.
std::string model_config_source(const TrainConfig& c, const std::string& model_config) {
    if (!model_config.empty()) return model_config;
    if (c.model.path.ends_with(".gguf")) return c.model.path;
    const std::string source = (fs::path(c.model.path) / "config.json").string();
    QLORA_CHECK(fs::exists(source), source,
                " does not exist: download the model, or pass --model-config with its config.json "
                "(configs/model-configs/ has the common Llama shapes)");
    return source;
}

std::string header_line(const TrainConfig& c, const std::string& source,
                        const model::LlamaConfig& mc, const memory::PlanInputs& in) {
    char line[256];
    std::snprintf(line, sizeof(line),
                  "memory plan for %s (%s: %lld layers, hidden %lld, %.2fB parameters), "
                  "micro_batch %lld x seq %lld, "
                  "r %lld, %s, %s\n",
                  c.source.c_str(), source.c_str(), static_cast<long long>(mc.num_hidden_layers),
                  static_cast<long long>(mc.hidden_size),
                  static_cast<double>(mc.num_parameters()) / 1e9,
                  static_cast<long long>(in.micro_batch), static_cast<long long>(in.seq_len),
                  static_cast<long long>(c.lora.r),
                  c.quant.enabled ? quant::quant_type_name(c.quant.type).c_str() : "dense base",
                  optim::optimizer_kind_name(c.optim.name).c_str());
    std::string out = line;
    if (c.qat.enabled) out += "QAT: " + describe_qat(c) + '\n';
    return out;
}

// The plan against hardware.memory_limit_gb (when set), then what each saving is worth: the
// plan without the 4-bit base, without QAT and without gradient checkpointing.
std::string limit_and_variant_lines(const memory::PlanInputs& in, const memory::MemoryPlan& plan,
                                    double limit) {
    struct Variant {
        const char* what;
        memory::PlanInputs inputs;
    };
    std::vector<Variant> variants;
    if (in.quantize) {
        Variant v{"16-bit base instead of 4-bit (plain LoRA)", in};
        v.inputs.quantize = false;
        v.inputs.weight_dtype = at::kBFloat16;
        variants.push_back(v);
    }
    if (in.qat) {
        Variant v{"without QAT (plain LoRA forward)", in};
        v.inputs.qat = false;
        variants.push_back(v);
    }
    if (in.checkpointing) {
        Variant v{"without gradient checkpointing", in};
        v.inputs.checkpointing = false;
        variants.push_back(v);
    }
    std::string out;
    char line[256];
    if (limit > 0) {
        const double need = gib(plan.total_without_paged());
        std::snprintf(line, sizeof(line),
                      "limit hardware.memory_limit_gb = %.1f GiB: the run needs %.2f GiB on %s "
                      "device (%.2f GiB with paged optimizer states resident) -> %s\n",
                      limit, need, in.world_size > 1 ? "each rank's" : "the", gib(plan.total()),
                      need <= limit ? "FITS" : "DOES NOT FIT");
        out += line;
    }
    for (const Variant& v : variants) {
        const memory::MemoryPlan p = memory::plan_memory(v.inputs);
        std::snprintf(
            line, sizeof(line), "  %-44s %8.2f GiB%s\n", v.what, gib(p.total_without_paged()),
            limit > 0 ? (gib(p.total_without_paged()) <= limit ? "  fits" : "  would NOT fit")
                      : "");
        out += line;
    }
    return out;
}

}  // namespace

std::string dry_run_report(const TrainConfig& c, const std::string& model_config) {
    const std::string source = model_config_source(c, model_config);
    const model::LlamaConfig mc = source.ends_with(".gguf") ? model::GgufLlamaFile(source).config()
                                                            : model::LlamaConfig::load(source);
    // Planned for the device the config names: anything but cpu plans a GPU (auto dtype = bf16).
    const c10::Device planned =
        c.hardware.device == "cpu" ? c10::Device(c10::kCPU) : c10::Device(c10::kCUDA, 0);
    memory::PlanInputs in = plan_inputs(c, mc, planned);
    in.world_size = planned_world_size(c);
    in.parallel = c.hardware.parallel == dist::ParallelSetting::kShardBase
                      ? memory::ParallelMode::kShardBase
                      : memory::ParallelMode::kData;
    const memory::MemoryPlan plan = memory::plan_memory(in);
    return header_line(c, source, mc, in) + parallel_line(in) + plan.describe() +
           limit_and_variant_lines(in, plan, c.hardware.memory_limit_gb.value_or(0.0));
}

}  // namespace qlora::train
