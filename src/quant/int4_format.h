// The hf-int4 layout of qlora-export (DESIGN.md section 11): the int4 QAT scheme of fake_quant.h
// stored as codes and scales, so that dequantize(pack(W)) == fake_quantize_weight(W, int4) bit for
// bit. Per decoder linear `<name>` (e.g. model.layers.0.self_attn.q_proj), weight W float [out,
// in]:
//
//   <name>.qweight  uint8   [out, ceil(in / 2)]         two 4-bit codes per byte along the input
//                                                        dim: element 2j in the LOW nibble, 2j+1 in
//                                                        the high nibble; an odd `in` leaves the
//                                                        last byte's high nibble 0 (ignored).
//   <name>.scales   float16 [out, ceil(in / group)]     d per group of `group` consecutive elements
//                                                        of a row (the last group may be shorter).
//
// Codes are ggml Q4_0's: m = the group's element of largest magnitude (the first on ties),
// d = m / -8, code = min(15, trunc(w·(1/d) + 8.5)) (8 for an all-zero group, whose d is 0), and
//   W[r, c] = (code[r, c] - 8) · float(scales[r, c / group])     computed in float32.
// config.json carries {"quant_method": "qlora_int4", "bits": 4, "group_size": G,
// "scheme": "symmetric_q4_0", "packing": "low_nibble_first"} as its quantization_config.
#pragma once

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace qlora::quant {

struct Int4Packed {
    at::Tensor qweight;  // uint8 [out, ceil(in/2)], CPU
    at::Tensor scales;   // float16 [out, ceil(in/group)], CPU
};

// Packs w (float32/float16/bfloat16 [out, in], computed in float32 like fake_quantize_weight) with
// the given group size (> 0; the QAT scheme allows powers of two in [32, 256]). qlora::Error
// naming `name` for a non-2-D, empty or non-finite weight.
Int4Packed pack_int4(const at::Tensor& w, int64_t group_size, const std::string& name = "weight");

// The codes before packing: uint8 [out, in] in [0, 15], and the float16 scales (for tests/tools).
Int4Packed int4_codes(const at::Tensor& w, int64_t group_size, const std::string& name = "weight");

// float32 [out, in] on qweight's device. Checks dtypes and shapes against in_features and
// group_size; qlora::Error naming `name` (the weight's module name), what was expected and found.
at::Tensor unpack_int4(const at::Tensor& qweight, const at::Tensor& scales, int64_t in_features,
                       int64_t group_size, const std::string& name = "weight");

// "model.layers.0.mlp.up_proj.weight" -> {"...up_proj.qweight", qweight}, {"...up_proj.scales",
// scales}.
std::vector<std::pair<std::string, at::Tensor>> int4_tensors(const Int4Packed& q,
                                                             const std::string& weight_name);
// "<module>.qweight"/"<module>.scales" names of a weight name "<module>.weight".
std::string int4_qweight_name(const std::string& weight_name);
std::string int4_scales_name(const std::string& weight_name);

// The quantization_config above, and reading it back.
nlohmann::ordered_json int4_quantization_config(int64_t group_size);
// True when quantization_config says quant_method "qlora_int4".
bool is_int4_config(const nlohmann::json& quantization_config);
// The group size of such a config; qlora::Error naming `source` for bits != 4, a bad group size,
// an unknown scheme or packing.
int64_t int4_group_size(const nlohmann::json& quantization_config, const std::string& source);

}  // namespace qlora::quant
