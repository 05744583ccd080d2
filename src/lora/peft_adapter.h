// PEFT LoRA adapters on disk (DESIGN.md section 10): adapter_config.json +
// adapter_model.safetensors with keys
// base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight ([r, in]) and
// ...lora_B.weight ([out, r]), metadata {"format": "pt"}. What PEFT's save_pretrained writes and
// PeftModel.from_pretrained reads; also reads adapters PEFT saved.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace qlora::lora {

struct PeftLoraConfig {
    int64_t r = 8;
    double lora_alpha = 16;
    double lora_dropout = 0.0;
    bool use_rslora = false;
    std::vector<std::string> target_modules;  // e.g. q_proj, k_proj, ... (sorted when written)
    std::string base_model_name_or_path;
    std::string bias = "none";
    std::string task_type = "CAUSAL_LM";

    // alpha / r, or alpha / sqrt(r) with rsLoRA (PEFT's scaling).
    double scale() const;
};

struct PeftAdapter {
    PeftLoraConfig config;
    std::map<std::string, at::Tensor> tensors;  // PEFT names -> lora_A [r, in] / lora_B [out, r]
};

// Writes dir/adapter_config.json and dir/adapter_model.safetensors (each atomically). The folder
// must exist. Tensors are written in float32 unless `dtype` says otherwise.
void save_peft_adapter(const std::string& dir, const PeftAdapter& adapter,
                       c10::ScalarType dtype = at::kFloat);

// Reads and validates an adapter folder: config fields and types, every tensor a lora_A/lora_B
// pair with rank r, no unknown keys. Errors name the file and the key.
PeftAdapter load_peft_adapter(const std::string& dir);

// "base_model.model.model.layers.3.mlp.up_proj.lora_A.weight" -> {"model.layers.3.mlp.up_proj",
// "A"}. Returns false for names that are not LoRA weights.
bool split_lora_name(const std::string& peft_name, std::string* module, char* which);
std::string lora_name(const std::string& module, char which);

}  // namespace qlora::lora
