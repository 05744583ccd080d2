// A llama-architecture GGUF as a source of Hugging Face tensors: config from llama.* keys
// (model/gguf_config.h), names mapped back (model/gguf_names.h), every tensor dequantized to
// float32 (quant/ggml_quants.h) with Q/K rows back in Hugging Face's rotate-half order, and
// lm_head left out when output.weight is absent (tied embeddings).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/gguf_reader.h"
#include "model/llama.h"
#include "model/llama_config.h"
#include "model/llama_loader.h"

namespace qlora::model {

class GgufLlamaFile {
  public:
    // Reads and validates the header, the config and the tensor names (an unknown tensor or a
    // layer outside block_count is an error naming it).
    explicit GgufLlamaFile(const std::string& path);

    const io::GgufReader& reader() const { return reader_; }
    const nlohmann::json& hf_config() const { return hf_config_; }
    const LlamaConfig& config() const { return config_; }
    // Hugging Face names of the file's tensors, in file order.
    const std::vector<std::string>& hf_names() const { return hf_names_; }
    const std::string& gguf_name(const std::string& hf_name) const;
    // Float32 CPU tensor in Hugging Face layout (torch order, Q/K rows un-permuted).
    at::Tensor load(const std::string& hf_name) const;

  private:
    io::GgufReader reader_;
    nlohmann::json hf_config_;
    LlamaConfig config_;
    std::vector<std::string> hf_names_;
    std::map<std::string, std::string> gguf_name_of_;
};

// load_llama for a .gguf path.
Llama load_llama_gguf(const std::string& path, const LoadOptions& options = {});

}  // namespace qlora::model
