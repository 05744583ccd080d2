// LoraLinear: a model::Linear whose frozen base (NF4 or dense) carries a trainable low-rank
// adapter, y = x·deq(W)ᵀ + b + s·(drop(x)·Aᵀ)·Bᵀ, computed by LoraLinearFunction. It subclasses
// model::LinearImpl, so the model's forward code calls it unchanged through its Linear holders.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <optional>

#include "lora/lora_function.h"
#include "lora/lora_options.h"
#include "model/linear.h"

namespace qlora::lora {

class LoraLinearImpl : public model::LinearImpl {
  public:
    // Takes over base's frozen weight and bias (shared, not copied). Without `with_adapter` the
    // module stays frozen but still goes through LoraLinearFunction, so that a 4-bit projection
    // that is not a target keeps no dequantized weight in the graph either.
    LoraLinearImpl(const model::LinearImpl& base, const LoraOptions& options, bool with_adapter);

    // x [..., in] -> [..., out] in x's dtype. Dropout only in train mode; disabled = base only.
    at::Tensor forward(const at::Tensor& x) override;

    bool has_adapter() const { return lora_A.defined(); }
    bool enabled() const { return enabled_; }
    void set_enabled(bool enabled) { enabled_ = enabled; }
    double scale() const { return scale_; }
    double dropout() const { return dropout_; }
    int64_t rank() const { return has_adapter() ? lora_A.size(0) : 0; }
    // The frozen base as LoraLinearFunction takes it (shares this module's tensors).
    std::shared_ptr<const FrozenBase> frozen_base() const;

    // Quantization-aware training: the forward while active (QatOptions in lora_options.h) is
    //   merge_aware, with an enabled adapter:  x' = Qa(x);  y = x'·Q(W0 + s·B·A)ᵀ + b
    //   otherwise (lora mode, no adapter):     x' = Qa(x);  y = x'·Q(W0)ᵀ + b + s·(drop(x')·Aᵀ)·Bᵀ
    // with Qa the per-token int8 fake quantizer when activations_int8 (else x' = x), both STE.
    // Configured but inactive (before qat.start_step), the forward is the plain LoRA one.
    void set_qat(const QatOptions& options);
    void set_qat_active(bool active) { qat_active_ = active && qat_.has_value(); }
    bool qat_active() const { return qat_active_; }
    const std::optional<QatOptions>& qat() const { return qat_; }

    at::Tensor lora_A;  // [r, in], Kaiming-uniform (a = sqrt(5)); registered as "lora_A"
    at::Tensor lora_B;  // [out, r], zeros, so step 0 equals the base; registered as "lora_B"

  private:
    at::Tensor forward_qat(const at::Tensor& x, const at::Tensor& mask, double keep);

    double scale_ = 0.0;
    double dropout_ = 0.0;
    bool enabled_ = true;
    std::optional<QatOptions> qat_;
    bool qat_active_ = false;
};
TORCH_MODULE(LoraLinear);

// A's initial values: uniform(-1/sqrt(in), 1/sqrt(in)), which is kaiming_uniform_(a = sqrt(5))
// as PEFT and torchtune use (gain sqrt(2 / (1 + 5)) times sqrt(3 / fan_in)).
at::Tensor kaiming_uniform_lora_a(int64_t r, int64_t in, const at::TensorOptions& options,
                                  std::optional<at::Generator> gen);

}  // namespace qlora::lora
