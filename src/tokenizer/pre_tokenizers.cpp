// Pre-tokenizers, following HF's split semantics: a pattern cuts a piece into alternating
// match / non-match runs, and the behavior decides what becomes a piece (Isolated: every run;
// Removed: the non-matches; MergedWithPrevious/Next: a match joins its neighbour run;
// Contiguous: adjacent runs of the same kind join).
#include "tokenizer/pre_tokenizers.h"

#include <unicode/uchar.h>

#include <functional>

#include "core/error.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer {
namespace {

using nlohmann::json;

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct Run {
    size_t begin, end;
    bool is_match;
};

Behavior parse_behavior(const std::string& name, const std::string& where) {
    if (name == "Removed") return Behavior::kRemoved;
    if (name == "Isolated") return Behavior::kIsolated;
    if (name == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
    if (name == "MergedWithNext") return Behavior::kMergedWithNext;
    if (name == "Contiguous") return Behavior::kContiguous;
    QLORA_FAIL(where, ": behavior '", name,
               "' is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, "
               "Contiguous");
}

// Match ranges -> runs covering [0, size).
std::vector<Run> to_runs(size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
                         bool invert) {
    std::vector<Run> runs;
    if (size == 0) return {{0, 0, false}};
    size_t prev = 0;
    for (const auto& [b, e] : matches) {
        if (prev != b) runs.push_back({prev, b, invert});
        runs.push_back({b, e, !invert});
        prev = e;
    }
    if (prev != size) runs.push_back({prev, size, invert});
    return runs;
}

std::vector<Run> apply_behavior(std::vector<Run> runs, Behavior behavior) {
    std::vector<Run> out;
    bool previous_match = false;
    switch (behavior) {
        case Behavior::kRemoved:
            for (const Run& r : runs) {
                if (!r.is_match) out.push_back(r);
            }
            return out;
        case Behavior::kIsolated:
            return runs;
        case Behavior::kContiguous:
            for (const Run& r : runs) {
                if (r.is_match == previous_match && !out.empty()) {
                    out.back().end = r.end;
                } else {
                    out.push_back(r);
                }
                previous_match = r.is_match;
            }
            return out;
        case Behavior::kMergedWithPrevious:
            for (const Run& r : runs) {
                if (r.is_match && !previous_match && !out.empty()) {
                    out.back().end = r.end;
                } else {
                    out.push_back(r);
                }
                previous_match = r.is_match;
            }
            return out;
        case Behavior::kMergedWithNext:
            for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
                if (it->is_match && !previous_match && !out.empty()) {
                    out.back().begin = it->begin;
                } else {
                    out.push_back(*it);
                }
                previous_match = it->is_match;
            }
            return {out.rbegin(), out.rend()};
    }
    return runs;
}

// Splits every piece at the matches `find` reports, by `behavior`.
using FindMatches =
    std::function<void(const std::string&, std::vector<std::pair<size_t, size_t>>&)>;

void split_pieces(std::vector<NormalizedText>& pieces, const FindMatches& find, bool invert,
                  Behavior behavior) {
    std::vector<NormalizedText> out;
    out.reserve(pieces.size());
    std::vector<std::pair<size_t, size_t>> matches;
    for (NormalizedText& piece : pieces) {
        find(piece.text, matches);
        std::vector<Run> runs =
            apply_behavior(to_runs(piece.text.size(), matches, invert), behavior);
        if (runs.size() == 1 && runs[0].begin == 0 && runs[0].end == piece.text.size()) {
            if (!piece.empty()) out.push_back(std::move(piece));
            continue;
        }
        for (const Run& r : runs) {
            if (r.end > r.begin) out.push_back(piece.slice(r.begin, r.end));
        }
    }
    pieces = std::move(out);
}

FindMatches regex_finder(std::shared_ptr<Regex> regex) {
    return [regex](const std::string& text, std::vector<std::pair<size_t, size_t>>& out) {
        regex->find_all(text, out);
    };
}

FindMatches literal_finder(std::string literal) {
    return [literal](const std::string& text, std::vector<std::pair<size_t, size_t>>& out) {
        out.clear();
        if (literal.empty()) return;
        for (size_t at = text.find(literal); at != std::string::npos;
             at = text.find(literal, at + literal.size())) {
            out.emplace_back(at, at + literal.size());
        }
    };
}

// Every character for which `pred` holds is one match.
FindMatches char_finder(std::function<bool(char32_t)> pred) {
    return [pred](const std::string& text, std::vector<std::pair<size_t, size_t>>& out) {
        out.clear();
        for (size_t i = 0; i < text.size();) {
            const size_t start = i;
            if (pred(utf8::next(text, i))) out.emplace_back(start, i);
        }
    };
}

bool is_whitespace(char32_t c) { return u_isUWhiteSpace(static_cast<UChar32>(c)); }

bool is_numeric(char32_t c) {  // Rust char::is_numeric: Nd, Nl, No
    const int8_t t = u_charType(static_cast<UChar32>(c));
    return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

bool is_punctuation(char32_t c) {  // HF: ASCII punctuation or a Unicode P* category
    if (c < 0x80) return std::ispunct(static_cast<int>(c)) != 0;
    const int8_t t = u_charType(static_cast<UChar32>(c));
    return t == U_CONNECTOR_PUNCTUATION || t == U_DASH_PUNCTUATION || t == U_START_PUNCTUATION ||
           t == U_END_PUNCTUATION || t == U_INITIAL_PUNCTUATION || t == U_FINAL_PUNCTUATION ||
           t == U_OTHER_PUNCTUATION;
}

class Split final : public PreTokenizer {
  public:
    Split(const hf_json::Pattern& pattern, Behavior behavior, bool invert, const std::string& where)
        : behavior_(behavior), invert_(invert) {
        if (pattern.is_regex) {
            regex_ = pattern.text;
            find_ = regex_finder(std::make_shared<Regex>(pattern.text, where));
        } else {
            find_ = literal_finder(pattern.text);
        }
    }
    void pre_tokenize(std::vector<NormalizedText>& pieces) const override {
        split_pieces(pieces, find_, invert_, behavior_);
    }
    std::string main_regex() const override { return regex_; }

  private:
    FindMatches find_;
    Behavior behavior_;
    bool invert_;
    std::string regex_;
};

class CharSplit final : public PreTokenizer {
  public:
    CharSplit(std::function<bool(char32_t)> pred, Behavior behavior, bool invert = false)
        : find_(char_finder(std::move(pred))), behavior_(behavior), invert_(invert) {}
    void pre_tokenize(std::vector<NormalizedText>& pieces) const override {
        split_pieces(pieces, find_, invert_, behavior_);
    }

  private:
    FindMatches find_;
    Behavior behavior_;
    bool invert_;
};

// HF's Whitespace: the runs of \w+|[^\w\s]+ with Oniguruma's Unicode classes (\w as UTS #18
// defines it: Alphabetic, marks, decimal digits, connector punctuation and the joiners ZWJ/ZWNJ;
// \s: White_Space); everything else is dropped.
class Whitespace final : public PreTokenizer {
  public:
    explicit Whitespace(const std::string& where)
        : find_(regex_finder(std::make_shared<Regex>(
              R"([\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}]+)"
              R"(|[^\p{Alphabetic}\p{M}\p{Nd}\p{Pc}\p{Join_Control}\p{White_Space}]+)",
              where))) {}
    void pre_tokenize(std::vector<NormalizedText>& pieces) const override {
        split_pieces(pieces, find_, /*invert=*/true, Behavior::kRemoved);
    }

  private:
    FindMatches find_;
};

class ByteLevel final : public PreTokenizer {
  public:
    ByteLevel(bool add_prefix_space, bool use_regex, const std::string& where)
        : add_prefix_space_(add_prefix_space) {
        if (use_regex)
            find_ = regex_finder(std::make_shared<Regex>(byte_level::kGpt2Pattern, where));
    }
    void pre_tokenize(std::vector<NormalizedText>& pieces) const override {
        if (add_prefix_space_) {
            for (NormalizedText& p : pieces) {
                if (p.empty() || p.text[0] == ' ') continue;
                NormalizedBuilder b;
                // Measured against HF: this space covers nothing (an empty span where the
                // piece starts), unlike Metaspace's prepended "▁".
                b.append(" ", Span{p.align[0].begin, p.align[0].begin});
                b.copy(p, 0, p.text.size());
                p = b.finish();
            }
        }
        if (find_) split_pieces(pieces, find_, false, Behavior::kIsolated);
        for (NormalizedText& p : pieces) p = to_byte_chars(p);
    }
    std::string main_regex() const override { return find_ ? byte_level::kGpt2Pattern : ""; }

  private:
    // Each byte becomes the alphabet character standing for it, aligned to the byte's character.
    static NormalizedText to_byte_chars(const NormalizedText& p) {
        NormalizedText out;
        out.text.reserve(p.text.size() * 2);
        out.align.reserve(p.text.size() * 2);
        for (size_t i = 0; i < p.text.size(); ++i) {
            const std::string& c = byte_level::char_of_byte(static_cast<unsigned char>(p.text[i]));
            out.text += c;
            out.align.insert(out.align.end(), c.size(), p.align[i]);
        }
        return out;
    }

    bool add_prefix_space_;
    FindMatches find_;
};

class Metaspace final : public PreTokenizer {
  public:
    enum class Prepend { kAlways, kFirst, kNever };
    Metaspace(std::string replacement, Prepend prepend, bool split)
        : replacement_(std::move(replacement)), prepend_(prepend), split_(split) {}
    void pre_tokenize(std::vector<NormalizedText>& pieces) const override {
        for (NormalizedText& p : pieces) {
            NormalizedBuilder b;
            const bool starts = p.text.compare(0, 1, " ") == 0 ||
                                p.text.compare(0, replacement_.size(), replacement_) == 0;
            const bool at_start = !p.empty() && p.align[0].begin == 0;
            if (!p.empty() && !starts &&
                (prepend_ == Prepend::kAlways || (prepend_ == Prepend::kFirst && at_start))) {
                b.append(replacement_, inserted_before(p));
            }
            for (size_t i = 0; i < p.text.size(); ++i) {
                if (p.text[i] == ' ') {
                    b.append(replacement_, p.align[i]);
                } else {
                    b.copy(p, i, i + 1);
                }
            }
            p = b.finish();
        }
        if (split_)
            split_pieces(pieces, literal_finder(replacement_), false, Behavior::kMergedWithNext);
    }

  private:
    std::string replacement_;
    Prepend prepend_;
    bool split_;
};

class Sequence final : public PreTokenizer {
  public:
    explicit Sequence(std::vector<std::unique_ptr<PreTokenizer>> steps)
        : steps_(std::move(steps)) {}
    void pre_tokenize(std::vector<NormalizedText>& pieces) const override {
        for (const auto& step : steps_) step->pre_tokenize(pieces);
    }
    std::string main_regex() const override {
        for (const auto& step : steps_) {
            if (std::string r = step->main_regex(); !r.empty()) return r;
        }
        return {};
    }

  private:
    std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

std::unique_ptr<PreTokenizer> make_metaspace(const json& config, const std::string& where) {
    const std::string replacement = hf_json::get_string_or(config, "replacement", "\u2581", where);
    QLORA_CHECK(!replacement.empty() && utf8::char_length(replacement, 0) == replacement.size(),
                where, ": replacement must be one character, found '", replacement, "'");
    Metaspace::Prepend prepend = hf_json::get_bool_or(config, "add_prefix_space", true, where)
                                     ? Metaspace::Prepend::kAlways
                                     : Metaspace::Prepend::kNever;
    if (config.contains("prepend_scheme")) {
        const std::string scheme = hf_json::get_string(config, "prepend_scheme", where);
        if (scheme == "always") {
            prepend = Metaspace::Prepend::kAlways;
        } else if (scheme == "first") {
            prepend = Metaspace::Prepend::kFirst;
        } else if (scheme == "never") {
            prepend = Metaspace::Prepend::kNever;
        } else {
            QLORA_FAIL(where, ": prepend_scheme must be always, first or never, found '", scheme,
                       "'");
        }
    }
    return std::make_unique<Metaspace>(replacement, prepend,
                                       hf_json::get_bool_or(config, "split", true, where));
}

}  // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(const json& config, const std::string& where) {
    if (config.is_null()) return nullptr;
    const std::string type = hf_json::type_of(config, where);
    if (type == "Split") {
        return std::make_unique<Split>(
            hf_json::get_pattern(config, "pattern", where),
            parse_behavior(hf_json::get_string(config, "behavior", where), where),
            hf_json::get_bool_or(config, "invert", false, where), where);
    }
    if (type == "ByteLevel") {
        return std::make_unique<ByteLevel>(
            hf_json::get_bool_or(config, "add_prefix_space", true, where),
            hf_json::get_bool_or(config, "use_regex", true, where), where);
    }
    if (type == "Digits") {
        const bool individual = hf_json::get_bool_or(config, "individual_digits", false, where);
        return std::make_unique<CharSplit>(
            is_numeric, individual ? Behavior::kIsolated : Behavior::kContiguous);
    }
    if (type == "Metaspace") return make_metaspace(config, where);
    if (type == "Whitespace") return std::make_unique<Whitespace>(where);
    if (type == "WhitespaceSplit")
        return std::make_unique<CharSplit>(is_whitespace, Behavior::kRemoved);
    if (type == "Punctuation") {
        return std::make_unique<CharSplit>(
            is_punctuation,
            parse_behavior(hf_json::get_string_or(config, "behavior", "Isolated", where), where));
    }
    if (type == "Sequence") {
        const json& list = hf_json::get_array(config, "pretokenizers", where);
        std::vector<std::unique_ptr<PreTokenizer>> steps;
        for (size_t i = 0; i < list.size(); ++i) {
            auto step =
                make_pre_tokenizer(list[i], where + ".pretokenizers[" + std::to_string(i) + "]");
            if (step) steps.push_back(std::move(step));
        }
        return std::make_unique<Sequence>(std::move(steps));
    }
    QLORA_FAIL(where, ": pre-tokenizer type '", type,
               "' is not supported (supported: Split, ByteLevel, Digits, Metaspace, Whitespace, "
               "WhitespaceSplit, Punctuation, Sequence)");
}

}  // namespace qlora::tokenizer
