// Linear: the one interface every projection of the model goes through (q/k/v/o, gate/up/down,
// lm_head). The base weight is dense [out, in] or a 4-bit quant::Quant4Tensor; the LoRA issue
// subclasses LinearImpl (or wraps it) to add trainable A/B around the frozen base.
#pragma once

#include <torch/torch.h>

#include <string>

#include "quant/quant4_tensor.h"

namespace qlora::model {

class LinearImpl : public torch::nn::Module {
  public:
    // `name`: the HF prefix ("model.layers.0.self_attn.q_proj"), used in errors and by LoRA's
    // target-module selection.
    LinearImpl(int64_t in_features, int64_t out_features, bool has_bias, std::string name);

    // y = x·Wᵀ (+ b): x [..., in] -> [..., out], computed in x's dtype. A quantized base is
    // dequantized to x's dtype for this call only and the copy dropped.
    virtual at::Tensor forward(const at::Tensor& x);

    // Dense base weight [out, in]; replaces any quantized one. Frozen (requires_grad false).
    void set_weight(const at::Tensor& weight);
    // 4-bit base weight of shape [out, in]; drops any dense one.
    void set_quantized(quant::Quant4Tensor weight);
    // Drops the base weight, dense or 4-bit (a sharded base lends it per forward).
    void drop_base();
    void set_bias(const at::Tensor& bias);  // [out]
    // Quantizes the dense base weight in place (on its device) and drops the dense copy.
    void quantize(const quant::Quant4Options& options);

    bool quantized() const { return quant4_.defined(); }
    bool has_weight() const { return quantized() || dense_.defined(); }
    bool has_bias() const { return has_bias_; }
    // The dense weight (undefined when quantized) and the NF4 one (undefined when dense).
    const at::Tensor& weight() const { return dense_; }
    const quant::Quant4Tensor& quant4_weight() const { return quant4_; }
    const at::Tensor& bias() const { return bias_; }
    // The base weight as a dense [out, in] tensor in `dtype`: dequantized when quantized.
    at::Tensor base_weight(c10::ScalarType dtype) const;
    // Bytes of the base weight as stored (4-bit promise when quantized) plus the bias.
    int64_t nbytes() const;

    int64_t in_features() const { return in_features_; }
    int64_t out_features() const { return out_features_; }
    const std::string& name() const { return name_; }

    // Moves the base (including an NF4 weight, which torch::nn::Module::to cannot see) and bias.
    void to_device(const c10::Device& device);

  protected:
    int64_t in_features_;
    int64_t out_features_;
    bool has_bias_;
    std::string name_;
    at::Tensor dense_;  // [out, in], registered as parameter "weight" while set
    at::Tensor bias_;   // [out], registered as parameter "bias"
    quant::Quant4Tensor quant4_;
};
TORCH_MODULE(Linear);

}  // namespace qlora::model
