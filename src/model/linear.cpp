// LinearImpl: dense or NF4 base weight behind one forward.
#include "model/linear.h"

#include "core/error.h"
#include "quant/quant4_matmul.h"

namespace qlora::model {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool has_bias, std::string name)
    : in_features_(in_features),
      out_features_(out_features),
      has_bias_(has_bias),
      name_(std::move(name)) {}

namespace {

// (Re-)registers a frozen parameter under `name`, sharing t's TensorImpl (no detach), so that
// Module::to moves every alias of it, e.g. a tied lm_head together with the embedding.
at::Tensor& put_parameter(torch::OrderedDict<std::string, at::Tensor>& params, torch::nn::Module& m,
                          const std::string& name, const at::Tensor& t) {
    if (params.contains(name)) params.erase(name);
    return m.register_parameter(name, t, /*requires_grad=*/false);
}

}  // namespace

void LinearImpl::set_weight(const at::Tensor& weight) {
    QLORA_CHECK(
        weight.dim() == 2 && weight.size(0) == out_features_ && weight.size(1) == in_features_,
        name_, ".weight: expected shape [", out_features_, ", ", in_features_, "], found ",
        weight.sizes());
    quant4_ = quant::Quant4Tensor();
    dense_ = put_parameter(parameters_, *this, "weight", weight);
}

void LinearImpl::set_quantized(quant::Quant4Tensor weight) {
    const auto& s = weight.shape();
    QLORA_CHECK(s.size() == 2 && s[0] == out_features_ && s[1] == in_features_, name_,
                ".weight (4-bit): expected shape [", out_features_, ", ", in_features_, "], found ",
                c10::IntArrayRef(s));
    if (dense_.defined()) {
        dense_ = at::Tensor();
        // Drop the registered dense parameter so that its memory goes with it.
        parameters_.erase("weight");
    }
    quant4_ = std::move(weight);
}

void LinearImpl::drop_base() {
    quant4_ = quant::Quant4Tensor();
    if (dense_.defined()) {
        dense_ = at::Tensor();
        parameters_.erase("weight");
    }
}

void LinearImpl::set_bias(const at::Tensor& bias) {
    QLORA_CHECK(has_bias_, name_, " has no bias in this architecture (check config.json)");
    QLORA_CHECK(bias.dim() == 1 && bias.size(0) == out_features_, name_, ".bias: expected shape [",
                out_features_, "], found ", bias.sizes());
    bias_ = put_parameter(parameters_, *this, "bias", bias);
}

void LinearImpl::quantize(const quant::Quant4Options& options) {
    if (quantized()) return;
    QLORA_CHECK(dense_.defined(), name_, ".weight was never loaded");
    set_quantized(quant::Quant4Tensor::quantize(dense_, options, name_ + ".weight"));
}

at::Tensor LinearImpl::base_weight(c10::ScalarType dtype) const {
    QLORA_CHECK(has_weight(), name_, ".weight was never loaded");
    if (quantized()) return quant4_.dequantize(dtype);
    return dense_.to(dtype);
}

at::Tensor LinearImpl::forward(const at::Tensor& x) {
    // x [..., in] -> [..., out]
    at::Tensor b = bias_.defined() ? bias_.to(x.scalar_type()) : at::Tensor();
    if (quantized())
        return quant::quant4_linear(x, quant4_, b);  // fused on the CPU: no dense copy of W
    QLORA_CHECK(dense_.defined(), name_, ".weight was never loaded");
    return at::linear(
        x, dense_.scalar_type() == x.scalar_type() ? dense_ : dense_.to(x.scalar_type()), b);
}

int64_t LinearImpl::nbytes() const {
    int64_t n = bias_.defined() ? bias_.nbytes() : 0;
    if (quantized()) return n + quant4_.nbytes();
    return n + (dense_.defined() ? static_cast<int64_t>(dense_.nbytes()) : 0);
}

void LinearImpl::to_device(const c10::Device& device) {
    torch::nn::Module::to(device);  // dense weight and bias, in place
    if (quantized()) quant4_ = quant4_.to(device);
}

}  // namespace qlora::model
