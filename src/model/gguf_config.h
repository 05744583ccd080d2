// A llama-architecture GGUF's hyperparameters as the Hugging Face config.json transformers writes
// for LlamaForCausalLM: llama.* keys (block_count, embedding_length, attention.head_count, ...),
// the special ids of tokenizer.ggml.*, and tie_word_embeddings when output.weight is absent.
#pragma once

#include <nlohmann/json.hpp>

#include "io/gguf_reader.h"
#include "model/llama_config.h"

namespace qlora::model {

// config.json content. Throws qlora::Error naming the file and the key for another architecture,
// a missing or mistyped key, or a feature our Llama lacks (MoE, partial rotary, yarn or llama3
// rope scaling).
nlohmann::json gguf_hf_config(const io::GgufReader& gguf);
// The same, parsed (and checked) by LlamaConfig::from_json.
LlamaConfig gguf_llama_config(const io::GgufReader& gguf);

}  // namespace qlora::model
