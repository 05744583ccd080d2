// BPE: a word starts as one symbol per character (the prefix/suffix applied, unknown characters
// as byte tokens or unk), then the adjacent pair with the lowest merge rank is merged until none
// is left, with a priority queue over (rank, position) as HF's Word::merge_all.
#include "tokenizer/bpe_model.h"

#include <array>
#include <cstdio>
#include <queue>

#include "core/error.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer {
namespace {

using nlohmann::json;

constexpr size_t kMaxCachedWordBytes = 256;
constexpr size_t kMaxCacheEntries = 200000;
constexpr size_t kMaxVocab = 16u << 20;  // ids are int32 in GGUF; a bound before allocating

uint64_t pair_key(uint32_t a, uint32_t b) { return (uint64_t{a} << 32) | b; }

struct Symbol {
    uint32_t id;
    uint32_t begin, end;
    int prev, next;  // -1 at the ends; end == begin marks a merged-away symbol
    bool alive = true;
};

struct Candidate {
    uint32_t rank;
    uint32_t pos;
    uint32_t new_id;
    bool operator>(const Candidate& o) const {
        return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
};

}  // namespace

BpeModel::BpeModel(const json& model, const std::string& where) {
    const std::string type = hf_json::get_string_or(model, "type", "BPE", where);
    QLORA_CHECK(type == "BPE", where, ": model type '", type,
                "' is not supported (only BPE; WordPiece, Unigram and WordLevel tokenizer.json "
                "files are not implemented)");
    QLORA_CHECK(model.contains("vocab") && model["vocab"].is_object(), where,
                ": expected 'vocab' as an object of token -> id, found ",
                model.contains("vocab") ? hf_json::excerpt(model["vocab"]) : "nothing");
    QLORA_CHECK(model["vocab"].size() <= kMaxVocab, where, ": vocab has ", model["vocab"].size(),
                " entries, more than the ", kMaxVocab, " supported");
    vocab_.reserve(model["vocab"].size());
    uint32_t limit = 0;
    for (const auto& [token, id] : model["vocab"].items()) {
        QLORA_CHECK(hf_json::is_index_below(id, kMaxVocab), where, ": vocab id of '", token,
                    "' must be an integer in [0, ", kMaxVocab, "), found ", hf_json::excerpt(id));
        vocab_.emplace(token, id.get<uint32_t>());
        limit = std::max(limit, id.get<uint32_t>() + 1);
    }
    id_to_token_.resize(limit);
    has_id_.resize(limit, false);
    for (const auto& [token, id] : vocab_) {
        id_to_token_[id] = token;
        has_id_[id] = true;
    }
    continuing_subword_prefix_ =
        hf_json::get_string_or(model, "continuing_subword_prefix", "", where);
    end_of_word_suffix_ = hf_json::get_string_or(model, "end_of_word_suffix", "", where);
    fuse_unk_ = hf_json::get_bool_or(model, "fuse_unk", false, where);
    byte_fallback_ = hf_json::get_bool_or(model, "byte_fallback", false, where);
    ignore_merges_ = hf_json::get_bool_or(model, "ignore_merges", false, where);
    QLORA_CHECK(!model.contains("dropout") || model["dropout"].is_null() ||
                    (model["dropout"].is_number() && model["dropout"].get<double>() == 0.0),
                where, ": BPE dropout is not supported (found ", hf_json::excerpt(model["dropout"]),
                "); it only applies to training-time encoding");
    if (const std::string unk = hf_json::get_string_or(model, "unk_token", "", where);
        !unk.empty()) {
        auto it = vocab_.find(unk);
        QLORA_CHECK(it != vocab_.end(), where, ": unk_token '", unk, "' is not in the vocab");
        unk_id_ = it->second;
    }
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof(name), "<0x%02X>", b);
        if (auto it = vocab_.find(std::string_view(name)); it != vocab_.end()) {
            byte_tokens_[static_cast<size_t>(b)] = it->second;
        }
    }
    load_merges(hf_json::get_array(model, "merges", where), where);
}

void BpeModel::load_merges(const json& list, const std::string& where) {
    merges_.reserve(list.size());
    const size_t prefix_len = continuing_subword_prefix_.size();
    for (size_t rank = 0; rank < list.size(); ++rank) {
        const json& m = list[rank];
        std::string left, right;
        if (m.is_string()) {
            const std::string& s = m.get_ref<const std::string&>();
            const size_t space = s.find(' ');
            QLORA_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos,
                        where, ": merges[", rank, "] must be \"left right\", found ",
                        hf_json::excerpt(m));
            left = s.substr(0, space);
            right = s.substr(space + 1);
        } else {
            QLORA_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(),
                        where, ": merges[", rank,
                        "] must be \"left right\" or [left, right], found ", hf_json::excerpt(m));
            left = m[0].get<std::string>();
            right = m[1].get<std::string>();
        }
        auto a = vocab_.find(left);
        auto b = vocab_.find(right);
        QLORA_CHECK(a != vocab_.end() && b != vocab_.end(), where, ": merges[", rank, "] uses '",
                    a == vocab_.end() ? left : right, "', which is not in the vocab");
        const std::string merged =
            left + (right.compare(0, prefix_len, continuing_subword_prefix_) == 0
                        ? right.substr(prefix_len)
                        : right);
        auto m_id = vocab_.find(merged);
        QLORA_CHECK(m_id != vocab_.end(), where, ": merges[", rank, "] makes '", merged,
                    "', which is not in the vocab");
        // A repeated pair takes its last rank, as HF's map built from the list does.
        merges_.insert_or_assign(pair_key(a->second, b->second),
                                 std::pair{static_cast<uint32_t>(rank), m_id->second});
    }
}

std::optional<uint32_t> BpeModel::token_to_id(std::string_view token) const {
    auto it = vocab_.find(token);
    if (it == vocab_.end()) return std::nullopt;
    return it->second;
}

const std::string* BpeModel::id_to_token(uint32_t id) const {
    return id < id_to_token_.size() && has_id_[id] ? &id_to_token_[id] : nullptr;
}

std::vector<std::string> BpeModel::merges() const {
    std::vector<std::string> out(merges_.size());
    for (const auto& [key, value] : merges_) {
        out[value.first] = id_to_token_[key >> 32] + " " + id_to_token_[key & 0xFFFFFFFFu];
    }
    // Ranks of duplicated merges leave holes; drop them.
    std::erase(out, std::string());
    return out;
}

void BpeModel::tokenize(std::string_view word, std::vector<WordToken>& out) const {
    if (word.empty()) return;
    const auto len = static_cast<uint32_t>(word.size());
    if (ignore_merges_) {
        if (auto it = vocab_.find(word); it != vocab_.end()) {
            out.push_back({it->second, 0, len});
            return;
        }
    }
    if (word.size() > kMaxCachedWordBytes) {
        merge_word(word, out);
        return;
    }
    {
        std::lock_guard lock(cache_mutex_);
        if (auto it = cache_.find(word); it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    const size_t first = out.size();
    merge_word(word, out);
    std::vector<WordToken> tokens(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
    std::lock_guard lock(cache_mutex_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::string(word), std::move(tokens));
}

// One character of the word as a symbol (HF's BPE::merge_word): the vocabulary entry with the
// prefix/suffix, else its byte tokens, else unk (fused with a preceding unk when fuse_unk).
void BpeModel::add_symbol(std::string_view word, size_t begin, size_t end,
                          std::vector<WordToken>& out,
                          std::optional<WordToken>& pending_unk) const {
    std::string s(word.substr(begin, end - begin));
    if (begin > 0) s.insert(0, continuing_subword_prefix_);
    if (end == word.size()) s += end_of_word_suffix_;
    const auto b = static_cast<uint32_t>(begin);
    const auto e = static_cast<uint32_t>(end);
    if (auto it = vocab_.find(s); it != vocab_.end()) {
        if (pending_unk) out.push_back(*pending_unk);
        pending_unk.reset();
        out.push_back({it->second, b, e});
        return;
    }
    if (byte_fallback_) {
        bool all = true;
        for (char c : s) all = all && byte_tokens_[static_cast<unsigned char>(c)].has_value();
        if (all) {
            uint32_t at = b;
            for (char c : s) {
                const uint32_t next = std::min(at + 1, e);
                out.push_back({*byte_tokens_[static_cast<unsigned char>(c)], at, next});
                at = next;
            }
            return;
        }
    }
    if (!unk_id_) return;  // HF drops the character when there is no unk token
    if (pending_unk && fuse_unk_) {
        pending_unk->end = e;
        return;
    }
    if (pending_unk) out.push_back(*pending_unk);
    pending_unk = WordToken{*unk_id_, b, e};
}

void BpeModel::merge_word(std::string_view word, std::vector<WordToken>& out) const {
    std::vector<WordToken> initial;
    std::optional<WordToken> pending_unk;
    for (size_t i = 0; i < word.size();) {
        const size_t end = std::min(i + utf8::char_length(word, i), word.size());
        add_symbol(word, i, end, initial, pending_unk);
        i = end;
    }
    if (pending_unk) initial.push_back(*pending_unk);

    std::vector<Symbol> sym(initial.size());
    for (size_t i = 0; i < initial.size(); ++i) {
        sym[i] = {initial[i].id,
                  initial[i].begin,
                  initial[i].end,
                  static_cast<int>(i) - 1,
                  i + 1 < initial.size() ? static_cast<int>(i + 1) : -1,
                  true};
    }
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
    auto consider = [&](int pos) {
        if (pos < 0 || sym[static_cast<size_t>(pos)].next < 0) return;
        const Symbol& s = sym[static_cast<size_t>(pos)];
        auto it = merges_.find(pair_key(s.id, sym[static_cast<size_t>(s.next)].id));
        if (it != merges_.end()) {
            queue.push({it->second.first, static_cast<uint32_t>(pos), it->second.second});
        }
    };
    for (size_t i = 0; i + 1 < sym.size(); ++i) consider(static_cast<int>(i));
    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = sym[top.pos];
        if (!left.alive || left.next < 0) continue;
        Symbol& right = sym[static_cast<size_t>(left.next)];
        auto it = merges_.find(pair_key(left.id, right.id));
        if (it == merges_.end() || it->second.second != top.new_id) continue;
        left.id = top.new_id;
        left.end = right.end;
        right.alive = false;
        left.next = right.next;
        if (left.next >= 0) sym[static_cast<size_t>(left.next)].prev = static_cast<int>(top.pos);
        consider(left.prev);
        consider(static_cast<int>(top.pos));
    }
    for (const Symbol& s : sym) {
        if (s.alive) out.push_back({s.id, s.begin, s.end});
    }
}

}  // namespace qlora::tokenizer
