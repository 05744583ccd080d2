// attach_peft_adapter: PEFT config -> LoraOptions -> apply_lora, then the trained tensors.
#include "export/attach_adapter.h"

#include <set>

#include "core/error.h"
#include "lora/apply_lora.h"
#include "lora/peft_adapter.h"

namespace qlora::exporting {

void attach_peft_adapter(model::LlamaImpl& model, const std::string& adapter_dir) {
    lora::PeftAdapter adapter = lora::load_peft_adapter(adapter_dir);
    lora::LoraOptions options;
    options.r = adapter.config.r;
    options.alpha = adapter.config.lora_alpha;
    options.dropout = 0.0;  // inference
    options.use_rslora = adapter.config.use_rslora;
    // Targets: the module kinds the tensors name (PEFT's target_modules may list patterns).
    std::set<std::string> kinds;
    for (const auto& [name, t] : adapter.tensors) {
        std::string module;
        char which = 0;
        lora::split_lora_name(name, &module, &which);
        kinds.insert(module.substr(module.rfind('.') + 1));
    }
    options.targets.assign(kinds.begin(), kinds.end());
    lora::apply_lora(model, options);

    auto live = lora::adapter_parameters(model);
    QLORA_CHECK(live.size() == adapter.tensors.size(), adapter_dir, ": the adapter holds ",
                adapter.tensors.size(), " LoRA tensors but the model has ", live.size(),
                " for targets of the same kinds (", model.config().num_hidden_layers,
                " layers); is it for another model?");
    at::NoGradGuard no_grad;
    for (auto& [name, t] : live) {
        auto it = adapter.tensors.find(name);
        QLORA_CHECK(it != adapter.tensors.end(), adapter_dir, ": adapter lacks '", name, "'");
        QLORA_CHECK(it->second.sizes() == t.sizes(), adapter_dir, ": '", name, "' has shape ",
                    it->second.sizes(), " but the model's module needs ", t.sizes(),
                    " (an adapter for another model?)");
        t.copy_(it->second);
    }
    model.eval();
}

}  // namespace qlora::exporting
