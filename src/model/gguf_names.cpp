// The name table follows llama.cpp's gguf-py tensor_mapping (MODEL_ARCH.LLAMA) for the tensors our
// Llama has; the permutation is a reshape and a transpose of the row dimension.
#include "model/gguf_names.h"

#include <utility>
#include <vector>

namespace qlora::model {
namespace {

// blk.N.<gguf> -> model.layers.N.<hf>
constexpr std::pair<const char*, const char*> kBlockNames[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

}  // namespace

std::optional<std::string> hf_name_for_gguf(const std::string& gguf_name) {
    if (gguf_name == "token_embd.weight") return "model.embed_tokens.weight";
    if (gguf_name == "output_norm.weight") return "model.norm.weight";
    if (gguf_name == "output.weight") return "lm_head.weight";
    if (!gguf_name.starts_with("blk.")) return std::nullopt;
    const size_t dot = gguf_name.find('.', 4);
    if (dot == std::string::npos || dot == 4) return std::nullopt;
    const std::string layer = gguf_name.substr(4, dot - 4);
    if (layer.size() > 6 || layer.find_first_not_of("0123456789") != std::string::npos)
        return std::nullopt;
    const std::string rest = gguf_name.substr(dot + 1);
    for (const auto& [gguf, hf] : kBlockNames) {
        if (rest == gguf) return "model.layers." + layer + "." + hf;
    }
    return std::nullopt;
}

int64_t rope_permute_heads(const std::string& hf_name, int64_t n_heads, int64_t n_kv_heads) {
    if (hf_name.ends_with("self_attn.q_proj.weight") || hf_name.ends_with("self_attn.q_proj.bias"))
        return n_heads;
    if (hf_name.ends_with("self_attn.k_proj.weight") || hf_name.ends_with("self_attn.k_proj.bias"))
        return n_kv_heads;
    return 0;
}

at::Tensor permute_rope_rows(const at::Tensor& w, int64_t n_heads) {
    TORCH_CHECK(w.dim() >= 1 && w.size(0) % (2 * n_heads) == 0, "permute_rope_rows: ", w.size(0),
                " rows do not split into ", n_heads, " heads of an even size");
    std::vector<int64_t> split = {n_heads, 2, w.size(0) / n_heads / 2};
    for (int64_t i = 1; i < w.dim(); ++i) split.push_back(w.size(i));
    return w.reshape(split).transpose(1, 2).reshape(w.sizes()).contiguous();
}

at::Tensor unpermute_rope_rows(const at::Tensor& w, int64_t n_heads) {
    TORCH_CHECK(w.dim() >= 1 && w.size(0) % (2 * n_heads) == 0, "unpermute_rope_rows: ", w.size(0),
                " rows do not split into ", n_heads, " heads of an even size");
    std::vector<int64_t> split = {n_heads, w.size(0) / n_heads / 2, 2};
    for (int64_t i = 1; i < w.dim(); ++i) split.push_back(w.size(i));
    return w.reshape(split).transpose(1, 2).reshape(w.sizes()).contiguous();
}

}  // namespace qlora::model
