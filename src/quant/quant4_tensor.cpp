// Quant4Tensor: quantize (with optional double quantization), validated assembly from stored parts,
// dequantize, device moves and byte accounting.
#include "quant/quant4_tensor.h"

#include <numeric>

#include "core/error.h"
#include "quant/dynamic_map.h"
#include "quant/quant4_ops.h"

namespace qlora::quant {
namespace {

std::string shape_string(const std::vector<int64_t>& shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
    return std::accumulate(shape.begin(), shape.end(), int64_t{1}, std::multiplies<>());
}

}  // namespace

QuantType parse_quant_type(std::string_view name) { return kQuantTypeNames.parse(name); }

std::string quant_type_name(QuantType value) { return kQuantTypeNames.name(value); }

Quant4Tensor Quant4Tensor::quantize(const at::Tensor& w, const Quant4Options& options,
                                    const std::string& name) {
    QLORA_CHECK(bnb::valid_blocksize(options.blocksize), name,
                ": blocksize must be a power of two in [32, 4096], got ", options.blocksize);
    QLORA_CHECK(w.scalar_type() == at::kFloat || w.scalar_type() == at::kHalf ||
                    w.scalar_type() == at::kBFloat16,
                name, ": only float32, float16 and bfloat16 weights can be quantized, got ",
                w.scalar_type());
    QLORA_CHECK(w.numel() > 0, name, ": cannot quantize an empty tensor (shape ",
                shape_string(w.sizes().vec()), ")");
    // NaN/Inf would poison a whole block's absmax; a checkpoint holding them is broken, so refuse.
    QLORA_CHECK(at::isfinite(w).all().item<bool>(), name,
                ": holds NaN or Inf values; refusing to quantize a non-finite weight");

    Quantized4bit q = quantize_4bit(w, options.type, options.blocksize);
    Quant4Tensor t;
    t.packed_ = q.packed;
    t.shape_ = w.sizes().vec();
    t.dtype_ = w.scalar_type();
    t.type_ = options.type;
    t.blocksize_ = options.blocksize;
    if (options.double_quant) {
        at::Tensor map = dynamic_map(/*is_signed=*/true).to(w.device());
        QuantizedAbsmax dq = quantize_absmax(q.absmax, map);
        t.absmax_ = dq.codes;
        t.nested_absmax_ = dq.nested;
        t.nested_code_ = map;
        t.nested_offset_ = dq.offset;
    } else {
        t.absmax_ = q.absmax;
    }
    return t;
}

Quant4Tensor Quant4Tensor::from_parts(at::Tensor packed, at::Tensor absmax,
                                      at::Tensor nested_absmax, at::Tensor nested_code,
                                      float nested_offset, std::vector<int64_t> shape,
                                      c10::ScalarType dtype, QuantType type, int64_t blocksize,
                                      const std::string& name) {
    QLORA_CHECK(bnb::valid_blocksize(blocksize), name,
                ": blocksize must be a power of two in [32, 4096], got ", blocksize);
    QLORA_CHECK(dtype == at::kFloat || dtype == at::kHalf || dtype == at::kBFloat16, name,
                ": dtype must be float32, float16 or bfloat16, got ", dtype);
    for (int64_t d : shape)
        QLORA_CHECK(d >= 0, name, ": negative dimension in shape ", shape_string(shape));
    const int64_t n = shape_numel(shape);
    QLORA_CHECK(n > 0, name, ": empty shape ", shape_string(shape));
    QLORA_CHECK(packed.defined() && packed.scalar_type() == at::kByte, name,
                ": packed weight must be uint8");
    QLORA_CHECK(packed.numel() == bnb::packed_bytes(n), name, ": shape ", shape_string(shape),
                " needs ", bnb::packed_bytes(n), " packed bytes, found ", packed.numel());
    const int64_t blocks = bnb::num_blocks(n, blocksize);
    QLORA_CHECK(absmax.defined() && absmax.numel() == blocks, name, ": shape ", shape_string(shape),
                " with blocksize ", blocksize, " needs ", blocks, " absmax values, found ",
                absmax.defined() ? absmax.numel() : 0);
    Quant4Tensor t;
    const bool dq = nested_absmax.defined();
    if (dq) {
        QLORA_CHECK(absmax.scalar_type() == at::kByte, name,
                    ": double-quantized absmax must be uint8, found ", absmax.scalar_type());
        const int64_t nested_blocks = bnb::num_blocks(blocks, bnb::kNestedBlocksize);
        QLORA_CHECK(nested_absmax.numel() == nested_blocks, name, ": ", blocks,
                    " absmax values need ", nested_blocks, " nested_absmax values, found ",
                    nested_absmax.numel());
        QLORA_CHECK(nested_code.defined() && nested_code.numel() == bnb::kDynamicMapSize, name,
                    ": nested_quant_map must have 256 entries, found ",
                    nested_code.defined() ? nested_code.numel() : 0);
        QLORA_CHECK(std::isfinite(nested_offset), name,
                    ": nested_offset is not finite: ", nested_offset);
        t.nested_absmax_ = nested_absmax.to(at::kFloat).contiguous().reshape(-1);
        t.nested_code_ = nested_code.to(at::kFloat).contiguous().reshape(-1);
        t.nested_offset_ = nested_offset;
        t.absmax_ = absmax.contiguous().reshape(-1);
    } else {
        QLORA_CHECK(absmax.scalar_type() == at::kFloat, name,
                    ": absmax without double quantization must be float32, found ",
                    absmax.scalar_type());
        t.absmax_ = absmax.contiguous().reshape(-1);
    }
    t.packed_ = packed.contiguous().reshape(-1);
    t.shape_ = std::move(shape);
    t.dtype_ = dtype;
    t.type_ = type;
    t.blocksize_ = blocksize;
    return t;
}

int64_t Quant4Tensor::numel() const { return shape_numel(shape_); }

at::Tensor Quant4Tensor::dequantize(c10::optional<c10::ScalarType> dtype) const {
    TORCH_CHECK(defined(), "Quant4Tensor::dequantize on an empty Quant4Tensor");
    const c10::ScalarType out = dtype.value_or(dtype_);
    at::Tensor flat =
        double_quant()
            ? dequantize_4bit(packed_, at::Tensor(), absmax_, nested_absmax_, nested_code_,
                              nested_offset_, numel(), blocksize_, type_, out)
            : dequantize_4bit(packed_, absmax_, at::Tensor(), at::Tensor(), at::Tensor(), 0.0f,
                              numel(), blocksize_, type_, out);
    return flat.view(shape_);
}

void Quant4Tensor::dequantize_into(at::Tensor& out) const {
    TORCH_CHECK(defined(), "Quant4Tensor::dequantize_into on an empty Quant4Tensor");
    if (double_quant()) {
        dequantize_4bit_into(packed_, at::Tensor(), absmax_, nested_absmax_, nested_code_,
                             nested_offset_, numel(), blocksize_, type_, out);
    } else {
        dequantize_4bit_into(packed_, absmax_, at::Tensor(), at::Tensor(), at::Tensor(), 0.0f,
                             numel(), blocksize_, type_, out);
    }
}

at::Tensor Quant4Tensor::block_absmax() const {
    if (!double_quant()) return absmax_;
    return dequantize_absmax(absmax_, nested_absmax_, nested_code_, nested_offset_);
}

Quant4Tensor Quant4Tensor::to(const c10::Device& device) const {
    Quant4Tensor t = *this;
    t.packed_ = packed_.to(device);
    t.absmax_ = absmax_.to(device);
    if (double_quant()) {
        t.nested_absmax_ = nested_absmax_.to(device);
        t.nested_code_ = nested_code_.to(device);
    }
    return t;
}

int64_t Quant4Tensor::nbytes() const {
    int64_t bytes = packed_.nbytes() + absmax_.nbytes();
    if (double_quant()) bytes += nested_absmax_.nbytes() + nested_code_.nbytes() + sizeof(float);
    return bytes;
}

at::Tensor Quant4Tensor::code() const {
    const bnb::Codebook& cb = codebook(type_);
    std::vector<float> values(cb.values, cb.values + 16);
    for (float& v : values) v += 0.0f;  // -0.0 -> +0.0, as bitsandbytes' get_4bit_type("fp4")
    return at::tensor(values, at::kFloat);
}

}  // namespace qlora::quant
