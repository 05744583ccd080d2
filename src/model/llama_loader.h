// Loading a Hugging Face Llama-family folder into model::Llama: config.json, then the safetensors
// tensors one at a time by HF name. Base linears stay dense, are quantized while loading, or come
// already 4-bit from a bitsandbytes folder (config.json has "quantization_config").
#pragma once

#include <string>

#include "model/llama.h"
#include "quant/nf4_tensor.h"

namespace qlora::model {

struct LoadOptions {
    c10::Device device = c10::kCPU;
    c10::ScalarType dtype = at::kFloat;  // compute dtype: embeddings, norms, dense linears
    // "none", or "nf4"/"fp4": quantize q/k/v/o/gate/up/down right after reading each (embeddings,
    // norms and lm_head stay dense, as bitsandbytes does).
    std::string quant = "none";
    int64_t blocksize = 64;
    bool double_quant = true;
};

// Throws qlora::Error naming the tensor for a missing, unexpected or mis-shaped weight.
Llama load_llama(const std::string& folder, const LoadOptions& options = {});

// The HF names a model with this config is made of, in layer order (for tools and tests).
std::vector<std::string> llama_tensor_names(const LlamaConfig& config);

}  // namespace qlora::model
