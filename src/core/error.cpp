// Builds qlora::Error with its source location.
#include "core/error.h"

#include <filesystem>

#include "core/error_text.h"

namespace qlora::detail {

void throw_error(const char* file, int line, ExitCode code, std::string message) {
    std::string where =
        std::filesystem::path(file).filename().string() + ":" + std::to_string(line);
    // Long offending values (a 51 MB JSONL line) are cut here, once for every error.
    throw Error(user_error_text(message), code, std::move(where));
}

}  // namespace qlora::detail
