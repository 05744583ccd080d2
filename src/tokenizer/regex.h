// A compiled PCRE2 regular expression (UTF + UCP, JIT) for the patterns tokenizer.json carries.
// HF compiles them with Oniguruma; the constructs these patterns use (\p{..} classes, (?i:..),
// lookahead, bounded repeats) mean the same in both engines.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace qlora::tokenizer {

class Regex {
  public:
    // `source` names where the pattern came from, for the error when it does not compile.
    Regex(const std::string& pattern, const std::string& source);
    ~Regex();
    Regex(Regex&&) noexcept;
    Regex& operator=(Regex&&) noexcept;

    // Every non-overlapping match in `text` (valid UTF-8), left to right, as byte ranges.
    // An empty match is reported and the search resumes one character later.
    void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& matches) const;

    const std::string& pattern() const { return pattern_; }

  private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string pattern_;
};

}  // namespace qlora::tokenizer
