// tokenizer.json "normalizer": NFC, NFD, NFKC, NFKD (through ICU), Lowercase, Strip, Prepend,
// Replace and Sequence. Each rewrites a NormalizedText in place, keeping the original offsets.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "tokenizer/normalized_text.h"

namespace qlora::tokenizer {

class Normalizer {
  public:
    virtual ~Normalizer() = default;
    virtual void normalize(NormalizedText& text) const = 0;
};

// nullptr for a JSON null (no normalizer). `where`: "<file>: normalizer" for errors.
std::unique_ptr<Normalizer> make_normalizer(const nlohmann::json& config, const std::string& where);

}  // namespace qlora::tokenizer
