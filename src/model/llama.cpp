// Forward pass of the Llama decoder: embed, per layer (norm, attention with RoPE and GQA, residual,
// norm, SwiGLU, residual), final norm, lm_head. Shapes: B batch, T new tokens, H heads, D head dim.
#include "model/llama.h"

#include <ATen/core/grad_mode.h>

#include <algorithm>

#include "core/error.h"
#include "model/rms_norm.h"
#include "model/rope.h"
#include "model/swiglu.h"

namespace qlora::model {

// ---- RMSNorm
// --------------------------------------------------------------------------------------

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
    weight = register_parameter("weight", at::ones({dim}), /*requires_grad=*/false);
}

at::Tensor RMSNormImpl::forward(const at::Tensor& x) {
    // On the CPU: one fused pass each way instead of eight dispatched ops (model/rms_norm.h).
    if (fused_rms_norm_applies(x, weight)) return fused_rms_norm(x, weight, eps_);
    at::Tensor h = x.to(at::kFloat);
    at::Tensor variance = h.pow(2).mean(-1, /*keepdim=*/true);
    h = h * at::rsqrt(variance + eps_);
    return weight * h.to(x.scalar_type());
}

// ---- KV cache
// -------------------------------------------------------------------------------------

KvCache KvCache::allocate(const LlamaConfig& config, int64_t batch, int64_t max_len,
                          const at::TensorOptions& options) {
    KvCache cache;
    cache.max_len = max_len;
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) {
        cache.k.push_back(
            at::zeros({batch, config.num_key_value_heads, max_len, config.head_dim}, options));
        cache.v.push_back(
            at::zeros({batch, config.num_key_value_heads, max_len, config.head_dim}, options));
    }
    return cache;
}

// ---- attention
// ------------------------------------------------------------------------------------

AttentionImpl::AttentionImpl(const LlamaConfig& c, const std::string& prefix)
    : n_heads_(c.num_attention_heads), n_kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
    q_proj =
        register_module("q_proj", Linear(c.hidden_size, c.q_dim(), c.qkv_bias, prefix + "q_proj"));
    k_proj =
        register_module("k_proj", Linear(c.hidden_size, c.kv_dim(), c.qkv_bias, prefix + "k_proj"));
    v_proj =
        register_module("v_proj", Linear(c.hidden_size, c.kv_dim(), c.qkv_bias, prefix + "v_proj"));
    o_proj =
        register_module("o_proj", Linear(c.q_dim(), c.hidden_size, c.o_bias, prefix + "o_proj"));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                                  int64_t start_pos, at::Tensor* cache_k, at::Tensor* cache_v,
                                  const at::Tensor& attention_mask) {
    const int64_t B = x.size(0), T = x.size(1);
    at::Tensor q = q_proj(x).view({B, T, n_heads_, head_dim_}).transpose(1, 2);  // [B, H, T, D]
    at::Tensor k =
        k_proj(x).view({B, T, n_kv_heads_, head_dim_}).transpose(1, 2);  // [B, Hkv, T, D]
    at::Tensor v =
        v_proj(x).view({B, T, n_kv_heads_, head_dim_}).transpose(1, 2);  // [B, Hkv, T, D]
    q = apply_rope(q, cos, sin);
    k = apply_rope(k, cos, sin);

    int64_t n_keys = T;
    if (cache_k != nullptr) {
        QLORA_CHECK(start_pos + T <= cache_k->size(2), "KV cache holds ", cache_k->size(2),
                    " positions; ", start_pos + T, " were asked for");
        cache_k->narrow(2, start_pos, T).copy_(k);
        cache_v->narrow(2, start_pos, T).copy_(v);
        n_keys = start_pos + T;
        k = cache_k->narrow(2, 0, n_keys);  // [B, Hkv, start_pos + T, D]
        v = cache_v->narrow(2, 0, n_keys);
    }

    // Query i sits at key position i + (n_keys - T). SDPA's is_causal aligns the mask top-left,
    // which is right only when there are as many keys as queries, so other cases get a mask.
    std::optional<at::Tensor> mask;
    bool is_causal = false;
    if (!attention_mask.defined() && n_keys == T) {
        is_causal = T > 1;
    } else if (!attention_mask.defined() && T == 1) {
        // one new token attends to everything cached: no mask
    } else {
        auto opts = at::TensorOptions().dtype(at::kLong).device(x.device());
        at::Tensor causal = at::arange(n_keys, opts).unsqueeze(0) <=
                            (at::arange(T, opts) + (n_keys - T)).unsqueeze(1);  // [T, n_keys]
        mask = attention_mask.defined() ? (causal & attention_mask.to(at::kBool)) : causal;
    }
    at::Tensor out = at::scaled_dot_product_attention(q, k, v, mask, 0.0, is_causal, std::nullopt,
                                                      /*enable_gqa=*/n_heads_ != n_kv_heads_);
    out = out.transpose(1, 2).reshape({B, T, n_heads_ * head_dim_});  // [B, T, H·D]
    return o_proj(out);
}

// ---- MLP
// ------------------------------------------------------------------------------------------

MlpImpl::MlpImpl(const LlamaConfig& c, const std::string& prefix) {
    gate_proj = register_module(
        "gate_proj", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias, prefix + "gate_proj"));
    up_proj = register_module(
        "up_proj", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias, prefix + "up_proj"));
    down_proj = register_module(
        "down_proj", Linear(c.intermediate_size, c.hidden_size, c.mlp_bias, prefix + "down_proj"));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) {
    at::Tensor g = gate_proj(x), u = up_proj(x);  // [B, T, I]
    // On the CPU: one fused pass each way (model/swiglu.h).
    at::Tensor h = fused_swiglu_applies(g, u) ? fused_swiglu(g, u) : at::silu(g) * u;
    return down_proj(h);  // [B, T, hidden]
}

// ---- decoder layer
// --------------------------------------------------------------------------------

DecoderLayerImpl::DecoderLayerImpl(const LlamaConfig& c, int64_t index) {
    const std::string prefix = "model.layers." + std::to_string(index) + ".";
    input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
    self_attn = register_module("self_attn", Attention(c, prefix + "self_attn."));
    post_attention_layernorm =
        register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps));
    mlp = register_module("mlp", Mlp(c, prefix + "mlp."));
}

at::Tensor DecoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& cos,
                                     const at::Tensor& sin, int64_t start_pos, at::Tensor* cache_k,
                                     at::Tensor* cache_v, const at::Tensor& attention_mask) {
    const LayerWeightsLease lease(weights_source.get(), *this);
    at::Tensor h =
        x + self_attn(input_layernorm(x), cos, sin, start_pos, cache_k, cache_v, attention_mask);
    return h + mlp(post_attention_layernorm(h));
}

std::vector<Linear> DecoderLayerImpl::linears() const {
    return {self_attn->q_proj, self_attn->k_proj, self_attn->v_proj, self_attn->o_proj,
            mlp->gate_proj,    mlp->up_proj,      mlp->down_proj};
}

// ---- the model
// ------------------------------------------------------------------------------------

LlamaImpl::LlamaImpl(LlamaConfig config) : config_(std::move(config)) {
    const LlamaConfig& c = config_;
    embed_weight = register_parameter("embed_tokens", at::Tensor(), /*requires_grad=*/false);
    for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
        layers.push_back(register_module("layer" + std::to_string(l), DecoderLayer(c, l)));
    }
    norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps));
    lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false, "lm_head"));
    inv_freq = register_buffer("inv_freq", rope_inv_freq(c));
}

at::Tensor LlamaImpl::hidden_states(const at::Tensor& tokens, int64_t start_pos, KvCache* cache,
                                    const ForwardOptions& options) {
    QLORA_CHECK(tokens.dim() == 2 && tokens.scalar_type() == at::kLong,
                "model input: expected int64 tokens [B, T], found ", tokens.scalar_type(), " ",
                tokens.sizes());
    QLORA_CHECK(embed_weight.defined(), "model weights were never loaded");
    const int64_t T = tokens.size(1);
    if (tokens.is_cpu() && tokens.numel() > 0) {
        int64_t lo = tokens.min().item<int64_t>(), hi = tokens.max().item<int64_t>();
        QLORA_CHECK(
            lo >= 0 && hi < config_.vocab_size, "token id ", lo < 0 ? lo : hi,
            " is outside the model's vocabulary: config.json has vocab_size ", config_.vocab_size,
            " (ids must lie in [0, ", config_.vocab_size,
            ")); the tokenizer does not match the model, or the ids come from another vocabulary");
    }
    if (cache != nullptr) {
        QLORA_CHECK(cache->k.size() == layers.size() && cache->k[0].size(0) == tokens.size(0),
                    "KV cache was allocated for another model or batch size");
    }
    at::Tensor ids = tokens.to(device());
    at::Tensor positions = options.position_ids.defined()
                               ? options.position_ids.to(device())
                               : at::arange(start_pos, start_pos + T, ids.options());
    at::Tensor h = at::embedding(embed_weight, ids);                       // [B, T, hidden]
    auto [cos, sin] = rope_cos_sin(inv_freq, positions, h.scalar_type());  // [N, T, D]
    at::Tensor mask =
        options.attention_mask.defined() ? options.attention_mask.to(device()) : at::Tensor();
    for (size_t l = 0; l < layers.size(); ++l) {
        at::Tensor* ck = cache != nullptr ? &cache->k[l] : nullptr;
        at::Tensor* cv = cache != nullptr ? &cache->v[l] : nullptr;
        if (layer_runner && cache == nullptr) {
            h = layer_runner(layers[l], h, cos, sin, mask);
        } else {
            h = layers[l](h, cos, sin, start_pos, ck, cv, mask);
        }
    }
    if (cache != nullptr) cache->length = start_pos + T;
    return norm(h);
}

at::Tensor LlamaImpl::forward(const at::Tensor& tokens, int64_t start_pos, KvCache* cache,
                              const ForwardOptions& options) {
    return lm_head(hidden_states(tokens, start_pos, cache, options));  // [B, T, V]
}

std::vector<Linear> LlamaImpl::linears() {
    std::vector<Linear> out;
    for (auto& layer : layers) {
        for (const Linear& l : layer->linears()) out.push_back(l);
    }
    out.push_back(lm_head);
    return out;
}

void LlamaImpl::init_random(uint64_t seed, c10::ScalarType dtype, const c10::Device& device) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    auto randn = [&](std::vector<int64_t> shape, double stdev) {
        return (at::randn(shape, gen, at::kFloat) * stdev).to(device, dtype);
    };
    const LlamaConfig& c = config_;
    set_embedding(randn({c.vocab_size, c.hidden_size}, 1.0));
    for (Linear& l : linears()) {
        if (l.get() == lm_head.get() && c.tie_word_embeddings) {
            l->set_weight(embed_weight);
            continue;
        }
        l->set_weight(randn({l->out_features(), l->in_features()}, 0.02));
        if (l->has_bias()) l->set_bias(randn({l->out_features()}, 0.02));
    }
    auto ones = [&](RMSNorm& n) {
        n->weight.set_data(at::ones({c.hidden_size}, at::TensorOptions(dtype).device(device)));
    };
    for (auto& layer : layers) {
        ones(layer->input_layernorm);
        ones(layer->post_attention_layernorm);
    }
    ones(norm);
    inv_freq.set_data(inv_freq.to(device));
}

void LlamaImpl::quantize_linears(const quant::Quant4Options& options) {
    for (Linear& l : linears()) {
        if (l.get() != lm_head.get()) l->quantize(options);
    }
}

void LlamaImpl::set_embedding(const at::Tensor& weight) {
    QLORA_CHECK(weight.dim() == 2 && weight.size(0) == config_.vocab_size &&
                    weight.size(1) == config_.hidden_size,
                "model.embed_tokens.weight: expected shape [", config_.vocab_size, ", ",
                config_.hidden_size, "], found ", weight.sizes());
    parameters_.erase("embed_tokens");
    embed_weight = register_parameter("embed_tokens", weight, /*requires_grad=*/false);
    if (config_.tie_word_embeddings) lm_head->set_weight(embed_weight);
}

void LlamaImpl::to_device(const c10::Device& device) {
    torch::nn::Module::to(device);
    for (Linear& l : linears()) l->to_device(device);
}

int64_t LlamaImpl::weight_nbytes() {
    int64_t n = embed_weight.defined() ? embed_weight.nbytes() : 0;
    for (Linear& l : linears()) {
        if (l.get() == lm_head.get() && config_.tie_word_embeddings) continue;
        n += l->nbytes();
    }
    for (const auto& p : named_parameters()) {
        if (p.key().find("norm") != std::string::npos) n += p.value().nbytes();
    }
    for (auto& layer : layers) {
        if (layer->weights_source) n += layer->weights_source->held_nbytes();
    }
    return n;
}

void LlamaImpl::visit_layer_weights() {
    for (auto& layer : layers) {
        const LayerWeightsLease lease(layer->weights_source.get(), *layer);
    }
}

}  // namespace qlora::model
