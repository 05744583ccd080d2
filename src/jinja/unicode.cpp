// ICU behind the Python str semantics of unicode.h.
#include "jinja/unicode.h"

#include <unicode/locid.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

namespace qlora::jinja::unicode {

std::vector<char32_t> code_points(std::string_view s) {
    std::vector<char32_t> out;
    out.reserve(s.size());
    int32_t i = 0;
    const auto n = static_cast<int32_t>(s.size());
    const auto* bytes = reinterpret_cast<const uint8_t*>(s.data());
    while (i < n) {
        UChar32 c;
        U8_NEXT(bytes, i, n, c);
        out.push_back(c < 0 ? 0xFFFD : static_cast<char32_t>(c));
    }
    return out;
}

void append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::string to_utf8(const std::vector<char32_t>& cps, size_t begin, size_t end) {
    std::string out;
    for (size_t i = begin; i < end && i < cps.size(); ++i) append_utf8(out, cps[i]);
    return out;
}

size_t length(std::string_view s) {
    size_t n = 0;
    for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
}

namespace {

bool is_ascii(const std::string& s) {
    for (const char c : s) {
        if (static_cast<unsigned char>(c) >= 0x80) return false;
    }
    return true;
}

std::string from_icu(const icu::UnicodeString& u) {
    std::string out;
    u.toUTF8String(out);
    return out;
}

}  // namespace

std::string upper(const std::string& s) {
    if (is_ascii(s)) {
        std::string out = s;
        for (char& c : out) c = (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c;
        return out;
    }
    return from_icu(icu::UnicodeString::fromUTF8(s).toUpper(icu::Locale::getRoot()));
}

std::string lower(const std::string& s) {
    if (is_ascii(s)) {
        std::string out = s;
        for (char& c : out) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c;
        return out;
    }
    return from_icu(icu::UnicodeString::fromUTF8(s).toLower(icu::Locale::getRoot()));
}

std::string title_case_first(const std::string& s) {
    const auto cps = code_points(s);
    if (cps.empty()) return s;
    std::string out;
    append_utf8(out, static_cast<char32_t>(u_totitle(static_cast<UChar32>(cps[0]))));
    return out + lower(to_utf8(cps, 1, cps.size()));
}

bool is_space(char32_t cp) {
    // Python: bidirectional class WS, B or S, or category Zs (this includes \x1c-\x1f).
    const auto c = static_cast<UChar32>(cp);
    const auto bidi = u_charDirection(c);
    return bidi == U_WHITE_SPACE_NEUTRAL || bidi == U_BLOCK_SEPARATOR ||
           bidi == U_SEGMENT_SEPARATOR || u_charType(c) == U_SPACE_SEPARATOR;
}

bool is_printable(char32_t cp) {
    if (cp == ' ') return true;
    switch (u_charType(static_cast<UChar32>(cp))) {
        case U_CONTROL_CHAR:
        case U_FORMAT_CHAR:
        case U_SURROGATE:
        case U_PRIVATE_USE_CHAR:
        case U_UNASSIGNED:
        case U_LINE_SEPARATOR:
        case U_PARAGRAPH_SEPARATOR:
        case U_SPACE_SEPARATOR:
            return false;
        default:
            return true;
    }
}

bool is_alpha(char32_t cp) { return u_isalpha(static_cast<UChar32>(cp)); }
bool is_digit(char32_t cp) { return u_isdigit(static_cast<UChar32>(cp)); }
bool is_alnum(char32_t cp) { return is_alpha(cp) || u_isdigit(static_cast<UChar32>(cp)); }
bool is_upper(char32_t cp) { return u_isUUppercase(static_cast<UChar32>(cp)); }
bool is_lower(char32_t cp) { return u_isULowercase(static_cast<UChar32>(cp)); }
bool is_cased(char32_t cp) { return u_hasBinaryProperty(static_cast<UChar32>(cp), UCHAR_CASED); }

}  // namespace qlora::jinja::unicode
