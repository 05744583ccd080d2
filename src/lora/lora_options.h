// LoraOptions: what an adapter looks like (rank, alpha, dropout, rsLoRA, target modules) and the
// target-name rules shared by apply_lora, the memory plan and the PEFT exporter; QatOptions, how
// quantization-aware training changes the forward of the projections.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/enum_names.h"
#include "quant/fake_quant.h"

namespace qlora::lora {

struct LoraOptions {
    int64_t r = 8;
    double alpha = 16.0;
    double dropout = 0.0;     // on the LoRA input path, train mode only
    bool use_rslora = false;  // scale alpha/sqrt(r) instead of alpha/r
    // {"all-linear"} (q,k,v,o,gate,up,down; not lm_head) or module names ("q_proj", "lm_head",
    // ...).
    std::vector<std::string> targets = {"all-linear"};
    c10::ScalarType dtype = c10::kFloat;  // of lora_A / lora_B (compute follows the input's dtype)
    // Seeds A's Kaiming-uniform init; unset = torch's default generator.
    std::optional<uint64_t> init_seed;
};

// The projection names a target list may use, in model order (q_proj ... down_proj, lm_head).
const std::vector<std::string>& valid_target_names();
// Expands "all-linear" and validates names; throws qlora::Error listing the valid names for an
// unknown one or an empty list. Result in model order, without duplicates.
std::vector<std::string> resolve_targets(const std::vector<std::string>& targets);
// alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT's scaling); throws qlora::Error for r <= 0.
double lora_scale(double alpha, int64_t r, bool use_rslora);
double lora_scale(const LoraOptions& options);
// Throws qlora::Error naming the bad field (r > 0, dropout in [0, 1), alpha finite).
void validate(const LoraOptions& options);

// QAT modes (the config's qat.mode):
//   kLora        y = x·Q(W0)ᵀ + b + s·(x·Aᵀ)·Bᵀ: the base fake-quantized, the adapter not
//   (torchtune's
//                QAT+LoRA); exporting merged-and-quantized still rounds W0 + s·B·A afresh.
//   kMergeAware  y = x·Q(W0 + s·B·A)ᵀ + b with an STE (lora/merge_aware_function.h): the merged,
//                quantized weight is the one trained, so its export is exactly the trained model.
enum class QatMode { kLora, kMergeAware };
// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kQatModeNames = enum_names<QatMode>(
    "qat.mode", {{QatMode::kLora, "lora"}, {QatMode::kMergeAware, "merge_aware"}});
QatMode parse_qat_mode(std::string_view name);
std::string qat_mode_name(QatMode value);

// Whether QAT also fake-quantizes each projection's input (the config's qat.activations).
enum class QatActivations { kNone, kInt8 };
// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kQatActivationsNames = enum_names<QatActivations>(
    "qat.activations", {{QatActivations::kNone, "none"}, {QatActivations::kInt8, "int8"}});
QatActivations parse_qat_activations(std::string_view name);
std::string qat_activations_name(QatActivations value);

struct QatOptions {
    quant::QatScheme scheme;        // Q: int4 per group, int8 per channel or nf4 (fake_quant.h)
    bool activations_int8 = false;  // also fake-quantize each projection's input per token
    QatMode mode = QatMode::kMergeAware;
};

}  // namespace qlora::lora
