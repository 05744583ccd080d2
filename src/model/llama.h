// The Llama decoder (Llama 1/2/3, Mistral, Qwen2) as LibTorch modules: embedding, N decoder layers
// (RMSNorm, GQA attention with RoPE, SwiGLU MLP), final norm, lm_head. Module and parameter names
// follow Hugging Face ("model.layers.0.self_attn.q_proj.weight"). Weights are loaded separately
// (llama_loader.h); every projection is a model::Linear.
#pragma once

#include <torch/torch.h>

#include <functional>
#include <vector>

#include "model/layer_weights.h"
#include "model/linear.h"
#include "model/llama_config.h"

namespace qlora::model {

// RMSNorm as transformers computes it: normalise in float32, cast back, then scale by the weight.
class RMSNormImpl : public torch::nn::Module {
  public:
    RMSNormImpl(int64_t dim, double eps);
    at::Tensor forward(const at::Tensor& x);  // [..., dim]
    at::Tensor weight;                        // [dim]

  private:
    double eps_;
};
TORCH_MODULE(RMSNorm);

// Keys and values of every layer for incremental decoding: k[l], v[l] are [B, H_kv, max_len, D];
// positions [0, length) hold data. Allocated once, written in place by each forward.
struct KvCache {
    std::vector<at::Tensor> k;
    std::vector<at::Tensor> v;
    int64_t length = 0;
    int64_t max_len = 0;

    static KvCache allocate(const LlamaConfig& config, int64_t batch, int64_t max_len,
                            const at::TensorOptions& options);
    void reset() { length = 0; }
};

// Optional per-call inputs beyond the tokens.
struct ForwardOptions {
    // Bool, broadcastable to [B, 1, T, T_k] with T_k the number of keys (start_pos + T with a
    // cache, else T); true = may attend. ANDed with the causal mask. E.g. [B, 1, 1, T_k] for
    // padding, or a block-diagonal [B, 1, T, T] for packed sequences.
    at::Tensor attention_mask;
    // int64 [B, T] or [T]; default start_pos + arange(T). Packing restarts positions per document.
    at::Tensor position_ids;
};

class AttentionImpl : public torch::nn::Module {
  public:
    AttentionImpl(const LlamaConfig& config, const std::string& prefix);
    // x [B, T, hidden]; cos/sin [N, T, D]; with a cache, keys/values are written at
    // [start_pos, start_pos + T) of cache_k/cache_v and attention covers [0, start_pos + T).
    at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                       int64_t start_pos, at::Tensor* cache_k, at::Tensor* cache_v,
                       const at::Tensor& attention_mask);

    Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

  private:
    int64_t n_heads_, n_kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

// SwiGLU: down(silu(gate(x)) * up(x)).
class MlpImpl : public torch::nn::Module {
  public:
    MlpImpl(const LlamaConfig& config, const std::string& prefix);
    at::Tensor forward(const at::Tensor& x);  // [B, T, hidden]

    Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

class DecoderLayerImpl : public torch::nn::Module {
  public:
    DecoderLayerImpl(const LlamaConfig& config, int64_t index);
    at::Tensor forward(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin,
                       int64_t start_pos, at::Tensor* cache_k, at::Tensor* cache_v,
                       const at::Tensor& attention_mask);
    // q/k/v/o/gate/up/down, in HF name order.
    std::vector<Linear> linears() const;

    RMSNorm input_layernorm{nullptr};
    Attention self_attn{nullptr};
    RMSNorm post_attention_layernorm{nullptr};
    Mlp mlp{nullptr};
    // Set by a sharded base: forward() acquires the base weights from it and releases them after.
    std::shared_ptr<LayerWeights> weights_source;
};
TORCH_MODULE(DecoderLayer);

class LlamaImpl : public torch::nn::Module {
  public:
    // The skeleton only: parameters are undefined until a loader (or init_random) fills them.
    explicit LlamaImpl(LlamaConfig config);

    // tokens int64 [B, T] -> logits [B, T, V] in the compute dtype. With a cache the tokens sit at
    // positions [start_pos, start_pos + T) and cache->length becomes start_pos + T.
    at::Tensor forward(const at::Tensor& tokens, int64_t start_pos = 0, KvCache* cache = nullptr,
                       const ForwardOptions& options = {});
    // The final-norm hidden states [B, T, hidden] (for losses that chunk the lm_head).
    at::Tensor hidden_states(const at::Tensor& tokens, int64_t start_pos = 0,
                             KvCache* cache = nullptr, const ForwardOptions& options = {});

    // Every projection (q/k/v/o/gate/up/down of every layer, then lm_head), in HF name order.
    std::vector<Linear> linears();
    // Fills every weight with small seeded random values (benchmarks and tests without files);
    // norms get ones, tied lm_head shares the embedding.
    void init_random(uint64_t seed, c10::ScalarType dtype, const c10::Device& device);
    // Quantizes q/k/v/o/gate/up/down of every layer (not lm_head), dropping the dense copies.
    void quantize_linears(const quant::Quant4Options& options);
    // Replaces the embedding [V, hidden] (and a tied lm_head with it).
    void set_embedding(const at::Tensor& weight);
    // Moves everything, 4-bit weights included, to `device`.
    void to_device(const c10::Device& device);
    // Bytes held by weights (4-bit ones as stored; a sharded base's slice).
    int64_t weight_nbytes();
    // Acquires and releases every layer's weights without computing: a rank of a sharded base
    // that has no batch in a round still takes part in each layer's collective.
    void visit_layer_weights();

    const LlamaConfig& config() const { return config_; }
    c10::Device device() const { return embed_weight.device(); }
    c10::ScalarType dtype() const { return embed_weight.scalar_type(); }

    at::Tensor embed_weight;  // model.embed_tokens.weight [V, hidden]
    std::vector<DecoderLayer> layers;
    RMSNorm norm{nullptr};
    Linear lm_head{nullptr};  // shares embed_weight when tie_word_embeddings
    at::Tensor inv_freq;      // [head_dim / 2] float32 (a buffer, not a checkpoint tensor)

    // When set, runs each decoder layer of a cache-free forward in place of layer(h, ...): the hook
    // through which activation checkpointing (lora/activation_checkpointing.h) recomputes layers in
    // backward. h [B, T, hidden]; cos/sin [N, T, D]; mask as in ForwardOptions (may be undefined).
    using LayerRunner =
        std::function<at::Tensor(DecoderLayer& layer, const at::Tensor& h, const at::Tensor& cos,
                                 const at::Tensor& sin, const at::Tensor& mask)>;
    LayerRunner layer_runner;

  private:
    LlamaConfig config_;
};
TORCH_MODULE(Llama);

}  // namespace qlora::model
