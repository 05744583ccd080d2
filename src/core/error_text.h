// One shared rule for how long an error may be: every line a user sees is cut to
// limits::kMaxErrorChars (the middle of an over-long value goes, its start and end stay), at most
// kMaxErrorLines lines are kept (a config with many problems lists them one per line), and a
// LibTorch error keeps only its first line (the rest is a C++ backtrace).
#pragma once

#include <cstddef>
#include <string>

namespace qlora {

inline constexpr size_t kMaxErrorLines = 12;

// `text` if it has at most `max` characters, else its start and end around " [... N chars cut] ".
// Never splits a UTF-8 sequence.
std::string cut_middle(const std::string& text, size_t max);

// Each line cut_middle'd to limits::kMaxErrorChars, at most kMaxErrorLines lines (then "... and N
// more"), no trailing newline.
std::string user_error_text(const std::string& message);

// The first non-empty line, cut: c10::Error's what() appends "Exception raised from ..." and a
// backtrace.
std::string first_line_cut(const std::string& message);

}  // namespace qlora
