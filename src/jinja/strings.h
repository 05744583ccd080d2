// Python str operations on UTF-8 strings, shared by str methods ("a".strip()) and filters (trim).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace qlora::jinja::strings {

enum class Side { kLeft, kRight, kBoth };
// str.strip(chars): chars null strips Unicode whitespace.
std::string strip(const std::string& s, const std::optional<std::string>& chars, Side side);
// str.split(sep, maxsplit) / str.rsplit: sep null splits on whitespace runs.
std::vector<std::string> split(const std::string& s, const std::optional<std::string>& sep,
                               int64_t maxsplit, bool from_right);
std::vector<std::string> splitlines(const std::string& s, bool keepends);
std::string replace(const std::string& s, const std::string& old, const std::string& with,
                    int64_t count);
std::string title(const std::string& s);       // str.title()
std::string capitalize(const std::string& s);  // str.capitalize()
std::string swapcase(const std::string& s);
int64_t count(const std::string& s, const std::string& sub);
// str.find in code points (-1 if absent).
int64_t find(const std::string& s, const std::string& sub, bool from_right);
std::string pad(const std::string& s, int64_t width, const std::string& fill,
                Side side);  // ljust/rjust/center

}  // namespace qlora::jinja::strings
