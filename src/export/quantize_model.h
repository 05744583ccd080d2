// Quantizes a Hugging Face Llama folder into the bitsandbytes-4bit layout: every linear weight of
// the decoder layers goes to 4 bits; embeddings, norms, biases and lm_head stay as they are.
#pragma once

#include <string>

#include "quant/quant4_tensor.h"

namespace qlora::exporting {

struct QuantizeModelOptions {
    std::string model_dir;
    std::string out_dir;
    quant::Quant4Options quant;
    std::string device = "auto";  // where weights are quantized (cuda when present)
    c10::ScalarType compute_dtype = at::kBFloat16;  // recorded as bnb_4bit_compute_dtype
    bool overwrite = false;
    uint64_t max_shard_bytes = 5'000'000'000ULL;
};

struct QuantizeModelSummary {
    int64_t tensors = 0;
    int64_t quantized_tensors = 0;
    int64_t params = 0;
    int64_t quantized_params = 0;
    int64_t bytes_before = 0;            // every tensor as stored in the source
    int64_t bytes_after = 0;             // every tensor as written
    int64_t quantized_bytes_before = 0;  // the linears only
    int64_t quantized_bytes_after = 0;
    double quantized_bits_per_param() const;
};

// Streams the source one tensor at a time; the output folder appears only when complete.
QuantizeModelSummary quantize_model(const QuantizeModelOptions& options);

}  // namespace qlora::exporting
