// A Hugging Face tokenizer.json (BPE model) as HF's Tokenizer runs it: added tokens are cut out
// of the raw text, the rest is normalized, added tokens matching normalized text are cut out,
// the pre-tokenizer splits the remaining text, BPE encodes each piece, and the post-processor
// adds the template's special tokens. decode maps ids back through the decoder.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/added_vocabulary.h"
#include "tokenizer/backend.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoders.h"
#include "tokenizer/encoding.h"
#include "tokenizer/normalizers.h"
#include "tokenizer/post_processors.h"
#include "tokenizer/pre_tokenizers.h"

namespace qlora::tokenizer {

class HfTokenizer final : public Backend {
  public:
    // `source` names the file (or GGUF) the JSON came from, for errors.
    HfTokenizer(const nlohmann::json& tokenizer_json, const std::string& source);

    // `text` must be valid UTF-8 (an error names the first bad byte otherwise).
    Encoding encode(std::string_view text, bool add_special_tokens) const override;
    // The decoded bytes, before repair to valid UTF-8 (a stream may end mid-character).
    // Ids outside the vocabulary are an error; skip_special drops special added tokens.
    std::string decode_bytes(const std::vector<int64_t>& ids, bool skip_special) const override;
    int64_t vocab_size() const override { return id_limit_; }
    // Byte-level token strings as the file spells them ("Ġthe"); "" for an id no token has.
    std::string piece(int64_t id) const override;
    float score(int64_t) const override { return 0.0f; }
    // Special added tokens are control tokens, other added tokens user-defined, ids no token
    // has unused, "<0xAB>" byte-fallback tokens bytes.
    PieceType piece_type(int64_t id) const override;
    int64_t piece_to_id(std::string_view piece) const override { return id_of(piece).value_or(-1); }
    SpecialIds own_special_ids() const override;

    // One past the largest id of the model and the added tokens.
    int64_t id_limit() const { return id_limit_; }
    // The token string of an id (added tokens first, then the model), or nullopt for a hole.
    std::optional<std::string_view> token_of(int64_t id) const;
    std::optional<int64_t> id_of(std::string_view token) const;

    const AddedVocabulary& added() const { return added_; }
    const BpeModel& model() const { return *model_; }
    // The first Split/ByteLevel regex of the pre-tokenizer ("" when none), for GGUF export.
    std::string pre_tokenizer_regex() const;
    std::vector<int64_t> template_prefix_ids() const;
    std::vector<int64_t> template_suffix_ids() const;
    bool byte_level_decoder() const { return byte_level_decoder_; }
    // The "pre_tokenizer" section as the file has it (GGUF export names llama.cpp's after it).
    const nlohmann::json& pre_tokenizer_config() const { return pre_tokenizer_config_; }
    const std::string& source() const { return source_; }

  private:
    void append_pieces(NormalizedText segment, Encoding& e) const;

    std::string source_;
    std::unique_ptr<BpeModel> model_;
    std::unique_ptr<Normalizer> normalizer_;
    std::unique_ptr<PreTokenizer> pre_tokenizer_;
    std::unique_ptr<PostProcessor> post_processor_;
    std::unique_ptr<Decoder> decoder_;
    AddedVocabulary added_;
    nlohmann::json pre_tokenizer_config_;
    int64_t id_limit_ = 0;
    bool byte_level_decoder_ = false;
};

}  // namespace qlora::tokenizer
