// UTF-8 helpers: ICU's U8_NEXT follows Unicode's "maximal subpart" practice for ill-formed input,
// which is also what Rust's from_utf8_lossy (the peer's decode) implements.
#include "tokenizer/utf8.h"

#include <unicode/utf8.h>

#include <cstdint>

namespace qlora::tokenizer::utf8 {
namespace {

// Bytes of the sequence a byte starts: 1 for ASCII, 2-4 for a lead byte, 0 otherwise.
int sequence_length(uint8_t b) {
    if (b < 0x80) return 1;
    return U8_IS_LEAD(b) ? U8_COUNT_TRAIL_BYTES(b) + 1 : 0;
}

}  // namespace

size_t first_invalid(std::string_view text) {
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    const int32_t n = static_cast<int32_t>(text.size());
    int32_t i = 0;
    while (i < n) {
        const int32_t at = i;
        UChar32 c;
        U8_NEXT(s, i, n, c);
        if (c < 0) return static_cast<size_t>(at);
    }
    return std::string_view::npos;
}

std::string lossy(std::string_view bytes) {
    if (first_invalid(bytes) == std::string_view::npos) return std::string(bytes);
    const auto* s = reinterpret_cast<const uint8_t*>(bytes.data());
    const int32_t n = static_cast<int32_t>(bytes.size());
    std::string out;
    out.reserve(bytes.size() + 8);
    int32_t i = 0;
    while (i < n) {
        const int32_t at = i;
        UChar32 c;
        U8_NEXT(s, i, n, c);
        if (c < 0) {
            out += "\xEF\xBF\xBD";
        } else {
            out.append(bytes.substr(static_cast<size_t>(at), static_cast<size_t>(i - at)));
        }
    }
    return out;
}

size_t incomplete_tail(std::string_view bytes) {
    // A sequence is at most 4 bytes: look at the last 3 for a lead byte whose sequence would
    // run past the end, and check the bytes present so far are a well-formed prefix.
    const size_t n = bytes.size();
    for (size_t back = 1; back <= 3 && back <= n; ++back) {
        const auto lead = static_cast<uint8_t>(bytes[n - back]);
        if (U8_IS_TRAIL(lead)) continue;
        const int needed = sequence_length(lead);
        if (needed <= static_cast<int>(back)) return 0;
        // The present bytes must be a prefix of some well-formed sequence: append the smallest
        // continuation bytes and validate.
        std::string probe(bytes.substr(n - back));
        for (int k = static_cast<int>(back); k < needed; ++k) probe.push_back('\x80');
        if (first_invalid(probe) == 0) {
            // e.g. E0 80: no continuation makes it valid; try the largest continuation too.
            std::string high(bytes.substr(n - back));
            for (int k = static_cast<int>(back); k < needed; ++k) high.push_back('\xBF');
            if (first_invalid(high) == 0) return 0;
        }
        return back;
    }
    return 0;
}

size_t char_length(std::string_view text, size_t i) {
    const auto lead = static_cast<uint8_t>(text[i]);
    const int len = sequence_length(lead);
    return len == 0 ? 1 : static_cast<size_t>(len);
}

char32_t next(std::string_view text, size_t& i) {
    const auto* s = reinterpret_cast<const uint8_t*>(text.data());
    auto pos = static_cast<int32_t>(i);
    UChar32 c;
    U8_NEXT_UNSAFE(s, pos, c);
    i = static_cast<size_t>(pos);
    return static_cast<char32_t>(c);
}

void append(std::string& out, char32_t cp) {
    uint8_t buf[4];
    int32_t len = 0;
    U8_APPEND_UNSAFE(buf, len, static_cast<UChar32>(cp));
    out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
}

}  // namespace qlora::tokenizer::utf8
