// Quant4Tensor: a weight stored in 4 bits the way bitsandbytes stores it (packed codes + blockwise
// absmax, optionally double-quantized). An immutable value; it never keeps a dequantized copy.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "core/enum_names.h"
#include "kernels/bnb_quant.h"

namespace qlora::quant {

using bnb::QuantType;

struct Quant4Options {
    QuantType type = QuantType::kNF4;
    int64_t blocksize = bnb::kDefaultBlocksize;  // power of two in [32, 4096]
    bool double_quant = true;                    // 8-bit absmax, nested blocks of 256
};

// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kQuantTypeNames =
    enum_names<QuantType>("quant type", {{QuantType::kNF4, "nf4"}, {QuantType::kFP4, "fp4"}});
QuantType parse_quant_type(std::string_view name);
std::string quant_type_name(QuantType value);

class Quant4Tensor {
  public:
    Quant4Tensor() = default;

    // Quantizes w (fp32, fp16 or bf16; any shape, any device) blockwise over its flattened
    // row-major elements. `name` only labels errors (NaN/Inf, empty tensors are rejected).
    static Quant4Tensor quantize(const at::Tensor& w, const Quant4Options& options,
                                 const std::string& name = "tensor");

    // Assembles a tensor from stored parts (a checkpoint), validating every size relation.
    // absmax: uint8 [n_blocks] with nested_absmax/nested_code (double quant) or float32 [n_blocks].
    static Quant4Tensor from_parts(at::Tensor packed, at::Tensor absmax, at::Tensor nested_absmax,
                                   at::Tensor nested_code, float nested_offset,
                                   std::vector<int64_t> shape, c10::ScalarType dtype,
                                   QuantType type, int64_t blocksize, const std::string& name);

    // The weight in `dtype` (default: the original dtype), on this tensor's device, in its shape.
    at::Tensor dequantize(c10::optional<c10::ScalarType> dtype = c10::nullopt) const;
    // Into a preallocated contiguous tensor of numel() elements (float32/16/bf16) on device().
    void dequantize_into(at::Tensor& out) const;
    // Only the per-block absmax in float32 [n_blocks] (double quant undone).
    at::Tensor block_absmax() const;

    Quant4Tensor to(const c10::Device& device) const;

    bool defined() const { return packed_.defined(); }
    int64_t numel() const;
    int64_t num_blocks() const { return bnb::num_blocks(numel(), blocksize_); }
    // Bytes held: packed codes + absmax + nested state (what the 4-bit promise is about).
    int64_t nbytes() const;
    const std::vector<int64_t>& shape() const { return shape_; }
    c10::ScalarType dtype() const { return dtype_; }
    c10::Device device() const { return packed_.device(); }
    QuantType type() const { return type_; }
    int64_t blocksize() const { return blocksize_; }
    bool double_quant() const { return nested_absmax_.defined(); }

    const at::Tensor& packed() const { return packed_; }                // uint8 [(numel+1)/2]
    const at::Tensor& absmax() const { return absmax_; }                // uint8 or fp32 [n_blocks]
    const at::Tensor& nested_absmax() const { return nested_absmax_; }  // fp32 [ceil(n_blocks/256)]
    const at::Tensor& nested_code() const { return nested_code_; }      // fp32 [256]
    float nested_offset() const { return nested_offset_; }
    // The 16-entry codebook as a float32 tensor (bitsandbytes' quant_map).
    at::Tensor code() const;

  private:
    at::Tensor packed_;
    at::Tensor absmax_;
    at::Tensor nested_absmax_;
    at::Tensor nested_code_;
    float nested_offset_ = 0.0f;
    std::vector<int64_t> shape_;
    c10::ScalarType dtype_ = at::kFloat;
    QuantType type_ = QuantType::kNF4;
    int64_t blocksize_ = bnb::kDefaultBlocksize;
};

}  // namespace qlora::quant
