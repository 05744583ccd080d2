// What each tokenizer implementation (SentencePiece tokenizer.model, HF tokenizer.json) provides
// to the Tokenizer facade. Special-token ids and tokenizer_config.json live in the facade.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/encoding.h"

namespace qlora::tokenizer {

// What a piece is, in the terms GGUF's tokenizer.ggml.token_type uses (1 normal ... 6 byte).
enum class PieceType : int32_t {
    kNormal = 1,
    kUnknown = 2,
    kControl = 3,
    kUserDefined = 4,
    kUnused = 5,
    kByte = 6,
};

struct SpecialIds {
    int64_t bos = -1, eos = -1, pad = -1, unk = -1;
};

class Backend {
  public:
    virtual ~Backend() = default;
    // The text's tokens with byte offsets; with add_special_tokens, the special tokens the
    // tokenizer file itself adds (HF post-processor). SentencePiece adds none here.
    virtual Encoding encode(std::string_view text, bool add_special_tokens) const = 0;
    // Decoded bytes, possibly ending in an incomplete UTF-8 sequence.
    virtual std::string decode_bytes(const std::vector<int64_t>& ids, bool skip_special) const = 0;
    virtual int64_t vocab_size() const = 0;
    // Callers check 0 <= id < vocab_size() first.
    virtual std::string piece(int64_t id) const = 0;
    virtual float score(int64_t id) const = 0;
    virtual PieceType piece_type(int64_t id) const = 0;
    virtual int64_t piece_to_id(std::string_view piece) const = 0;  // -1 when absent
    virtual SpecialIds own_special_ids() const = 0;
};

}  // namespace qlora::tokenizer
