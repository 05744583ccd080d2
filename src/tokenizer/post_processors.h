// tokenizer.json "post_processor": TemplateProcessing (the special tokens around a single
// sequence, e.g. Llama 3's <|begin_of_text|>), ByteLevel (offset trimming) and Sequence. They
// run after the model; add_special_tokens=false (HF's flag) skips the template's tokens.
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/encoding.h"

namespace qlora::tokenizer {

using TokenText = std::function<std::string_view(int64_t id)>;

class PostProcessor {
  public:
    virtual ~PostProcessor() = default;
    virtual void process(Encoding& encoding, bool add_special_tokens,
                         const TokenText& token_text) const = 0;
    // The ids the single-sequence template puts before / after the text (empty when none).
    virtual std::vector<int64_t> prefix_ids() const { return {}; }
    virtual std::vector<int64_t> suffix_ids() const { return {}; }
};

// nullptr for a JSON null. `where`: "<file>: post_processor".
std::unique_ptr<PostProcessor> make_post_processor(const nlohmann::json& config,
                                                   const std::string& where);

}  // namespace qlora::tokenizer
