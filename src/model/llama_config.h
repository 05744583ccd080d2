// LlamaConfig: the typed view of a Hugging Face config.json for the Llama family (Llama 1/2/3.x,
// TinyLlama, Mistral, Qwen2). Parsing reports every bad key at once, naming the file and the key.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qlora::model {

// rope_scaling / rope_parameters: how inv_freq is rescaled for long contexts (transformers'
// ROPE_INIT_FUNCTIONS: "default", "linear" and "llama3" are the ones we implement).
struct RopeScaling {
    std::string type = "default";
    double factor = 1.0;
    double low_freq_factor = 1.0;                  // llama3 only
    double high_freq_factor = 4.0;                 // llama3 only
    int64_t original_max_position_embeddings = 0;  // llama3 only
};

struct LlamaConfig {
    std::string model_type = "llama";  // llama | mistral | qwen2
    int64_t hidden_size = 0;
    int64_t intermediate_size = 0;
    int64_t num_hidden_layers = 0;
    int64_t num_attention_heads = 0;
    int64_t num_key_value_heads = 0;  // defaults to num_attention_heads (MHA)
    int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
    int64_t vocab_size = 0;
    int64_t max_position_embeddings = 2048;
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    RopeScaling rope_scaling;
    bool tie_word_embeddings = false;
    // Bias terms: Llama's attention_bias puts a bias on q, k, v AND o; Qwen2 has q/k/v bias only.
    bool qkv_bias = false;
    bool o_bias = false;
    bool mlp_bias = false;
    std::optional<int64_t> bos_token_id;
    std::vector<int64_t> eos_token_ids;  // eos_token_id may be a list (Llama 3)
    std::optional<int64_t> pad_token_id;
    std::string torch_dtype;  // "float32", "bfloat16", ... ("" when absent)
    // Present when the folder holds a bitsandbytes 4-bit checkpoint (qlora-quantize output).
    std::optional<nlohmann::json> quantization_config;

    int64_t q_dim() const { return num_attention_heads * head_dim; }
    int64_t kv_dim() const { return num_key_value_heads * head_dim; }
    bool is_eos(int64_t id) const;
    // Parameter count of the dense model (embeddings counted once when tied).
    int64_t num_parameters() const;

    // `source` names the file in error messages ("path/config.json").
    static LlamaConfig from_json(const nlohmann::json& j,
                                 const std::string& source = "config.json");
    // A config.json path, or a model folder holding one.
    static LlamaConfig load(const std::string& path);
};

}  // namespace qlora::model
