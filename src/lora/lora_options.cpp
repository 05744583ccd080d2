// Target-name expansion and validation for LoraOptions.
#include "lora/lora_options.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "model/llama_layout.h"

namespace qlora::lora {

const std::vector<std::string>& valid_target_names() { return model::lora_target_names(); }

std::vector<std::string> resolve_targets(const std::vector<std::string>& targets) {
    const auto& valid = valid_target_names();
    auto valid_list = [&] {
        std::string s = "all-linear";
        for (const auto& n : valid) s += ", " + n;
        return s;
    };
    QLORA_CHECK(!targets.empty(),
                "lora.targets: expected \"all-linear\" or a list of module names (", valid_list(),
                "), found an empty list");
    std::vector<bool> chosen(valid.size(), false);
    for (const auto& t : targets) {
        if (t == "all-linear") {
            std::fill(chosen.begin(), chosen.end() - 1, true);  // every projection but lm_head
            continue;
        }
        auto it = std::find(valid.begin(), valid.end(), t);
        QLORA_CHECK(it != valid.end(), "lora.targets: unknown module name \"", t,
                    "\"; valid names: ", valid_list());
        chosen[static_cast<size_t>(it - valid.begin())] = true;
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < valid.size(); ++i) {
        if (chosen[i]) out.push_back(valid[i]);
    }
    return out;
}

void validate(const LoraOptions& o) {
    QLORA_CHECK(o.r > 0, "lora.r must be > 0, found ", o.r);
    QLORA_CHECK(std::isfinite(o.alpha), "lora.alpha must be finite, found ", o.alpha);
    QLORA_CHECK(o.dropout >= 0.0 && o.dropout < 1.0, "lora.dropout must lie in [0, 1), found ",
                o.dropout);
    QLORA_CHECK(o.dtype == c10::kFloat || o.dtype == c10::kBFloat16 || o.dtype == c10::kHalf ||
                    o.dtype == c10::kDouble,
                "lora dtype must be a floating type, found ", o.dtype);
    resolve_targets(o.targets);
}

double lora_scale(double alpha, int64_t r, bool use_rslora) {
    QLORA_CHECK(r > 0, "lora.r must be > 0, found ", r);
    const double rank = static_cast<double>(r);
    return use_rslora ? alpha / std::sqrt(rank) : alpha / rank;
}

double lora_scale(const LoraOptions& o) { return lora_scale(o.alpha, o.r, o.use_rslora); }

QatMode parse_qat_mode(std::string_view name) { return kQatModeNames.parse(name); }

std::string qat_mode_name(QatMode value) { return kQatModeNames.name(value); }

QatActivations parse_qat_activations(std::string_view name) {
    return kQatActivationsNames.parse(name);
}

std::string qat_activations_name(QatActivations value) { return kQatActivationsNames.name(value); }

}  // namespace qlora::lora
