// LoraLinearImpl: adapter parameters around a frozen base, forwarded through LoraLinearFunction.
#include "lora/lora_linear.h"

#include <cmath>

#include "core/error.h"
#include "lora/dropout_mask.h"
#include "lora/merge_aware_function.h"

namespace qlora::lora {
namespace {

// FNV-1a, 64-bit (offset basis 14695981039346656037, prime 1099511628211): a fixed, portable hash.
uint64_t fnv1a64(const std::string& s) {
    uint64_t h = 14695981039346656037ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

}  // namespace

at::Tensor kaiming_uniform_lora_a(int64_t r, int64_t in, const at::TensorOptions& options,
                                  std::optional<at::Generator> gen) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    at::Tensor a = at::empty({r, in}, at::TensorOptions(at::kFloat));  // drawn on CPU: seed-stable
    a.uniform_(-bound, bound, gen);
    return a.to(options);
}

LoraLinearImpl::LoraLinearImpl(const model::LinearImpl& base, const LoraOptions& options,
                               bool with_adapter)
    : model::LinearImpl(base.in_features(), base.out_features(), base.has_bias(), base.name()) {
    QLORA_CHECK(base.has_weight(), name_,
                ".weight was never loaded: load the base before adding LoRA");
    if (base.quantized()) {
        set_quantized(base.quant4_weight());
    } else {
        set_weight(base.weight());
    }
    if (base.bias().defined()) set_bias(base.bias());
    if (!with_adapter) return;

    validate(options);
    scale_ = lora_scale(options);
    dropout_ = options.dropout;
    const c10::Device device = quantized() ? quant4_.device() : dense_.device();
    const auto opts = at::TensorOptions(options.dtype).device(device);
    std::optional<at::Generator> gen;
    if (options.init_seed) {
        // One stream per module, so a module's init does not depend on which others exist; FNV-1a
        // of the name (std::hash differs between standard libraries, so runs would too).
        gen = at::make_generator<at::CPUGeneratorImpl>(*options.init_seed ^ fnv1a64(name_));
    }
    lora_A =
        register_parameter("lora_A", kaiming_uniform_lora_a(options.r, in_features_, opts, gen));
    lora_B = register_parameter("lora_B", at::zeros({out_features_, options.r}, opts));
}

std::shared_ptr<const FrozenBase> LoraLinearImpl::frozen_base() const {
    auto b = std::make_shared<FrozenBase>();
    b->nf4 = quant4_;
    b->dense = dense_;
    b->bias = bias_;
    b->in_features = in_features_;
    b->out_features = out_features_;
    return b;
}

void LoraLinearImpl::set_qat(const QatOptions& options) {
    quant::validate(options.scheme);
    QLORA_CHECK(
        options.mode != QatMode::kMergeAware || dropout_ == 0.0, name_,
        ": merge-aware QAT trains through the merged weight, where LoRA dropout has no input path; "
        "expected lora dropout 0, found ",
        dropout_);
    qat_ = options;
    qat_active_ = false;
}

at::Tensor LoraLinearImpl::forward(const at::Tensor& x) {
    QLORA_CHECK(has_weight(), name_, ".weight was never loaded");
    const bool with_adapter = has_adapter() && enabled_;
    at::Tensor mask;
    double keep = 1.0;
    if (with_adapter && is_training() && dropout_ > 0.0) {
        keep = 1.0 - dropout_;
        mask = dropout_keep_mask(x, keep);  // checkpointing replays the generator it draws from
    }
    if (qat_active_) return forward_qat(x, mask, keep);
    if (!with_adapter) return lora_linear(x, frozen_base(), at::Tensor(), at::Tensor(), 0.0);
    return lora_linear(x, frozen_base(), lora_A, lora_B, scale_, mask, keep);
}

at::Tensor LoraLinearImpl::forward_qat(const at::Tensor& x, const at::Tensor& mask, double keep) {
    const QatOptions& q = *qat_;
    const at::Tensor xq = q.activations_int8 ? quant::fake_quant_activation_ste(x) : x;
    auto base = std::make_shared<FrozenBase>(*frozen_base());  // shares the tensors
    base->fake_quant = q.scheme;
    const bool with_adapter = has_adapter() && enabled_;
    if (!with_adapter) return lora_linear(xq, base, at::Tensor(), at::Tensor(), 0.0);
    if (q.mode == QatMode::kMergeAware) return merge_aware_linear(xq, base, lora_A, lora_B, scale_);
    return lora_linear(xq, base, lora_A, lora_B, scale_, mask, keep);
}

}  // namespace qlora::lora
