// GPT-2's byte-to-character alphabet (ByteLevel pre-tokenizer and decoder): the printable bytes
// '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves, every other byte b for the code point
// 256 + (its rank among those others), so each of the 256 bytes is one visible character.
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>

namespace qlora::tokenizer::byte_level {

// The UTF-8 of the character that stands for byte b.
const std::string& char_of_byte(unsigned char b);
// The byte a character stands for, or nullopt when it is not in the alphabet.
std::optional<unsigned char> byte_of_char(char32_t c);

// Every character of `token` mapped back to its byte; nullopt when one is outside the alphabet.
std::optional<std::string> to_bytes(std::string_view token);

// GPT-2's pre-tokenization regex, which ByteLevel applies when use_regex is true.
extern const char* const kGpt2Pattern;

}  // namespace qlora::tokenizer::byte_level
