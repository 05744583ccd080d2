// CLI11 validators for float options: CLI::Range and CLI::NonNegativeNumber compare with < and >,
// which NaN passes, so every float option of the tools also goes through Finite().
#pragma once

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace qlora::cli {

// A finite number in [lo, hi]: "nan", "inf", "1e999" (overflow) and trailing garbage are refused.
inline CLI::Validator FiniteRange(double lo, double hi) {
    const std::string description =
        "FINITE in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
    return CLI::Validator(
        [lo, hi](std::string& text) -> std::string {
            char* end = nullptr;
            errno = 0;
            const double x = std::strtod(text.c_str(), &end);
            if (end == text.c_str() || *end != '\0' || errno == ERANGE || !std::isfinite(x)) {
                return "expected a finite number, got '" + text.substr(0, 40) + "'";
            }
            if (x < lo || x > hi) {
                return "expected a number in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                       "], got " + text;
            }
            return {};
        },
        description);
}

inline CLI::Validator Finite() { return FiniteRange(-1e300, 1e300); }

}  // namespace qlora::cli
