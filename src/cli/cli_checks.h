// CLI11 validators: float options (CLI::Range and CLI::NonNegativeNumber compare with < and >,
// which NaN passes, so every float option of the tools also goes through Finite()) and --model.
#pragma once

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>
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

// --model: a Hugging Face folder, or a .gguf file (model/llama_loader.h reads both).
inline CLI::Validator ModelPath() {
    return CLI::Validator(
        [](std::string& path) -> std::string {
            std::error_code ec;
            if (std::filesystem::is_directory(path, ec)) return {};
            if (path.ends_with(".gguf") && std::filesystem::is_regular_file(path, ec)) return {};
            return "expected a model folder or a .gguf file, found no such " +
                   std::string(path.ends_with(".gguf") ? "file" : "folder") + ": " +
                   path.substr(0, 200);
        },
        "DIR|FILE.gguf");
}

}  // namespace qlora::cli
