// UTF-8 well-formedness (data/text_check.h): the byte ranges of Unicode 15, Table 3-7.
#include "data/text_check.h"

#include <cstdint>

#include "core/error.h"

namespace qlora::data {
namespace {

// Length of the well-formed sequence starting at p[0] (p has `left` bytes), or 0.
size_t sequence_length(const unsigned char* p, size_t left) {
    const unsigned char b0 = p[0];
    if (b0 < 0x80) return 1;
    size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        len = 2;
    } else if (b0 >= 0xE0 && b0 <= 0xEF) {
        len = 3;
        if (b0 == 0xE0) lo = 0xA0;  // no overlong 3-byte forms
        if (b0 == 0xED) hi = 0x9F;  // no UTF-16 surrogates
    } else if (b0 >= 0xF0 && b0 <= 0xF4) {
        len = 4;
        if (b0 == 0xF0) lo = 0x90;  // no overlong 4-byte forms
        if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    } else {
        return 0;  // continuation byte, C0/C1 or F5..FF
    }
    if (left < len || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < len; ++i) {
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    }
    return len;
}

}  // namespace

std::optional<size_t> invalid_utf8_at(std::string_view bytes) {
    const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
    size_t i = 0;
    while (i < bytes.size()) {
        const size_t len = sequence_length(p + i, bytes.size() - i);
        if (len == 0) return i;
        i += len;
    }
    return std::nullopt;
}

std::optional<std::string> binary_problem(std::string_view bytes, bool at_file_start) {
    if (at_file_start && bytes.size() >= 2) {
        const auto b0 = static_cast<unsigned char>(bytes[0]),
                   b1 = static_cast<unsigned char>(bytes[1]);
        if ((b0 == 0xFF && b1 == 0xFE) || (b0 == 0xFE && b1 == 0xFF)) {
            return std::string("starts with a UTF-16 byte-order mark; convert it to UTF-8");
        }
    }
    const size_t nul = bytes.find('\0');
    if (nul != std::string_view::npos) {
        return "holds a NUL byte at byte " + std::to_string(nul) +
               " of the line (a binary or UTF-16 file?)";
    }
    return std::nullopt;
}

void check_text_line(const std::string& path, int64_t line_no, std::string_view bytes,
                     bool at_file_start) {
    if (auto problem = binary_problem(bytes, at_file_start)) {
        QLORA_FAIL(path, ":", line_no, ": not UTF-8 text: ", *problem);
    }
    if (auto at = invalid_utf8_at(bytes)) {
        QLORA_FAIL(path, ":", line_no, ": not UTF-8 text: invalid UTF-8 byte 0x", std::hex,
                   static_cast<int>(static_cast<unsigned char>(bytes[*at])), std::dec, " at byte ",
                   *at, " of the line");
    }
}

}  // namespace qlora::data
