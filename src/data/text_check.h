// Is this text? Training data must be UTF-8: a NUL byte means a binary file or UTF-16 (every
// ASCII character of UTF-16 carries one), a byte-order mark FF FE / FE FF means UTF-16, and any
// other invalid UTF-8 sequence would reach the tokenizer as garbage.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace qlora::data {

// Offset of the first byte that does not start a well-formed UTF-8 sequence (overlong forms,
// surrogates and code points above U+10FFFF are ill-formed, as in Unicode's Table 3-7), or nullopt.
std::optional<size_t> invalid_utf8_at(std::string_view bytes);

// "holds a NUL byte at byte N (a binary or UTF-16 file?)", "starts with a UTF-16 byte-order mark",
// or nullopt when `bytes` has neither. `at_file_start` enables the BOM check.
std::optional<std::string> binary_problem(std::string_view bytes, bool at_file_start);

// Throws qlora::Error "PATH:LINE: not UTF-8 text (...)" for a binary/UTF-16/invalid line.
void check_text_line(const std::string& path, int64_t line_no, std::string_view bytes,
                     bool at_file_start);

}  // namespace qlora::data
