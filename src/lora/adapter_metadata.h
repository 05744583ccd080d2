// What an adapter was trained against, in a small file beside it (qlora_adapter.json): the base's
// quantization (type, blocksize, double quant), the compute dtype and the QAT scheme. A merge must
// add the adapter to exactly those weights, so exports read this file rather than guessing from
// where the adapter lies. PEFT ignores unknown files in an adapter folder.
#pragma once

#include <c10/core/ScalarType.h>

#include <optional>
#include <string>

#include "lora/lora_options.h"
#include "quant/quant4_tensor.h"

namespace qlora::lora {

inline constexpr const char* kAdapterMetadataFile = "qlora_adapter.json";

struct AdapterMetadata {
    bool base_quantized = true;  // false: trained over a dense 16/32-bit base
    quant::Quant4Options quant;  // the 4-bit format of the base when base_quantized
    c10::ScalarType compute_dtype = c10::kFloat;
    std::optional<QatOptions> qat;  // set when the run trained with fake quantization
    bool operator==(const AdapterMetadata& o) const;
};

// Writes dir/qlora_adapter.json atomically (the folder must exist).
void save_adapter_metadata(const std::string& dir, const AdapterMetadata& metadata);
// nullopt when dir has no qlora_adapter.json (an adapter PEFT saved); a malformed one is a
// qlora::Error naming the file and the key.
std::optional<AdapterMetadata> load_adapter_metadata(const std::string& dir);

// "nf4 blocksize 64 double quant, float32" / "dense base, bfloat16" (+ ", QAT int4 group 32 ...").
std::string describe(const AdapterMetadata& metadata);

}  // namespace qlora::lora
