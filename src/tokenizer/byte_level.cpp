// The byte alphabet is computed from its definition (ranges of bytes that stand for themselves).
#include "tokenizer/byte_level.h"

#include <vector>

#include "tokenizer/utf8.h"

namespace qlora::tokenizer::byte_level {
namespace {

struct Alphabet {
    std::array<std::string, 256> chars;
    std::vector<int> byte_of;  // indexed by code point, -1 where none

    Alphabet() : byte_of(256 + 256, -1) {
        auto self = [](int b) {
            return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        };
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const int cp = self(b) ? b : 256 + extra++;
            utf8::append(chars[static_cast<size_t>(b)], static_cast<char32_t>(cp));
            byte_of[static_cast<size_t>(cp)] = b;
        }
    }
};

const Alphabet& alphabet() {
    static const Alphabet a;
    return a;
}

}  // namespace

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

const std::string& char_of_byte(unsigned char b) { return alphabet().chars[b]; }

std::optional<unsigned char> byte_of_char(char32_t c) {
    const auto& table = alphabet().byte_of;
    if (c >= table.size() || table[c] < 0) return std::nullopt;
    return static_cast<unsigned char>(table[c]);
}

std::optional<std::string> to_bytes(std::string_view token) {
    std::string out;
    out.reserve(token.size());
    for (size_t i = 0; i < token.size();) {
        const auto b = byte_of_char(utf8::next(token, i));
        if (!b) return std::nullopt;
        out.push_back(static_cast<char>(*b));
    }
    return out;
}

}  // namespace qlora::tokenizer::byte_level
