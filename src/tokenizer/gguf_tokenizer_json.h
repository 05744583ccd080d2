// A GGUF's tokenizer (tokenizer.ggml.*) as the Hugging Face tokenizer.json + tokenizer_config.json
// that the `tokenizers` library and transformers' PreTrainedTokenizerFast load:
//   model "gpt2"   byte-level BPE: vocab from tokens, merges from tokenizer.ggml.merges, the
//                  pre-tokenizer llama.cpp names by tokenizer.ggml.pre (gpt-2, smollm, llama-bpe,
//                  qwen2), CONTROL tokens as special added tokens, USER_DEFINED as plain ones;
//   model "llama"  SentencePiece-style tokens + scores + types as transformers' LlamaConverter
//                  builds it: BPE with byte_fallback, merges from the scores, a Metaspace
//                  pre-tokenizer, <unk>/<s>/</s> special.
// tokenizer_config.json carries the special tokens and tokenizer.chat_template.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "io/gguf_reader.h"

namespace qlora::tokenizer {

struct HfTokenizerJson {
    nlohmann::json tokenizer;         // tokenizer.json
    nlohmann::json tokenizer_config;  // tokenizer_config.json
};

// Throws qlora::Error naming the file and key for a missing or mistyped tokenizer.ggml.* key, an
// unknown model or pre-tokenizer, or a malformed merge.
HfTokenizerJson gguf_hf_tokenizer(const io::GgufReader& gguf);

// tokenizer.ggml.* as the file holds them, checked as gguf_hf_tokenizer checks them: tokens (not
// empty), token types (NORMAL when absent) and scores (empty when absent) one per token, special
// ids below the vocabulary (-1 when absent). What a GGUF export of a GGUF-based model copies.
struct GgufVocabKeys {
    std::string model, pre;  // pre: "default" when absent
    std::vector<std::string> tokens;
    std::vector<int64_t> types;
    std::vector<double> scores;
    std::vector<std::string> merges;
    int64_t bos = -1, eos = -1, unk = -1, pad = -1;
    std::optional<bool> add_bos, add_eos;
};
GgufVocabKeys read_gguf_vocab_keys(const io::GgufReader& gguf);

// The pre-tokenizer names we translate (for messages and tests).
const char* gguf_supported_pre_tokenizers();

}  // namespace qlora::tokenizer
