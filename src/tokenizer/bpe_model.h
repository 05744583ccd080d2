// tokenizer.json "model" of type BPE: vocabulary, ranked merges, ignore_merges, byte_fallback,
// unk_token / fuse_unk and continuing_subword_prefix / end_of_word_suffix. Words are merged the
// way HF's BPE does (lowest-ranked adjacent pair first, leftmost on ties), and the result of each
// word is cached, since natural text repeats its words.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace qlora::tokenizer {

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, uint32_t, StringHash, std::equal_to<>>;

struct WordToken {
    uint32_t id;
    uint32_t begin, end;  // byte range within the word
};

class BpeModel {
  public:
    // `where`: "<file>: model" for errors. WordPiece/Unigram/WordLevel are refused here.
    BpeModel(const nlohmann::json& model, const std::string& where);

    // Appends the tokens of one pre-tokenized piece.
    void tokenize(std::string_view word, std::vector<WordToken>& out) const;

    std::optional<uint32_t> token_to_id(std::string_view token) const;
    const std::string* id_to_token(uint32_t id) const;
    // One past the largest id of the vocabulary.
    size_t id_limit() const { return id_to_token_.size(); }
    std::optional<uint32_t> unk_id() const { return unk_id_; }
    bool byte_fallback() const { return byte_fallback_; }
    // The merges in rank order, as "left right".
    std::vector<std::string> merges() const;

  private:
    void merge_word(std::string_view word, std::vector<WordToken>& out) const;
    void add_symbol(std::string_view word, size_t begin, size_t end, std::vector<WordToken>& out,
                    std::optional<WordToken>& pending_unk) const;
    void load_merges(const nlohmann::json& list, const std::string& where);

    TokenMap vocab_;
    std::vector<std::string> id_to_token_;
    std::vector<bool> has_id_;
    // (left id << 32 | right id) -> (rank, merged id)
    std::unordered_map<uint64_t, std::pair<uint32_t, uint32_t>> merges_;
    std::optional<uint32_t> unk_id_;
    std::string continuing_subword_prefix_;
    std::string end_of_word_suffix_;
    bool fuse_unk_ = false;
    bool byte_fallback_ = false;
    bool ignore_merges_ = false;
    std::array<std::optional<uint32_t>, 256> byte_tokens_{};  // "<0xAB>" ids for byte_fallback

    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<WordToken>, StringHash, std::equal_to<>>
        cache_;
};

}  // namespace qlora::tokenizer
