// tokenizer.json "added_tokens": strings that are cut out of the text before normalization and
// pre-tokenization and become one id each (special tokens like <|eot_id|>, or plain added words).
// Matching is leftmost-longest, as HF's Aho-Corasick matcher; lstrip/rstrip let a token swallow
// the whitespace beside it and single_word refuses matches inside a word.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qlora::tokenizer {

struct AddedToken {
    uint32_t id = 0;
    std::string content;
    bool special = false;
    bool lstrip = false;
    bool rstrip = false;
    bool single_word = false;
    bool normalized = false;
};

struct AddedSegment {
    std::optional<uint32_t> id;  // nullopt: ordinary text
    size_t begin, end;
};

class AddedVocabulary {
  public:
    AddedVocabulary() = default;
    // `normalize` rewrites the content of normalized tokens as the text will be rewritten.
    template <typename Normalize>
    AddedVocabulary(std::vector<AddedToken> tokens, Normalize&& normalize)
        : tokens_(std::move(tokens)) {
        for (size_t i = 0; i < tokens_.size(); ++i) {
            const AddedToken& t = tokens_[i];
            by_id_[t.id] = i;
            by_content_.emplace(t.content, t.id);
            if (t.normalized) {
                normalized_.add(normalize(t.content), i);
            } else {
                raw_.add(t.content, i);
            }
        }
    }

    // `text` cut at the tokens of one set: those matched on the raw text (normalized=false) or
    // those matched after normalization.
    std::vector<AddedSegment> split(std::string_view text, bool normalized_set) const;

    const AddedToken* by_id(uint32_t id) const;
    std::optional<uint32_t> by_content(std::string_view content) const;
    const std::vector<AddedToken>& tokens() const { return tokens_; }

  private:
    class Trie {
      public:
        void add(const std::string& key, size_t token_index);
        // The longest key starting at text[pos] as (length, token index), or nullopt.
        std::optional<std::pair<size_t, size_t>> longest_at(std::string_view text,
                                                            size_t pos) const;
        bool empty() const { return children_.empty(); }
        bool may_start(unsigned char c) const { return first_[c]; }

      private:
        std::unordered_map<uint64_t, uint32_t> children_;  // (node << 8 | byte) -> node
        std::unordered_map<uint32_t, size_t> terminal_;    // node -> token index
        uint32_t nodes_ = 1;
        bool first_[256] = {};
    };

    std::vector<AddedToken> tokens_;
    std::unordered_map<uint32_t, size_t> by_id_;
    std::unordered_map<std::string, uint32_t> by_content_;
    Trie raw_, normalized_;
};

}  // namespace qlora::tokenizer
