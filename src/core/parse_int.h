// Strict decimal integers from text (keys like "32000" of added_tokens_decoder, "12" of
// "model.layers.12."): std::stoll throws a bare "stoll" for bad input and accepts "12abc", so it is
// not used on anything read from a file.
#pragma once

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/error.h"

namespace qlora {

// The whole of `text` as a decimal int64 (an optional leading '-'), or nullopt (empty, other
// characters, out of range).
inline std::optional<int64_t> parse_int64(std::string_view text) {
    int64_t value = 0;
    const char* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || ptr != end) return std::nullopt;
    return value;
}

// Same, throwing qlora::Error "<what>: expected an integer, found '<text>'".
inline int64_t parse_int64_or_fail(std::string_view text, const std::string& what) {
    const std::optional<int64_t> value = parse_int64(text);
    QLORA_CHECK(value.has_value(), what, ": expected an integer, found '",
                std::string(text.substr(0, 40)), "'");
    return *value;
}

}  // namespace qlora
