// Putting adapters on a Llama: replace the targeted projections with LoraLinear modules, freeze
// everything else, and list the adapter tensors under their PEFT names.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "lora/lora_linear.h"
#include "lora/lora_options.h"
#include "model/llama.h"

namespace qlora::lora {

// Targets get an adapter (A Kaiming-uniform, B zero); every other 4-bit projection becomes a
// frozen LoraLinear without adapter (no dequantized weight kept for backward). All base
// parameters end with requires_grad false; only lora_A / lora_B train. Throws qlora::Error for
// bad options (unknown target names list the valid ones) or when adapters are already present.
void apply_lora(model::LlamaImpl& model, const LoraOptions& options);

// Every LoraLinear that carries an adapter, in model order (layers, q..down, then lm_head).
std::vector<std::shared_ptr<LoraLinearImpl>> lora_modules(model::LlamaImpl& model);

// (PEFT name, tensor) in model order: "base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight"
// [r, in] then "...lora_B.weight" [out, r]. The tensors are the live parameters (not copies).
std::vector<std::pair<std::string, at::Tensor>> adapter_parameters(model::LlamaImpl& model);

// Disabled adapters leave the base model's outputs; the parameters are kept.
void set_adapter_enabled(model::LlamaImpl& model, bool enabled);

}  // namespace qlora::lora
