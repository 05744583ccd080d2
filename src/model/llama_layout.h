// The Llama layout table: one row per tensor role of a Llama-family checkpoint, with its Hugging
// Face name, its GGUF name, its shape as a function of the config, what kind of tensor it is,
// whether a 4-bit base stores it in NF4, its LoRA target name and its RoPE permutation. Every
// component that names tensors (loader, merge, GGUF export and import, memory plan, qlora-quantize,
// LoRA target validation) reads this table, so a fact about a tensor is written down once
// (llama.cpp's llama-arch.cpp name tables and torchtune's _FROM_HF play the same part).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "model/llama_config.h"

namespace qlora::model {

enum class TensorKind { kEmbedding, kNorm, kLinear, kBias };

// llama.cpp stores q and k rows in an interleaved RoPE order (convert_hf_to_gguf.py's permute);
// the head count to permute by is the query's or the key/value's.
enum class RopePermute { kNone, kQueryHeads, kKvHeads };

enum class Role {
    kEmbedTokens,
    kInputNorm,
    kQProj,
    kKProj,
    kVProj,
    kOProj,
    kQBias,
    kKBias,
    kVBias,
    kOBias,
    kPostAttentionNorm,
    kGateProj,
    kUpProj,
    kDownProj,
    kGateBias,
    kUpBias,
    kDownBias,
    kFinalNorm,
    kLmHead,
};

struct TensorRole {
    Role role;
    // HF name; "{}" is the layer index for per-layer roles:
    // "model.layers.{}.self_attn.q_proj.weight".
    std::string_view hf_pattern;
    // GGUF name, "{}" likewise: "blk.{}.attn_q.weight".
    std::string_view gguf_pattern;
    TensorKind kind;
    bool per_layer;
    bool quantized;  // stored in NF4 by a 4-bit base (bitsandbytes' choice: decoder linears)
    std::string_view lora_target;  // "q_proj" ... "lm_head", or "" when LoRA cannot target it
    RopePermute rope;
};

// Every role in checkpoint order (per layer: norm, q, k, v, o, norm, gate, up, down, each linear's
// bias right after its weight).
const std::vector<TensorRole>& llama_roles();
const TensorRole& role_info(Role role);

// The roles a config has (biases only when the config says so; lm_head only when untied).
bool role_present(const TensorRole& role, const LlamaConfig& config);
// [out, in] for linears, [out] for biases and norms, [vocab, hidden] for embeddings.
std::vector<int64_t> role_shape(const TensorRole& role, const LlamaConfig& config);

// One concrete tensor of a model.
struct LlamaTensor {
    const TensorRole* role;
    int64_t layer;  // -1 for model-wide tensors
    std::string hf_name;
    std::string gguf_name;
    std::vector<int64_t> shape;
};
// Every tensor a model with this config is made of, in checkpoint order.
std::vector<LlamaTensor> llama_tensors(const LlamaConfig& config);

// "model.layers.{}.x" with the layer filled in ("model.embed_tokens.weight" unchanged).
std::string fill_layer(std::string_view pattern, int64_t layer);
// The HF module of a linear or bias role ("model.layers.3.self_attn.q_proj"), no ".weight".
std::string hf_module(const TensorRole& role, int64_t layer);

// LoRA target names in model order: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
// down_proj, lm_head. "all-linear" means all but lm_head (PEFT's meaning: the output layer is
// excluded).
const std::vector<std::string>& lora_target_names();
// The decoder projections a 4-bit base quantizes: the first seven of lora_target_names().
const std::vector<std::string>& quantized_projection_names();
// True for the weight of a decoder linear that a 4-bit base stores in NF4.
bool is_quantized_weight_name(std::string_view hf_name);

}  // namespace qlora::model
