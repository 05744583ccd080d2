// The Unicode operations Python's str methods perform, on UTF-8 strings, through ICU: code point
// iteration (len, indexing and slicing count code points, not bytes), case mapping, whitespace and
// printability as Python defines them.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace qlora::jinja::unicode {

// The code points of a UTF-8 string (invalid bytes become U+FFFD: our inputs come from JSON, which
// nlohmann has already validated).
std::vector<char32_t> code_points(std::string_view s);
void append_utf8(std::string& out, char32_t cp);
std::string to_utf8(const std::vector<char32_t>& cps, size_t begin, size_t end);
size_t length(std::string_view s);  // len(s) in Python

std::string upper(const std::string& s);  // str.upper() (full case mapping: "ß" -> "SS")
std::string lower(const std::string& s);  // str.lower()
std::string title_case_first(const std::string& s);  // first code point to title case, rest lower
bool is_space(char32_t cp);                          // str.isspace() for one code point
bool is_printable(char32_t cp);                      // str.isprintable() for one code point
bool is_alpha(char32_t cp);
bool is_digit(char32_t cp);  // str.isdigit()
bool is_alnum(char32_t cp);
bool is_upper(char32_t cp);
bool is_lower(char32_t cp);
bool is_cased(char32_t cp);

}  // namespace qlora::jinja::unicode
