// Loading a Hugging Face Llama-family folder into model::Llama: config.json, then the safetensors
// tensors one at a time by HF name. Base linears stay dense, are quantized while loading, or come
// already 4-bit from a bitsandbytes folder (config.json has "quantization_config").
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "model/llama.h"
#include "quant/quant4_tensor.h"

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

// A Hugging Face folder, or a path ending in .gguf (model/gguf_model.h: dequantized, Q/K rows
// back in Hugging Face order, then quantized like any other base). Throws qlora::Error naming the
// tensor for a missing, unexpected or mis-shaped weight.
Llama load_llama(const std::string& folder, const LoadOptions& options = {});

// The dense part of load_llama for any tensor source: every name (Hugging Face spelling) is loaded
// once through `load` (any dtype and device), checked against the config's shape and placed,
// quantized when the options ask. Every tensor the config needs must be among `names`. `source`
// names the origin in errors.
Llama load_llama_tensors(const LlamaConfig& config, const std::vector<std::string>& names,
                         const std::function<at::Tensor(const std::string&)>& load,
                         const LoadOptions& options, const std::string& source);

// The HF names a model with this config is made of, in layer order (for tools and tests).
std::vector<std::string> llama_tensor_names(const LlamaConfig& config);

}  // namespace qlora::model
