// Builds qlora::Error with its source location.
#include "core/error.h"

#include <filesystem>

namespace qlora::detail {

void throw_error(const char* file, int line, ExitCode code, std::string message) {
    std::string where = std::filesystem::path(file).filename().string() + ":" + std::to_string(line);
    throw Error(std::move(message), code, std::move(where));
}

}  // namespace qlora::detail
