// The tokenizer must not produce ids the model has no embedding row for: checked once when both
// are loaded, naming the tokenizer and config.json's vocab_size, instead of failing later on the
// first out-of-range id with a message that names neither.
#pragma once

#include <cstdint>
#include <string>

#include "model/llama_config.h"

namespace qlora::model {

// Throws qlora::Error (exit 2) when tokenizer_vocab > config.vocab_size.
void check_vocab_fits(int64_t tokenizer_vocab, const std::string& tokenizer_source,
                      const LlamaConfig& config, const std::string& model_dir);

}  // namespace qlora::model
