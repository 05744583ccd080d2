// UTF-8 helpers on std::string bytes, built on ICU's U8_* macros: validation at the boundary,
// Rust-compatible lossy repair (one U+FFFD per maximal ill-formed subpart, as
// String::from_utf8_lossy does) and detection of a sequence cut off at the end (streaming decode).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace qlora::tokenizer::utf8 {

// Byte offset of the first ill-formed sequence, or npos when `text` is valid UTF-8.
size_t first_invalid(std::string_view text);

// `bytes` with every maximal ill-formed subpart replaced by U+FFFD.
std::string lossy(std::string_view bytes);

// How many trailing bytes of `bytes` start a well-formed sequence that is not finished yet
// (0 when the text ends on a character boundary or with a byte that can never be completed).
size_t incomplete_tail(std::string_view bytes);

// Length in bytes of the character starting at `text[i]` (text valid UTF-8).
size_t char_length(std::string_view text, size_t i);

// Code point at text[i] (text valid UTF-8); advances i past it.
char32_t next(std::string_view text, size_t& i);

void append(std::string& out, char32_t cp);

}  // namespace qlora::tokenizer::utf8
