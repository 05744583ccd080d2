// llama.cpp's tensor names for the llama architecture and the Q/K row order it stores: GGUF
// token_embd / blk.N.* / output_norm / output <-> Hugging Face model.* / lm_head names, and
// convert_hf_to_gguf's LlamaModel.permute (rotate-half RoPE rows -> interleaved) with its inverse.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <optional>
#include <string>

namespace qlora::model {

// "blk.3.attn_q.weight" -> "model.layers.3.self_attn.q_proj.weight"; nullopt for a name with no
// Hugging Face counterpart (rope_freqs.weight, or anything llama.cpp's llama graph does not use).
std::optional<std::string> hf_name_for_gguf(const std::string& gguf_name);

// Heads to un-permute for a Hugging Face name: n_heads for q_proj, n_kv_heads for k_proj (weights
// and biases), 0 for every other tensor.
int64_t rope_permute_heads(const std::string& hf_name, int64_t n_heads, int64_t n_kv_heads);

// convert_hf_to_gguf's LlamaModel.permute: rows [n_heads, 2, head_dim/2] -> [n_heads, head_dim/2,
// 2].
at::Tensor permute_rope_rows(const at::Tensor& w, int64_t n_heads);
// Its inverse (GGUF order back to Hugging Face order).
at::Tensor unpermute_rope_rows(const at::Tensor& w, int64_t n_heads);

}  // namespace qlora::model
