// A tiny Llama folder with formula weights (torchtune's fixed_init idea) and PEFT adapters for it,
// shared by the merge and export tests: 2 layers, hidden 16, intermediate 32, 2 heads of 8 with one
// KV head, vocab 32, untied lm_head.
#pragma once

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "lora/peft_adapter.h"
#include "support/test_support.h"

namespace qlora::exporting::fixture {

inline const char* kLinears[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                 "self_attn.o_proj", "mlp.gate_proj",    "mlp.up_proj",
                                 "mlp.down_proj"};

// [out, in] of each linear above.
inline std::vector<int64_t> linear_shape(const std::string& linear) {
    if (linear == "self_attn.q_proj" || linear == "self_attn.o_proj") return {16, 16};
    if (linear == "self_attn.k_proj" || linear == "self_attn.v_proj") return {8, 16};
    if (linear == "mlp.down_proj") return {16, 32};
    return {32, 16};
}

// Deterministic, nonzero, different per tensor: 0.1 * sin(0.37 * i + seed).
inline at::Tensor formula(std::vector<int64_t> shape, double seed) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return (at::arange(n, at::kDouble).mul(0.37).add(seed).sin().mul(0.1))
        .to(at::kFloat)
        .view(shape);
}

inline nlohmann::json tiny_config(bool tie = false) {
    return {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"vocab_size", 32},
            {"hidden_size", 16},
            {"intermediate_size", 32},
            {"num_hidden_layers", 2},
            {"num_attention_heads", 2},
            {"num_key_value_heads", 1},
            {"head_dim", 8},
            {"max_position_embeddings", 64},
            {"rms_norm_eps", 1e-5},
            {"rope_theta", 10000.0},
            {"hidden_act", "silu"},
            {"tie_word_embeddings", tie},
            {"bos_token_id", 1},
            {"eos_token_id", 2},
            {"torch_dtype", "float32"}};
}

// Writes dir/config.json, dir/model.safetensors and a stand-in tokenizer.model (copied, not read).
inline void write_tiny_base(const std::string& dir, bool tie = false) {
    std::filesystem::create_directories(dir);
    std::ofstream(dir + "/config.json") << tiny_config(tie).dump(2);
    std::ofstream(dir + "/tokenizer.model") << "not a real tokenizer";
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    double seed = 0.0;
    tensors.emplace_back("model.embed_tokens.weight", formula({32, 16}, seed += 1));
    for (int l = 0; l < 2; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        tensors.emplace_back(p + "input_layernorm.weight",
                             at::ones({16}) + formula({16}, seed += 1));
        tensors.emplace_back(p + "post_attention_layernorm.weight",
                             at::ones({16}) + formula({16}, seed += 1));
        for (const char* linear : kLinears) {
            tensors.emplace_back(p + linear + ".weight", formula(linear_shape(linear), seed += 1));
        }
    }
    tensors.emplace_back("model.norm.weight", at::ones({16}) + formula({16}, seed += 1));
    if (!tie) tensors.emplace_back("lm_head.weight", formula({32, 16}, seed += 1));
    io::save_safetensors(dir + "/model.safetensors", tensors);
}

// An adapter on `linears` of both layers (r, alpha as given), with formula A and B (B nonzero).
inline lora::PeftAdapter tiny_adapter(int64_t r = 4, double alpha = 8,
                                      const std::vector<std::string>& linears = {
                                          std::begin(kLinears), std::end(kLinears)}) {
    lora::PeftAdapter adapter;
    adapter.config.r = r;
    adapter.config.lora_alpha = alpha;
    double seed = 100.0;
    for (const std::string& linear : linears) {
        adapter.config.target_modules.push_back(linear.substr(linear.find('.') + 1));
        const std::vector<int64_t> shape = linear_shape(linear);
        for (int l = 0; l < 2; ++l) {
            const std::string module = "model.layers." + std::to_string(l) + "." + linear;
            adapter.tensors[lora::lora_name(module, 'A')] = formula({r, shape[1]}, seed += 1);
            adapter.tensors[lora::lora_name(module, 'B')] = formula({shape[0], r}, seed += 1);
        }
    }
    return adapter;
}

inline std::string write_adapter(const std::string& dir, const lora::PeftAdapter& adapter) {
    std::filesystem::create_directories(dir);
    lora::save_peft_adapter(dir, adapter);
    return dir;
}

}  // namespace qlora::exporting::fixture
