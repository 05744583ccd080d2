// GGUF -> Hugging Face folder (qlora-convert): model.safetensors (sharded with an index when
// large) holding every tensor dequantized to float32 in Hugging Face names and row order,
// config.json (LlamaForCausalLM), generation_config.json, tokenizer.json and
// tokenizer_config.json (special tokens, chat template). Written atomically: on any error nothing
// is left at the output path.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/gguf_model.h"
#include "tokenizer/gguf_tokenizer_json.h"

namespace qlora::convert {

struct GgufToHfOptions {
    std::string in_file;  // a llama-architecture .gguf
    std::string out_dir;  // must not exist, and must not be the input or inside it
    uint64_t max_shard_bytes = 5'000'000'000ULL;  // transformers' default shard size
};

struct GgufToHfSummary {
    int64_t tensors = 0;
    uint64_t tensor_bytes = 0;       // float32 bytes written
    std::vector<std::string> files;  // file names inside out_dir, sorted
};

GgufToHfSummary convert_gguf_to_hf(const GgufToHfOptions& options);

// The folder's files besides weights and config.json: generation_config.json, tokenizer.json and
// tokenizer_config.json of `tok` (tokenizer::gguf_hf_tokenizer of the file), written into dir.
// Also what an export whose base is a GGUF carries.
void write_gguf_side_files(const model::GgufLlamaFile& file, const tokenizer::HfTokenizerJson& tok,
                           const std::string& dir);

}  // namespace qlora::convert
