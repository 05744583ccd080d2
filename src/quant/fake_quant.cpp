// Fake quantizers as float32 tensor ops (any device) and their STE autograd functions. The
// arithmetic follows fake_quant_ref.cpp operation for operation, so results are bit-identical;
// int4's codes come from quant/int4_codes.h, shared with the int4 layout and GGUF Q4_0.
#include "quant/fake_quant.h"

#include <torch/torch.h>

#include <cfloat>

#include "core/error.h"
#include "quant/dynamic_map.h"
#include "quant/int4_codes.h"
#include "quant/quant4_ops.h"

namespace qlora::quant {
namespace {

// t / v as a true IEEE division on every device: CUDA turns division by a host scalar into a
// multiplication by its reciprocal, which rounds differently from the scalar reference for 127,
// 255.
at::Tensor div_exact(const at::Tensor& t, double v) {
    return t / at::scalar_tensor(v, t.options());
}

void check_float(const char* op, const at::Tensor& t) {
    TORCH_CHECK(t.defined() && (t.scalar_type() == at::kFloat || t.scalar_type() == at::kHalf ||
                                t.scalar_type() == at::kBFloat16),
                op, ": expected a float32/float16/bfloat16 tensor, got ",
                t.defined() ? c10::toString(t.scalar_type()) : "an undefined tensor");
}

// Q4_0 per group along rows of w [rows, cols] (float32): (code - 8) * d with d rounded to float16.
FakeQuantized int4_fake_quant(const at::Tensor& w, int64_t group) {
    const int64_t rows = w.size(0), cols = w.size(1);
    const Int4Groups q = int4_groups(w, group);
    const int64_t padded = q.codes.size(1) * group;
    at::Tensor d16 = q.scale.to(at::kHalf).to(at::kFloat);
    FakeQuantized out;
    out.value = ((q.codes - 8.0) * d16).view({rows, padded}).narrow(1, 0, cols).contiguous();
    out.mask = q.in_range.view({rows, padded}).narrow(1, 0, cols).contiguous();
    return out;
}

// int8 symmetric per row of w [rows, cols] (float32): nothing is clipped.
at::Tensor int8_channels(const at::Tensor& w) {
    at::Tensor d = div_exact(w.abs().amax(1, /*keepdim=*/true), 127.0);
    at::Tensor q = at::where(d > 0, (w / d).round(), at::zeros_like(w));
    return q.clamp(-127.0, 127.0) * d;
}

// deq(quantize_4bit(w)) with the configured double quant (quant4_tensor.cpp's sequence).
at::Tensor nf4_roundtrip(const at::Tensor& w, const Quant4Options& o) {
    Quantized4bit q = quantize_4bit(w, o.type, o.blocksize);
    at::Tensor out;
    if (o.double_quant) {
        at::Tensor map = dynamic_map(/*is_signed=*/true).to(w.device());
        QuantizedAbsmax dq = quantize_absmax(q.absmax, map);
        out = dequantize_4bit(q.packed, {}, dq.codes, dq.nested, map, dq.offset, w.numel(),
                              o.blocksize, o.type, at::kFloat);
    } else {
        out = dequantize_4bit(q.packed, q.absmax, {}, {}, {}, 0.0f, w.numel(), o.blocksize, o.type,
                              at::kFloat);
    }
    return out.view(w.sizes());
}

}  // namespace

FakeQuantWeight parse_fake_quant_weight(std::string_view name) {
    return kFakeQuantWeightNames.parse(name);
}

std::string fake_quant_weight_name(FakeQuantWeight value) {
    return kFakeQuantWeightNames.name(value);
}

void validate(const QatScheme& s) {
    if (s.weight == FakeQuantWeight::kInt4) {
        const int64_t g = s.group_size;
        QLORA_CHECK(g >= 32 && g <= 256 && (g & (g - 1)) == 0,
                    "qat: int4 group_size must be a power of two in [32, 256], got ", g);
    }
    if (s.weight == FakeQuantWeight::kNF4) {
        QLORA_CHECK(s.nf4.type == QuantType::kNF4, "qat: the nf4 scheme needs quant type nf4, got ",
                    quant_type_name(s.nf4.type));
        QLORA_CHECK(bnb::valid_blocksize(s.nf4.blocksize),
                    "qat: nf4 blocksize must be a power of two in [32, 4096], got ",
                    s.nf4.blocksize);
    }
}

FakeQuantized fake_quantize_weight_masked(const at::Tensor& w_in, const QatScheme& scheme) {
    check_float("fake_quantize_weight", w_in);
    at::Tensor w = w_in.to(at::kFloat).contiguous();
    switch (scheme.weight) {
        case FakeQuantWeight::kInt4:
            TORCH_CHECK(
                w.dim() == 2,
                "fake_quantize_weight: int4 groups run along the rows of a weight [out, in], "
                "got shape ",
                w.sizes());
            TORCH_CHECK(scheme.group_size > 0, "fake_quantize_weight: group_size must be > 0, got ",
                        scheme.group_size);
            return int4_fake_quant(w, scheme.group_size);
        case FakeQuantWeight::kInt8:
            TORCH_CHECK(
                w.dim() == 2,
                "fake_quantize_weight: int8 scales are per row of a weight [out, in], got shape ",
                w.sizes());
            return {int8_channels(w), at::Tensor()};
        case FakeQuantWeight::kNF4:
            TORCH_CHECK(w.numel() > 0, "fake_quantize_weight: empty tensor");
            return {nf4_roundtrip(w, scheme.nf4), at::Tensor()};
    }
    TORCH_INTERNAL_ASSERT(false, "unknown fake-quant scheme");
    return {};
}

at::Tensor fake_quantize_weight(const at::Tensor& w, const QatScheme& scheme) {
    return fake_quantize_weight_masked(w, scheme).value;
}

FakeQuantized fake_quantize_activation(const at::Tensor& x_in) {
    check_float("fake_quantize_activation", x_in);
    TORCH_CHECK(x_in.dim() >= 1 && x_in.size(-1) > 0,
                "fake_quantize_activation: x must be [..., in], got ", x_in.sizes());
    at::Tensor x = x_in.to(at::kFloat).reshape({-1, x_in.size(-1)});  // [N, in]
    at::Tensor lo = x.amin(1, /*keepdim=*/true).clamp_max(0.0);
    at::Tensor hi = x.amax(1, /*keepdim=*/true).clamp_min(0.0);
    at::Tensor d = div_exact(hi - lo, 255.0).clamp_min(FLT_EPSILON);
    at::Tensor z = (-128.0 - (lo / d).round()).clamp(-128.0, 127.0);
    at::Tensor q = (x / d).round() + z;
    FakeQuantized out;
    out.value = ((q.clamp(-128.0, 127.0) - z) * d).view(x_in.sizes());
    out.mask = ((q >= -128.0) & (q <= 127.0)).view(x_in.sizes());
    return out;
}

namespace {

// LibTorch 2.11's Function::apply rejects undefined tensors among the saved/returned values'
// bookkeeping, so "no mask" travels as an empty tensor.
at::Tensor masked_grad(const at::Tensor& g, const at::Tensor& mask) {
    if (!mask.defined() || mask.numel() == 0) return g;
    return g * mask.to(g.scalar_type());
}

class FakeQuantWeightFunction : public torch::autograd::Function<FakeQuantWeightFunction> {
  public:
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& w,
                              const QatScheme& scheme) {
        FakeQuantized q = fake_quantize_weight_masked(w, scheme);
        ctx->save_for_backward(
            {q.mask.defined() ? q.mask : at::empty({0}, w.options().dtype(at::kBool))});
        return q.value.to(w.scalar_type());
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs) {
        return {masked_grad(grad_outputs[0], ctx->get_saved_variables()[0]), at::Tensor()};
    }
};

class FakeQuantActivationFunction : public torch::autograd::Function<FakeQuantActivationFunction> {
  public:
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
        FakeQuantized q = fake_quantize_activation(x);
        ctx->save_for_backward({q.mask});
        return q.value.to(x.scalar_type());
    }
    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs) {
        return {masked_grad(grad_outputs[0], ctx->get_saved_variables()[0])};
    }
};

}  // namespace

at::Tensor fake_quant_weight_ste(const at::Tensor& w, const QatScheme& scheme) {
    return FakeQuantWeightFunction::apply(w, scheme);
}

at::Tensor fake_quant_activation_ste(const at::Tensor& x) {
    return FakeQuantActivationFunction::apply(x);
}

}  // namespace qlora::quant
