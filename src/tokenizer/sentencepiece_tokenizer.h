// SentencePiece backend (tokenizer.model): encode with byte offsets, decode, piece metadata.
// Ids are int64 as the model consumes them; a failed load throws naming the path.
#pragma once

#include <memory>
#include <string>

#include "tokenizer/backend.h"

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace qlora::tokenizer {

class SentencePieceBackend final : public Backend {
  public:
    explicit SentencePieceBackend(const std::string& model_path);
    ~SentencePieceBackend() override;

    Encoding encode(std::string_view text, bool add_special_tokens) const override;
    std::string decode_bytes(const std::vector<int64_t>& ids, bool skip_special) const override;
    int64_t vocab_size() const override;
    std::string piece(int64_t id) const override;
    float score(int64_t id) const override;
    PieceType piece_type(int64_t id) const override;
    int64_t piece_to_id(std::string_view piece) const override;
    SpecialIds own_special_ids() const override;

  private:
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::string path_;
};

}  // namespace qlora::tokenizer
