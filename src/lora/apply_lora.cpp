// apply_lora: module surgery through the Linear holders the model exposes (no model code changes).
#include "lora/apply_lora.h"

#include <algorithm>

#include "core/error.h"

namespace qlora::lora {

namespace {

std::shared_ptr<LoraLinearImpl> as_lora(const model::Linear& l) {
    return std::dynamic_pointer_cast<LoraLinearImpl>(l.ptr());
}

}  // namespace

std::vector<ProjectionSlot> projection_slots(model::LlamaImpl& m) {
    std::vector<ProjectionSlot> slots;
    for (auto& layer : m.layers) {
        auto& a = *layer->self_attn;
        auto& p = *layer->mlp;
        slots.push_back({&a, "q_proj", &a.q_proj});
        slots.push_back({&a, "k_proj", &a.k_proj});
        slots.push_back({&a, "v_proj", &a.v_proj});
        slots.push_back({&a, "o_proj", &a.o_proj});
        slots.push_back({&p, "gate_proj", &p.gate_proj});
        slots.push_back({&p, "up_proj", &p.up_proj});
        slots.push_back({&p, "down_proj", &p.down_proj});
    }
    slots.push_back({&m, "lm_head", &m.lm_head});
    return slots;
}

void replace_projection(const ProjectionSlot& slot, const std::shared_ptr<LoraLinearImpl>& lora) {
    slot.parent->replace_module(slot.key, lora);
    *slot.holder = model::Linear(std::static_pointer_cast<model::LinearImpl>(lora));
}

void apply_lora(model::LlamaImpl& model, const LoraOptions& options) {
    validate(options);
    const std::vector<std::string> targets = resolve_targets(options.targets);
    auto is_target = [&](const std::string& key) {
        return std::find(targets.begin(), targets.end(), key) != targets.end();
    };
    for (const ProjectionSlot& s : projection_slots(model)) {
        const auto& base = **s.holder;
        QLORA_CHECK(as_lora(*s.holder) == nullptr, base.name(),
                    " already carries a LoRA adapter: apply_lora may run once per model");
        const bool target = is_target(s.key);
        if (!target && !base.quantized()) continue;  // a dense frozen projection stays as it is
        replace_projection(s, std::make_shared<LoraLinearImpl>(base, options, target));
    }
    // Tied lm_head: the embedding is the same tensor and stays registered (and frozen) there.
    for (auto& p : model.named_parameters(/*recurse=*/true)) {
        const std::string& n = p.key();
        const bool adapter = n.ends_with(".lora_A") || n.ends_with(".lora_B");
        p.value().set_requires_grad(adapter);
    }
}

std::vector<std::shared_ptr<LoraLinearImpl>> lora_modules(model::LlamaImpl& model) {
    std::vector<std::shared_ptr<LoraLinearImpl>> out;
    for (const ProjectionSlot& s : projection_slots(model)) {
        auto l = as_lora(*s.holder);
        if (l != nullptr && l->has_adapter()) out.push_back(std::move(l));
    }
    return out;
}

std::vector<std::pair<std::string, at::Tensor>> adapter_parameters(model::LlamaImpl& model) {
    std::vector<std::pair<std::string, at::Tensor>> out;
    for (const auto& l : lora_modules(model)) {
        const std::string prefix = "base_model.model." + l->name();
        out.emplace_back(prefix + ".lora_A.weight", l->lora_A);
        out.emplace_back(prefix + ".lora_B.weight", l->lora_B);
    }
    return out;
}

void set_adapter_enabled(model::LlamaImpl& model, bool enabled) {
    for (const auto& l : lora_modules(model)) l->set_enabled(enabled);
}

void apply_qat(model::LlamaImpl& model, const QatOptions& options) {
    LoraOptions frozen;  // only read for adapters, and a frozen wrapper has none
    for (const ProjectionSlot& s : projection_slots(model)) {
        if (s.key == "lm_head") continue;
        auto lora = as_lora(*s.holder);
        if (lora == nullptr) {
            lora = std::make_shared<LoraLinearImpl>(**s.holder, frozen, /*with_adapter=*/false);
            replace_projection(s, lora);
        }
        lora->set_qat(options);
    }
}

void set_qat_active(model::LlamaImpl& model, bool active) {
    for (const ProjectionSlot& s : projection_slots(model)) {
        if (auto lora = as_lora(*s.holder)) lora->set_qat_active(active);
    }
}

}  // namespace qlora::lora
