// The Hugging Face bitsandbytes-4bit checkpoint layout (DESIGN.md section 4): for a quantized
// weight "P.weight" the keys P.weight (packed uint8 [(n+1)/2, 1]), P.weight.absmax,
// P.weight.quant_map, [P.weight.nested_absmax, P.weight.nested_quant_map] and
// P.weight.quant_state.bitsandbytes__nf4|fp4 (the JSON state as uint8 bytes), plus the
// "quantization_config" entry of config.json.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"
#include "quant/quant4_tensor.h"

namespace qlora::io {

// The tensors bitsandbytes' QuantState.as_dict(packed=True) + Params4bit save for one weight.
std::vector<std::pair<std::string, at::Tensor>> bnb_4bit_tensors(const quant::Quant4Tensor& t,
                                                                 const std::string& weight_name);

// True when `weight_name` is stored in the bnb-4bit layout (its quant_state key exists).
bool is_bnb_4bit_weight(const SafetensorsFolder& folder, const std::string& weight_name);
// Names that belong to a quantized weight's state (P.weight.absmax, ...): not model tensors.
bool is_bnb_state_key(const std::string& name);

// Reads a quantized weight, validating the JSON state and every size against the shape; errors
// name the file and the key.
quant::Quant4Tensor read_bnb_4bit(const SafetensorsFolder& folder, const std::string& weight_name);

// config.json's "quantization_config" as transformers' BitsAndBytesConfig writes it.
nlohmann::ordered_json bnb_quantization_config(const quant::Quant4Options& options,
                                               c10::ScalarType compute_dtype);
// Parses it back (quant type, double quant); `where` names the file for errors.
quant::Quant4Options parse_bnb_quantization_config(const nlohmann::json& config,
                                                   const std::string& where);

}  // namespace qlora::io
