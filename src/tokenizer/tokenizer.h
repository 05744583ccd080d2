// Tokenizer: the one interface every caller uses, over two backends chosen by what the model
// folder holds: a Hugging Face tokenizer.json (byte-level BPE: Llama 3, Qwen2, GPT-2, SmolLM2)
// first, as transformers does, else a SentencePiece tokenizer.model. tokenizer_config.json names
// the special tokens (and the chat template); generation_config.json may add EOS ids.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/backend.h"
#include "tokenizer/encoding.h"

namespace qlora::tokenizer {

class HfTokenizer;

enum class BackendKind { kSentencePiece, kHfJson };

struct AddedTokenInfo {
    int64_t id;
    std::string content;
    bool special;
};

class Tokenizer {
  public:
    // `path`: a model folder (tokenizer.json, else tokenizer.model; tokenizer_config.json and
    // generation_config.json beside them are read when present), or a tokenizer.json or
    // tokenizer.model file, or a .gguf file (its tokenizer.ggml.* vocabulary and chat template,
    // rebuilt as tokenizer.json + tokenizer_config.json by tokenizer/gguf_tokenizer_json.h).
    explicit Tokenizer(const std::string& path);
    // A tokenizer.json held in memory (e.g. rebuilt from GGUF metadata); `tokenizer_config` may
    // be null or an object. `source` names the origin in errors.
    static Tokenizer from_hf_json(const nlohmann::json& tokenizer_json,
                                  const nlohmann::json& tokenizer_config,
                                  const std::string& source);
    ~Tokenizer();
    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;

    // add_bos: the special tokens the tokenizer puts around a text (HF add_special_tokens=True:
    // Llama 3's <|begin_of_text|>, nothing for Qwen2; SentencePiece: BOS); add_eos appends EOS.
    std::vector<int64_t> encode(const std::string& text, bool add_bos = true,
                                bool add_eos = false) const;
    // HF's encode(text, add_special_tokens), with the byte range of the text each id stands for.
    Encoding encode_with_offsets(std::string_view text, bool add_special_tokens = true) const;
    // skip_special_tokens drops special tokens (SentencePiece control tokens always decode to
    // nothing). Invalid UTF-8 from byte tokens becomes U+FFFD. Ids outside the vocabulary throw.
    std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = true) const;

    // decode() before the repair to valid UTF-8 (a stream may stop inside a character).
    std::string decode_bytes(const std::vector<int64_t>& ids, bool skip_special_tokens) const;

    int64_t vocab_size() const;
    // -1 where the tokenizer has none.
    int64_t bos_id() const { return special_.bos; }
    int64_t eos_id() const { return special_.eos; }
    int64_t pad_id() const { return special_.pad; }
    int64_t unk_id() const { return special_.unk; }
    // Every id that ends a generation: eos_id() and generation_config.json's eos_token_id
    // (an int or a list), without repeats.
    const std::vector<int64_t>& eos_ids() const { return eos_ids_; }

    std::string piece(int64_t id) const;
    float score(int64_t id) const;
    PieceType piece_type(int64_t id) const;
    // The id of a piece or added token, or -1 (unknown pieces do not map to unk here).
    int64_t piece_to_id(const std::string& piece) const;
    // Added tokens (tokenizer.json added_tokens, or tokenizer_config's added_tokens_decoder for
    // SentencePiece) in id order.
    std::vector<AddedTokenInfo> added_tokens() const;
    bool is_special(int64_t id) const;

    BackendKind kind() const { return kind_; }
    // The tokenizer.json backend (nullptr for SentencePiece), for GGUF export's vocabulary.
    const HfTokenizer* hf() const;
    // tokenizer_config.json as read (an empty object when there was none).
    const nlohmann::json& config() const { return *config_; }
    // Whether add_special_tokens puts BOS / EOS around a text.
    bool adds_bos() const;
    bool adds_eos() const;

    const std::string& path() const { return path_; }
    // The folder whose tokenizer_config.json / chat_template.jinja belong to this tokenizer;
    // empty for one from a GGUF or from memory (its config() is all there is).
    const std::string& folder() const { return folder_; }

  private:
    Tokenizer() = default;
    void check_id(int64_t id) const;
    void apply_config(const std::string& folder);

    std::unique_ptr<Backend> backend_;
    std::unique_ptr<nlohmann::json> config_;
    BackendKind kind_ = BackendKind::kSentencePiece;
    std::string path_;
    std::string folder_;
    SpecialIds special_;
    std::vector<int64_t> eos_ids_;
    bool sp_add_bos_ = true;
    bool sp_add_eos_ = false;
};

// Decodes ids one at a time for printing as they are generated: text is emitted only when it is
// complete (no trailing partial UTF-8 character or U+FFFD of an unfinished byte sequence), and
// the concatenation of everything step() and finish() return equals decode() of all ids.
class StreamDecoder {
  public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = true);
    // The new text this id completes (possibly empty).
    std::string step(int64_t id);
    // What is still held back, repaired to valid UTF-8.
    std::string finish();

  private:
    std::string decode_window() const;

    const Tokenizer& tokenizer_;
    bool skip_special_;
    std::vector<int64_t> ids_;  // a window: ids_[0, prefix_count_) were already emitted
    size_t prefix_count_ = 0;
    std::string prefix_;  // decode of ids_[0, prefix_count_)
};

}  // namespace qlora::tokenizer
