// Added-token matching with HF's rules (AddedVocabulary::find_matches): single_word needs a
// non-word character (or the text's edge) on both sides, lstrip extends the match left over
// whitespace (not into the previous match), rstrip right over whitespace.
#include "tokenizer/added_vocabulary.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "tokenizer/utf8.h"

namespace qlora::tokenizer {
namespace {

// Rust's char::is_alphanumeric (Alphabetic or Numeric), which HF's word test uses.
bool is_word_char(char32_t c) {
    const auto cp = static_cast<UChar32>(c);
    if (u_hasBinaryProperty(cp, UCHAR_ALPHABETIC)) return true;
    const int8_t t = u_charType(cp);
    return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

bool is_space(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

size_t char_start_before(std::string_view text, size_t end) {
    size_t i = end - 1;
    while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
    return i;
}

bool word_before(std::string_view text, size_t pos) {
    if (pos == 0) return false;
    size_t i = char_start_before(text, pos);
    return is_word_char(utf8::next(text, i));
}

bool word_after(std::string_view text, size_t pos) {
    if (pos >= text.size()) return false;
    return is_word_char(utf8::next(text, pos));
}

}  // namespace

void AddedVocabulary::Trie::add(const std::string& key, size_t token_index) {
    if (key.empty()) return;
    uint32_t node = 0;
    for (char c : key) {
        const uint64_t edge = (uint64_t{node} << 8) | static_cast<unsigned char>(c);
        auto [it, inserted] = children_.try_emplace(edge, nodes_);
        if (inserted) ++nodes_;
        node = it->second;
    }
    first_[static_cast<unsigned char>(key[0])] = true;
    terminal_.try_emplace(node, token_index);
}

std::optional<std::pair<size_t, size_t>> AddedVocabulary::Trie::longest_at(std::string_view text,
                                                                           size_t pos) const {
    std::optional<std::pair<size_t, size_t>> best;
    uint32_t node = 0;
    for (size_t i = pos; i < text.size(); ++i) {
        auto it = children_.find((uint64_t{node} << 8) | static_cast<unsigned char>(text[i]));
        if (it == children_.end()) break;
        node = it->second;
        if (auto t = terminal_.find(node); t != terminal_.end()) best = {{i + 1 - pos, t->second}};
    }
    return best;
}

std::vector<AddedSegment> AddedVocabulary::split(std::string_view text, bool normalized_set) const {
    const Trie& trie = normalized_set ? normalized_ : raw_;
    std::vector<AddedSegment> out;
    size_t start_offset = 0;
    for (size_t pos = 0; !trie.empty() && pos < text.size();) {
        std::optional<std::pair<size_t, size_t>> m;
        if (trie.may_start(static_cast<unsigned char>(text[pos]))) m = trie.longest_at(text, pos);
        if (!m) {
            ++pos;
            continue;
        }
        const AddedToken& token = tokens_[m->second];
        size_t start = pos;
        size_t stop = pos + m->first;
        pos = stop;
        if (token.single_word && (word_before(text, start) || word_after(text, stop))) continue;
        if (token.lstrip) {
            size_t s = start;
            while (s > 0) {
                size_t c = char_start_before(text, s);
                size_t probe = c;
                if (!is_space(utf8::next(text, probe))) break;
                s = c;
            }
            start = std::max(s, start_offset);
        }
        if (token.rstrip) {
            while (stop < text.size()) {
                size_t probe = stop;
                if (!is_space(utf8::next(text, probe))) break;
                stop = probe;
            }
        }
        if (start_offset < start) out.push_back({std::nullopt, start_offset, start});
        out.push_back({token.id, start, stop});
        start_offset = stop;
    }
    if (start_offset < text.size() || out.empty()) {
        out.push_back({std::nullopt, start_offset, text.size()});
    }
    return out;
}

const AddedToken* AddedVocabulary::by_id(uint32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<uint32_t> AddedVocabulary::by_content(std::string_view content) const {
    auto it = by_content_.find(std::string(content));
    if (it == by_content_.end()) return std::nullopt;
    return it->second;
}

}  // namespace qlora::tokenizer
