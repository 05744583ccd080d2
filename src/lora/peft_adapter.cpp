// Reading and writing PEFT LoRA adapter folders.
#include "lora/peft_adapter.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/json_value.h"
#include "io/atomic_file.h"
#include "io/finite_check.h"
#include "io/safetensors.h"
#include "lora/lora_options.h"

namespace fs = std::filesystem;

namespace qlora::lora {
namespace {

const std::string kPrefix = "base_model.model.";
const std::string kSuffixA = ".lora_A.weight";
const std::string kSuffixB = ".lora_B.weight";

}  // namespace

double PeftLoraConfig::scale() const { return lora::lora_scale(lora_alpha, r, use_rslora); }

bool split_lora_name(const std::string& peft_name, std::string* module, char* which) {
    auto ends_with = [&](const std::string& s) {
        return peft_name.size() > s.size() &&
               peft_name.compare(peft_name.size() - s.size(), s.size(), s) == 0;
    };
    if (peft_name.rfind(kPrefix, 0) != 0) return false;
    const bool a = ends_with(kSuffixA);
    if (!a && !ends_with(kSuffixB)) return false;
    *module = peft_name.substr(kPrefix.size(), peft_name.size() - kPrefix.size() - kSuffixA.size());
    *which = a ? 'A' : 'B';
    return !module->empty();
}

std::string lora_name(const std::string& module, char which) {
    return kPrefix + module + (which == 'A' ? kSuffixA : kSuffixB);
}

void save_peft_adapter(const std::string& dir, const PeftAdapter& adapter, c10::ScalarType dtype) {
    QLORA_CHECK(fs::is_directory(dir), dir, ": adapter folder does not exist");
    const PeftLoraConfig& c = adapter.config;
    std::vector<std::string> targets = c.target_modules;
    std::sort(targets.begin(), targets.end());
    nlohmann::ordered_json j;
    j["alpha_pattern"] = nlohmann::json::object();
    j["auto_mapping"] = nullptr;
    j["base_model_name_or_path"] = c.base_model_name_or_path;
    j["bias"] = c.bias;
    j["fan_in_fan_out"] = false;
    j["inference_mode"] = true;
    j["init_lora_weights"] = true;
    j["layers_pattern"] = nullptr;
    j["layers_to_transform"] = nullptr;
    j["lora_alpha"] = c.lora_alpha;
    j["lora_dropout"] = c.lora_dropout;
    j["modules_to_save"] = nullptr;
    j["peft_type"] = "LORA";
    j["r"] = c.r;
    j["rank_pattern"] = nlohmann::json::object();
    j["revision"] = nullptr;
    j["target_modules"] = targets;
    j["task_type"] = c.task_type;
    j["use_dora"] = false;
    j["use_rslora"] = c.use_rslora;
    io::write_file_atomic((fs::path(dir) / "adapter_config.json").string(), j.dump(2) + "\n");

    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& [name, t] : adapter.tensors) {
        QLORA_CHECK(at::isfinite(t).all().item<bool>(), name,
                    ": holds NaN or Inf; refusing to save the adapter");
        tensors.emplace_back(name, t.detach().to(at::kCPU, dtype).contiguous());
    }
    io::save_safetensors((fs::path(dir) / "adapter_model.safetensors").string(), tensors,
                         {{"format", "pt"}});
}

PeftAdapter load_peft_adapter(const std::string& dir) {
    const std::string config_path = (fs::path(dir) / "adapter_config.json").string();
    std::ifstream in(config_path);
    QLORA_CHECK(in.good(), config_path, ": cannot open (expected a PEFT LoRA adapter folder)");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {  // parse errors and number overflow
        QLORA_FAIL(config_path, ": not valid JSON (", e.what(), ")");
    }
    QLORA_CHECK(j.is_object(), config_path, ": must hold a JSON object");
    const std::string peft_type = json_field_or<std::string>(j, "peft_type", "", config_path);
    QLORA_CHECK(peft_type == "LORA", config_path, ": peft_type must be \"LORA\", found \"",
                peft_type, "\"");
    PeftAdapter adapter;
    PeftLoraConfig& c = adapter.config;
    c.r = json_field_or<int64_t>(j, "r", 8, config_path);
    QLORA_CHECK(c.r > 0 && c.r <= 65536, config_path, ": r must lie in [1, 65536], found ", c.r);
    c.lora_alpha = json_field_or<double>(j, "lora_alpha", 8.0, config_path);
    QLORA_CHECK(std::isfinite(c.lora_alpha), config_path,
                ": lora_alpha must be a finite number, found ", c.lora_alpha);
    c.lora_dropout = json_field_or<double>(j, "lora_dropout", 0.0, config_path);
    QLORA_CHECK(c.lora_dropout >= 0.0 && c.lora_dropout < 1.0, config_path,
                ": lora_dropout must lie in [0, 1), found ", c.lora_dropout);
    c.use_rslora = json_field_or<bool>(j, "use_rslora", false, config_path);
    c.bias = json_field_or<std::string>(j, "bias", "none", config_path);
    QLORA_CHECK(c.bias == "none", config_path,
                ": only bias \"none\" adapters are supported, found \"", c.bias, "\"");
    QLORA_CHECK(!json_field_or<bool>(j, "use_dora", false, config_path), config_path,
                ": DoRA adapters are not supported");
    c.base_model_name_or_path =
        json_field_or<std::string>(j, "base_model_name_or_path", "", config_path);
    c.task_type = json_field_or<std::string>(j, "task_type", "CAUSAL_LM", config_path);
    if (j.contains("target_modules") && j["target_modules"].is_string()) {
        c.target_modules = {j["target_modules"].get<std::string>()};
    } else {
        c.target_modules =
            json_field_or<std::vector<std::string>>(j, "target_modules", {}, config_path);
    }

    const std::string weights = (fs::path(dir) / "adapter_model.safetensors").string();
    QLORA_CHECK(fs::exists(weights), weights, ": missing (only safetensors adapters are read)");
    io::SafetensorsReader reader(weights);
    std::set<std::string> modules;
    for (const std::string& name : reader.names()) {
        std::string module;
        char which = 0;
        QLORA_CHECK(split_lora_name(name, &module, &which), weights, ": unexpected tensor '", name,
                    "' (expected base_model.model.<module>.lora_A.weight / .lora_B.weight)");
        at::Tensor t = reader.load(name).to(at::kFloat);
        io::check_finite(t, name, weights);
        QLORA_CHECK(t.dim() == 2, weights, ": '", name, "' must be 2-D, found shape ", t.sizes());
        const int64_t rank_dim = which == 'A' ? t.size(0) : t.size(1);
        QLORA_CHECK(rank_dim == c.r, weights, ": '", name, "' has rank ", rank_dim,
                    " but adapter_config.json says r=", c.r);
        adapter.tensors[name] = t;
        modules.insert(module);
    }
    QLORA_CHECK(!modules.empty(), weights, ": holds no LoRA weights");
    for (const std::string& m : modules) {
        QLORA_CHECK(
            adapter.tensors.count(lora_name(m, 'A')) && adapter.tensors.count(lora_name(m, 'B')),
            weights, ": module '", m, "' has only one of lora_A / lora_B");
    }
    return adapter;
}

}  // namespace qlora::lora
