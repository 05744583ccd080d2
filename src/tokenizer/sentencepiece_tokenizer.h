// Tokenizer: SentencePiece (tokenizer.model) with the special-token ids a model folder declares.
// Ids are int64 as the model consumes them; a failed load throws naming the path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

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

class Tokenizer {
public:
    // `path`: a tokenizer.model file, or a model folder holding tokenizer.model (and optionally
    // tokenizer_config.json, whose bos/eos/pad/unk tokens override the model's own ids).
    explicit Tokenizer(const std::string& path);
    ~Tokenizer();
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;

    std::vector<int64_t> encode(const std::string& text, bool add_bos = true,
                                bool add_eos = false) const;
    // Control tokens (BOS/EOS/PAD) decode to nothing; byte pieces are joined into UTF-8.
    std::string decode(const std::vector<int64_t>& ids) const;

    int64_t vocab_size() const;
    // -1 where the tokenizer has none.
    int64_t bos_id() const { return bos_id_; }
    int64_t eos_id() const { return eos_id_; }
    int64_t pad_id() const { return pad_id_; }
    int64_t unk_id() const { return unk_id_; }

    std::string piece(int64_t id) const;
    float score(int64_t id) const;
    PieceType piece_type(int64_t id) const;
    // The id of a piece, or -1 (unknown pieces do not map to unk here).
    int64_t piece_to_id(const std::string& piece) const;

    const std::string& path() const { return path_; }

private:
    void check_id(int64_t id) const;
    void apply_tokenizer_config(const std::string& json_path);

    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    std::string path_;
    int64_t bos_id_ = -1;
    int64_t eos_id_ = -1;
    int64_t pad_id_ = -1;
    int64_t unk_id_ = -1;
};

}  // namespace qlora::tokenizer
