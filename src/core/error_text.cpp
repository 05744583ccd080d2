// Cutting error messages to a readable length (core/error_text.h).
#include "core/error_text.h"

#include <vector>

#include "core/limits.h"

namespace qlora {
namespace {

bool is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

// Moves `at` back (towards 0) or forward until it is not inside a UTF-8 sequence.
size_t back_to_boundary(const std::string& s, size_t at) {
    while (at > 0 && at < s.size() && is_continuation(static_cast<unsigned char>(s[at]))) --at;
    return at;
}

size_t forward_to_boundary(const std::string& s, size_t at) {
    while (at < s.size() && is_continuation(static_cast<unsigned char>(s[at]))) ++at;
    return at;
}

std::vector<std::string> split_lines(const std::string& text) {
    std::vector<std::string> lines;
    size_t begin = 0;
    while (begin <= text.size()) {
        size_t end = text.find('\n', begin);
        if (end == std::string::npos) end = text.size();
        std::string line = text.substr(begin, end - begin);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        lines.push_back(std::move(line));
        begin = end + 1;
    }
    while (!lines.empty() && lines.back().empty()) lines.pop_back();
    return lines;
}

}  // namespace

std::string cut_middle(const std::string& text, size_t max) {
    if (text.size() <= max) return text;
    const std::string marker_probe = " [... " + std::to_string(text.size()) + " chars cut] ";
    if (max <= marker_probe.size() + 8) return text.substr(0, back_to_boundary(text, max));
    const size_t room = max - marker_probe.size();
    const size_t head = back_to_boundary(text, room * 2 / 3);
    const size_t tail = forward_to_boundary(text, text.size() - (room - head));
    return text.substr(0, head) + " [... " + std::to_string(tail - head) + " chars cut] " +
           text.substr(tail);
}

std::string user_error_text(const std::string& message) {
    const std::vector<std::string> lines = split_lines(message);
    std::string out;
    for (size_t i = 0; i < lines.size() && i < kMaxErrorLines; ++i) {
        if (i > 0) out += '\n';
        out += cut_middle(lines[i], limits::kMaxErrorChars);
    }
    if (lines.size() > kMaxErrorLines) {
        out += "\n... and " + std::to_string(lines.size() - kMaxErrorLines) + " more";
    }
    return out;
}

std::string first_line_cut(const std::string& message) {
    for (const std::string& line : split_lines(message)) {
        if (!line.empty()) return cut_middle(line, limits::kMaxErrorChars);
    }
    return "unknown error";
}

}  // namespace qlora
