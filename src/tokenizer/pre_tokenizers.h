// tokenizer.json "pre_tokenizer": Split (regex or string, every behavior, invert), ByteLevel,
// Digits, Metaspace, Whitespace, WhitespaceSplit, Punctuation and Sequence. A pre-tokenizer cuts
// each piece into smaller pieces (and may rewrite them); the model then encodes every piece alone.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/normalized_text.h"

namespace qlora::tokenizer {

class PreTokenizer {
  public:
    virtual ~PreTokenizer() = default;
    // Replaces `pieces` by the pieces each one splits into (empty pieces are dropped).
    virtual void pre_tokenize(std::vector<NormalizedText>& pieces) const = 0;
    // The regex of the first Split (or ByteLevel with use_regex) this pre-tokenizer applies, or ""
    // (GGUF export names llama.cpp's pre-tokenizer after it).
    virtual std::string main_regex() const { return {}; }
};

// nullptr for a JSON null. `where`: "<file>: pre_tokenizer" for errors.
std::unique_ptr<PreTokenizer> make_pre_tokenizer(const nlohmann::json& config,
                                                 const std::string& where);

}  // namespace qlora::tokenizer
