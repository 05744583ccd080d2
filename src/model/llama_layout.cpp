// The rows of the Llama layout table and the queries over it.
#include "model/llama_layout.h"

#include <algorithm>

#include "core/error.h"

namespace qlora::model {
namespace {

using K = TensorKind;
using P = RopePermute;

const std::vector<TensorRole> kRoles = {
    {Role::kEmbedTokens, "model.embed_tokens.weight", "token_embd.weight", K::kEmbedding, false,
     false, "", P::kNone},
    {Role::kInputNorm, "model.layers.{}.input_layernorm.weight", "blk.{}.attn_norm.weight",
     K::kNorm, true, false, "", P::kNone},
    {Role::kQProj, "model.layers.{}.self_attn.q_proj.weight", "blk.{}.attn_q.weight", K::kLinear,
     true, true, "q_proj", P::kQueryHeads},
    {Role::kQBias, "model.layers.{}.self_attn.q_proj.bias", "blk.{}.attn_q.bias", K::kBias, true,
     false, "", P::kQueryHeads},
    {Role::kKProj, "model.layers.{}.self_attn.k_proj.weight", "blk.{}.attn_k.weight", K::kLinear,
     true, true, "k_proj", P::kKvHeads},
    {Role::kKBias, "model.layers.{}.self_attn.k_proj.bias", "blk.{}.attn_k.bias", K::kBias, true,
     false, "", P::kKvHeads},
    {Role::kVProj, "model.layers.{}.self_attn.v_proj.weight", "blk.{}.attn_v.weight", K::kLinear,
     true, true, "v_proj", P::kNone},
    {Role::kVBias, "model.layers.{}.self_attn.v_proj.bias", "blk.{}.attn_v.bias", K::kBias, true,
     false, "", P::kNone},
    {Role::kOProj, "model.layers.{}.self_attn.o_proj.weight", "blk.{}.attn_output.weight",
     K::kLinear, true, true, "o_proj", P::kNone},
    {Role::kOBias, "model.layers.{}.self_attn.o_proj.bias", "blk.{}.attn_output.bias", K::kBias,
     true, false, "", P::kNone},
    {Role::kPostAttentionNorm, "model.layers.{}.post_attention_layernorm.weight",
     "blk.{}.ffn_norm.weight", K::kNorm, true, false, "", P::kNone},
    {Role::kGateProj, "model.layers.{}.mlp.gate_proj.weight", "blk.{}.ffn_gate.weight", K::kLinear,
     true, true, "gate_proj", P::kNone},
    {Role::kGateBias, "model.layers.{}.mlp.gate_proj.bias", "blk.{}.ffn_gate.bias", K::kBias, true,
     false, "", P::kNone},
    {Role::kUpProj, "model.layers.{}.mlp.up_proj.weight", "blk.{}.ffn_up.weight", K::kLinear, true,
     true, "up_proj", P::kNone},
    {Role::kUpBias, "model.layers.{}.mlp.up_proj.bias", "blk.{}.ffn_up.bias", K::kBias, true, false,
     "", P::kNone},
    {Role::kDownProj, "model.layers.{}.mlp.down_proj.weight", "blk.{}.ffn_down.weight", K::kLinear,
     true, true, "down_proj", P::kNone},
    {Role::kDownBias, "model.layers.{}.mlp.down_proj.bias", "blk.{}.ffn_down.bias", K::kBias, true,
     false, "", P::kNone},
    {Role::kFinalNorm, "model.norm.weight", "output_norm.weight", K::kNorm, false, false, "",
     P::kNone},
    {Role::kLmHead, "lm_head.weight", "output.weight", K::kLinear, false, false, "lm_head",
     P::kNone},
};

// [out, in] of each linear role (biases take the out of their linear).
std::pair<int64_t, int64_t> linear_out_in(Role role, const LlamaConfig& c) {
    switch (role) {
        case Role::kQProj:
        case Role::kQBias:
            return {c.q_dim(), c.hidden_size};
        case Role::kKProj:
        case Role::kKBias:
        case Role::kVProj:
        case Role::kVBias:
            return {c.kv_dim(), c.hidden_size};
        case Role::kOProj:
        case Role::kOBias:
            return {c.hidden_size, c.q_dim()};
        case Role::kGateProj:
        case Role::kGateBias:
        case Role::kUpProj:
        case Role::kUpBias:
            return {c.intermediate_size, c.hidden_size};
        case Role::kDownProj:
        case Role::kDownBias:
            return {c.hidden_size, c.intermediate_size};
        case Role::kLmHead:
            return {c.vocab_size, c.hidden_size};
        default:
            return {0, 0};
    }
}

}  // namespace

const std::vector<TensorRole>& llama_roles() { return kRoles; }

const TensorRole& role_info(Role role) {
    for (const TensorRole& r : kRoles) {
        if (r.role == role) return r;
    }
    QLORA_FAIL("internal: role ", static_cast<int>(role), " is not in the Llama layout table");
}

bool role_present(const TensorRole& r, const LlamaConfig& c) {
    switch (r.role) {
        case Role::kQBias:
        case Role::kKBias:
        case Role::kVBias:
            return c.qkv_bias;
        case Role::kOBias:
            return c.o_bias;
        case Role::kGateBias:
        case Role::kUpBias:
        case Role::kDownBias:
            return c.mlp_bias;
        case Role::kLmHead:
            return !c.tie_word_embeddings;
        default:
            return true;
    }
}

std::vector<int64_t> role_shape(const TensorRole& r, const LlamaConfig& c) {
    switch (r.kind) {
        case TensorKind::kEmbedding:
            return {c.vocab_size, c.hidden_size};
        case TensorKind::kNorm:
            return {c.hidden_size};
        case TensorKind::kBias:
            return {linear_out_in(r.role, c).first};
        case TensorKind::kLinear: {
            const auto [out, in] = linear_out_in(r.role, c);
            return {out, in};
        }
    }
    return {};
}

std::string fill_layer(std::string_view pattern, int64_t layer) {
    std::string s(pattern);
    const size_t at = s.find("{}");
    if (at != std::string::npos) s.replace(at, 2, std::to_string(layer));
    return s;
}

std::string hf_module(const TensorRole& role, int64_t layer) {
    std::string name = fill_layer(role.hf_pattern, layer);
    return name.substr(0, name.rfind('.'));
}

std::vector<LlamaTensor> llama_tensors(const LlamaConfig& c) {
    std::vector<LlamaTensor> out;
    auto add = [&](const TensorRole& r, int64_t layer) {
        if (!role_present(r, c)) return;
        out.push_back({&r, layer, fill_layer(r.hf_pattern, layer),
                       fill_layer(r.gguf_pattern, layer), role_shape(r, c)});
    };
    const TensorRole& embed = kRoles.front();
    add(embed, -1);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        for (const TensorRole& r : kRoles) {
            if (r.per_layer) add(r, l);
        }
    }
    for (const TensorRole& r : kRoles) {
        if (!r.per_layer && r.role != Role::kEmbedTokens) add(r, -1);
    }
    return out;
}

const std::vector<std::string>& lora_target_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const TensorRole& r : kRoles) {
            if (!r.lora_target.empty()) v.emplace_back(r.lora_target);
        }
        return v;
    }();
    return names;
}

const std::vector<std::string>& quantized_projection_names() {
    static const std::vector<std::string> names = [] {
        std::vector<std::string> v;
        for (const TensorRole& r : kRoles) {
            if (r.quantized) v.emplace_back(r.lora_target);
        }
        return v;
    }();
    return names;
}

bool is_quantized_weight_name(std::string_view name) {
    if (!name.starts_with("model.layers.") || !name.ends_with(".weight")) return false;
    const std::string_view rest = name.substr(13);
    const size_t dot = rest.find('.');
    if (dot == std::string_view::npos || dot == 0) return false;
    if (!std::all_of(rest.begin(), rest.begin() + static_cast<std::ptrdiff_t>(dot),
                     [](char ch) { return ch >= '0' && ch <= '9'; })) {
        return false;
    }
    const std::string_view suffix = rest.substr(dot);  // ".self_attn.q_proj.weight"
    return std::any_of(kRoles.begin(), kRoles.end(), [&](const TensorRole& r) {
        return r.quantized && r.hf_pattern.substr(r.hf_pattern.find("{}") + 2) == suffix;
    });
}

}  // namespace qlora::model
