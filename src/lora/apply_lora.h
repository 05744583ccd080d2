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

// A projection slot of the model: the module that registered it, its key there ("q_proj", ...,
// "lm_head") and the holder the model's forward calls through.
struct ProjectionSlot {
    torch::nn::Module* parent;
    std::string key;
    model::Linear* holder;
};
// Every projection in model order: per layer q, k, v, o, gate, up, down; then lm_head.
std::vector<ProjectionSlot> projection_slots(model::LlamaImpl& model);
// Puts `lora` in the slot: registered under the key and called by the model's forward.
void replace_projection(const ProjectionSlot& slot, const std::shared_ptr<LoraLinearImpl>& lora);

// Targets get an adapter (A Kaiming-uniform, B zero); every other 4-bit projection becomes a
// frozen LoraLinear without adapter (no dequantized weight kept for backward). All base
// parameters end with requires_grad false; only lora_A / lora_B train. Throws qlora::Error for
// bad options (unknown target names list the valid ones) or when adapters are already present.
void apply_lora(model::LlamaImpl& model, const LoraOptions& options);

// Every LoraLinear that carries an adapter, in model order (layers, q..down, then lm_head).
std::vector<std::shared_ptr<LoraLinearImpl>> lora_modules(model::LlamaImpl& model);

// (PEFT name, tensor) in model order:
// "base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight" [r, in] then
// "...lora_B.weight" [out, r]. The tensors are the live parameters (not copies).
std::vector<std::pair<std::string, at::Tensor>> adapter_parameters(model::LlamaImpl& model);

// Disabled adapters leave the base model's outputs; the parameters are kept.
void set_adapter_enabled(model::LlamaImpl& model, bool enabled);

// Quantization-aware training on every decoder projection (q, k, v, o, gate, up, down of every
// layer: the ones a 4-bit export quantizes), with or without adapter; a dense projection that
// apply_lora left as a plain Linear becomes a frozen LoraLinear for it. lm_head is never
// fake-quantized (every export keeps it 16-bit). Run after apply_lora; QAT starts inactive.
// Throws qlora::Error for a bad scheme, or merge-aware with LoRA dropout.
void apply_qat(model::LlamaImpl& model, const QatOptions& options);
// Switches the fake quantization of every QAT projection on or off (the trainer turns it on at
// qat.start_step).
void set_qat_active(model::LlamaImpl& model, bool active);

}  // namespace qlora::lora
