// Normalizers. Unicode forms and case mapping come from ICU; the per-character lowercase matches
// HF's (Rust char::to_lowercase, full mapping, no final-sigma context).
#include "tokenizer/normalizers.h"

#include <unicode/bytestream.h>
#include <unicode/edits.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/ustring.h>

#include <vector>

#include "core/error.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer {
namespace {

using nlohmann::json;

class UnicodeForm final : public Normalizer {
  public:
    explicit UnicodeForm(const icu::Normalizer2* form) : form_(form) {}
    void normalize(NormalizedText& t) const override {
        UErrorCode status = U_ZERO_ERROR;
        const icu::StringPiece in(t.text.data(), static_cast<int32_t>(t.text.size()));
        if (form_->isNormalizedUTF8(in, status) && U_SUCCESS(status)) return;
        status = U_ZERO_ERROR;
        std::string out;
        icu::StringByteSink<std::string> sink(&out);
        icu::Edits edits;
        form_->normalizeUTF8(0, in, sink, &edits, status);
        QLORA_RUNTIME_CHECK(U_SUCCESS(status),
                            "Unicode normalization failed: ", u_errorName(status));
        t = apply_edits(t, std::move(out), edits);
    }

  private:
    const icu::Normalizer2* form_;
};

class Lowercase final : public Normalizer {
  public:
    void normalize(NormalizedText& t) const override {
        NormalizedBuilder b;
        for (size_t i = 0; i < t.text.size();) {
            const size_t start = i;
            const char32_t c = utf8::next(t.text, i);
            if (c < 0x80) {
                const char lower = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
                b.append(std::string_view(&lower, 1), t.align[start]);
                continue;
            }
            b.append(lower_full(c), t.original_span(start, i));
        }
        t = b.finish();
    }

  private:
    static std::string lower_full(char32_t c) {
        UChar src[2];
        int32_t src_len = 0;
        U16_APPEND_UNSAFE(src, src_len, static_cast<UChar32>(c));
        UChar dst[8];
        UErrorCode status = U_ZERO_ERROR;
        const int32_t n = u_strToLower(dst, 8, src, src_len, "", &status);
        std::string out;
        for (int32_t i = 0; i < n && U_SUCCESS(status);) {
            UChar32 cp;
            U16_NEXT(dst, i, n, cp);
            utf8::append(out, static_cast<char32_t>(cp));
        }
        return out;
    }
};

class Strip final : public Normalizer {
  public:
    Strip(bool left, bool right) : left_(left), right_(right) {}
    void normalize(NormalizedText& t) const override {
        size_t begin = 0;
        size_t end = t.text.size();
        while (left_ && begin < end) {
            size_t next = begin;
            if (!u_isUWhiteSpace(static_cast<UChar32>(utf8::next(t.text, next)))) break;
            begin = next;
        }
        while (right_ && end > begin) {
            size_t start = end - 1;
            while (start > begin && (static_cast<unsigned char>(t.text[start]) & 0xC0) == 0x80) {
                --start;
            }
            size_t probe = start;
            if (!u_isUWhiteSpace(static_cast<UChar32>(utf8::next(t.text, probe)))) break;
            end = start;
        }
        if (begin != 0 || end != t.text.size()) t = t.slice(begin, end);
    }

  private:
    bool left_, right_;
};

class Prepend final : public Normalizer {
  public:
    explicit Prepend(std::string prefix) : prefix_(std::move(prefix)) {}
    void normalize(NormalizedText& t) const override {
        if (t.empty()) return;
        NormalizedBuilder b;
        b.append(prefix_, inserted_before(t));
        b.copy(t, 0, t.text.size());
        t = b.finish();
    }

  private:
    std::string prefix_;
};

class Replace final : public Normalizer {
  public:
    Replace(const hf_json::Pattern& pattern, std::string content, const std::string& where)
        : literal_(pattern.is_regex ? "" : pattern.text), content_(std::move(content)) {
        if (pattern.is_regex) regex_ = std::make_unique<Regex>(pattern.text, where);
    }
    void normalize(NormalizedText& t) const override {
        std::vector<std::pair<size_t, size_t>> matches;
        if (regex_) {
            regex_->find_all(t.text, matches);
        } else if (!literal_.empty()) {
            for (size_t at = t.text.find(literal_); at != std::string::npos;
                 at = t.text.find(literal_, at + literal_.size())) {
                matches.emplace_back(at, at + literal_.size());
            }
        }
        if (matches.empty()) return;
        NormalizedBuilder b;
        size_t last = 0;
        for (const auto& [begin, end] : matches) {
            if (begin == end) continue;
            b.copy(t, last, begin);
            // As HF: the replacement stands for the last character it replaces.
            b.append(content_, t.align[end - 1]);
            last = end;
        }
        b.copy(t, last, t.text.size());
        t = b.finish();
    }

  private:
    std::string literal_;
    std::unique_ptr<Regex> regex_;
    std::string content_;
};

class Sequence final : public Normalizer {
  public:
    explicit Sequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
    void normalize(NormalizedText& t) const override {
        for (const auto& step : steps_) step->normalize(t);
    }

  private:
    std::vector<std::unique_ptr<Normalizer>> steps_;
};

const icu::Normalizer2* unicode_form(const std::string& type) {
    UErrorCode status = U_ZERO_ERROR;
    const icu::Normalizer2* form = nullptr;
    if (type == "NFC") form = icu::Normalizer2::getNFCInstance(status);
    if (type == "NFD") form = icu::Normalizer2::getNFDInstance(status);
    if (type == "NFKC") form = icu::Normalizer2::getNFKCInstance(status);
    if (type == "NFKD") form = icu::Normalizer2::getNFKDInstance(status);
    QLORA_RUNTIME_CHECK(U_SUCCESS(status), "ICU has no ", type, " data: ", u_errorName(status));
    return form;
}

}  // namespace

std::unique_ptr<Normalizer> make_normalizer(const json& config, const std::string& where) {
    if (config.is_null()) return nullptr;
    const std::string type = hf_json::type_of(config, where);
    if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
        return std::make_unique<UnicodeForm>(unicode_form(type));
    }
    if (type == "Lowercase") return std::make_unique<Lowercase>();
    if (type == "Strip") {
        return std::make_unique<Strip>(hf_json::get_bool_or(config, "strip_left", true, where),
                                       hf_json::get_bool_or(config, "strip_right", true, where));
    }
    if (type == "Prepend") {
        return std::make_unique<Prepend>(hf_json::get_string(config, "prepend", where));
    }
    if (type == "Replace") {
        return std::make_unique<Replace>(hf_json::get_pattern(config, "pattern", where),
                                         hf_json::get_string(config, "content", where), where);
    }
    if (type == "Sequence") {
        const json& list = hf_json::get_array(config, "normalizers", where);
        std::vector<std::unique_ptr<Normalizer>> steps;
        for (size_t i = 0; i < list.size(); ++i) {
            auto step = make_normalizer(list[i], where + ".normalizers[" + std::to_string(i) + "]");
            if (step) steps.push_back(std::move(step));
        }
        return std::make_unique<Sequence>(std::move(steps));
    }
    QLORA_FAIL(where, ": normalizer type '", type,
               "' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, Strip, Prepend, "
               "Replace, Sequence)");
}

}  // namespace qlora::tokenizer
