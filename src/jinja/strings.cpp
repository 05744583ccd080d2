// Python str semantics over code points (CPython Objects/unicodeobject.c behaviour).
#include "jinja/strings.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "jinja/unicode.h"

namespace qlora::jinja::strings {
namespace {

using unicode::append_utf8;
using unicode::code_points;
using unicode::to_utf8;

bool is_line_break(char32_t c) {
    return c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D ||
           c == 0x1E || c == 0x85 || c == 0x2028 || c == 0x2029;
}

}  // namespace

std::string strip(const std::string& s, const std::optional<std::string>& chars, Side side) {
    const auto cps = code_points(s);
    const auto strip_set = chars ? code_points(*chars) : std::vector<char32_t>{};
    auto strippable = [&](char32_t c) {
        return chars ? std::find(strip_set.begin(), strip_set.end(), c) != strip_set.end()
                     : unicode::is_space(c);
    };
    size_t b = 0, e = cps.size();
    if (side != Side::kRight) {
        while (b < e && strippable(cps[b])) ++b;
    }
    if (side != Side::kLeft) {
        while (e > b && strippable(cps[e - 1])) --e;
    }
    return to_utf8(cps, b, e);
}

std::vector<std::string> split(const std::string& s, const std::optional<std::string>& sep,
                               int64_t maxsplit, bool from_right) {
    std::vector<std::string> parts;
    if (sep) {
        if (maxsplit < 0) maxsplit = INT64_MAX;
        if (!from_right) {
            size_t pos = 0;
            while (maxsplit-- > 0) {
                const size_t at = s.find(*sep, pos);
                if (at == std::string::npos) break;
                parts.push_back(s.substr(pos, at - pos));
                pos = at + sep->size();
            }
            parts.push_back(s.substr(pos));
            return parts;
        }
        size_t end = s.size();
        while (maxsplit-- > 0 && end >= sep->size()) {
            const size_t at = s.rfind(*sep, end - sep->size());
            if (at == std::string::npos) break;
            parts.push_back(s.substr(at + sep->size(), end - at - sep->size()));
            end = at;
        }
        parts.push_back(s.substr(0, end));
        std::reverse(parts.begin(), parts.end());
        return parts;
    }
    // Whitespace runs; leading/trailing whitespace gives no empty parts.
    const auto cps = code_points(s);
    if (maxsplit < 0) maxsplit = INT64_MAX;
    if (!from_right) {
        size_t i = 0;
        while (i < cps.size()) {
            while (i < cps.size() && unicode::is_space(cps[i])) ++i;
            if (i >= cps.size()) break;
            if (maxsplit-- <= 0) {
                size_t e = cps.size();
                while (e > i && unicode::is_space(cps[e - 1])) --e;
                parts.push_back(to_utf8(cps, i, e));
                break;
            }
            size_t j = i;
            while (j < cps.size() && !unicode::is_space(cps[j])) ++j;
            parts.push_back(to_utf8(cps, i, j));
            i = j;
        }
        return parts;
    }
    size_t i = cps.size();
    while (i > 0) {
        while (i > 0 && unicode::is_space(cps[i - 1])) --i;
        if (i == 0) break;
        if (maxsplit-- <= 0) {
            size_t b = 0;
            while (b < i && unicode::is_space(cps[b])) ++b;
            parts.push_back(to_utf8(cps, b, i));
            break;
        }
        size_t j = i;
        while (j > 0 && !unicode::is_space(cps[j - 1])) --j;
        parts.push_back(to_utf8(cps, j, i));
        i = j;
    }
    std::reverse(parts.begin(), parts.end());
    return parts;
}

std::vector<std::string> splitlines(const std::string& s, bool keepends) {
    const auto cps = code_points(s);
    std::vector<std::string> lines;
    size_t start = 0;
    for (size_t i = 0; i < cps.size(); ++i) {
        if (!is_line_break(cps[i])) continue;
        size_t end = i + 1;
        if (cps[i] == '\r' && i + 1 < cps.size() && cps[i + 1] == '\n') end = i + 2;
        lines.push_back(to_utf8(cps, start, keepends ? end : i));
        start = end;
        i = end - 1;
    }
    if (start < cps.size()) lines.push_back(to_utf8(cps, start, cps.size()));
    return lines;
}

std::string replace(const std::string& s, const std::string& old, const std::string& with,
                    int64_t count) {
    if (count < 0) count = INT64_MAX;
    std::string out;
    if (old.empty()) {  // Python inserts `with` around every code point
        const auto cps = code_points(s);
        for (size_t i = 0; i <= cps.size(); ++i) {
            if (count-- > 0) out += with;
            if (i < cps.size()) append_utf8(out, cps[i]);
        }
        return out;
    }
    size_t pos = 0;
    while (count-- > 0) {
        const size_t at = s.find(old, pos);
        if (at == std::string::npos) break;
        out.append(s, pos, at - pos);
        out += with;
        pos = at + old.size();
    }
    out.append(s, pos, std::string::npos);
    return out;
}

std::string title(const std::string& s) {
    std::string out;
    bool previous_cased = false;
    for (const char32_t c : code_points(s)) {
        const auto mapped =
            static_cast<char32_t>(previous_cased ? u_tolower(static_cast<UChar32>(c))
                                                 : u_totitle(static_cast<UChar32>(c)));
        append_utf8(out, mapped);
        previous_cased = unicode::is_cased(c);
    }
    return out;
}

std::string capitalize(const std::string& s) { return unicode::title_case_first(s); }

std::string swapcase(const std::string& s) {
    std::string out;
    for (const char32_t c : code_points(s)) {
        const auto u = static_cast<UChar32>(c);
        append_utf8(out, static_cast<char32_t>(u_isUUppercase(u)   ? u_tolower(u)
                                               : u_isULowercase(u) ? u_toupper(u)
                                                                   : u));
    }
    return out;
}

int64_t count(const std::string& s, const std::string& sub) {
    if (sub.empty()) return static_cast<int64_t>(unicode::length(s)) + 1;
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return n;
}

int64_t find(const std::string& s, const std::string& sub, bool from_right) {
    const size_t at = from_right ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) return -1;
    return static_cast<int64_t>(unicode::length(std::string_view(s).substr(0, at)));
}

std::string pad(const std::string& s, int64_t width, const std::string& fill, Side side) {
    const auto n = static_cast<int64_t>(unicode::length(s));
    if (width <= n) return s;
    const int64_t total = width - n;
    int64_t left = side == Side::kRight  ? total
                   : side == Side::kLeft ? 0
                                         : total / 2 + (total & width & 1);
    const int64_t right = total - left;
    std::string out;
    for (int64_t i = 0; i < left; ++i) out += fill;
    out += s;
    for (int64_t i = 0; i < right; ++i) out += fill;
    return out;
}

}  // namespace qlora::jinja::strings
