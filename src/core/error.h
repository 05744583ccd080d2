// qlora::Error and QLORA_CHECK: one-line, user-facing errors that say what was expected and what
// was found. The source location is kept apart (where()) so messages stay about the user's input.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace qlora {

// Exit codes of every qlora-* tool (DESIGN.md section 1).
enum class ExitCode : int { kOk = 0, kRuntime = 1, kBadInput = 2 };

class Error : public std::runtime_error {
  public:
    Error(std::string message, ExitCode code = ExitCode::kBadInput, std::string where = {})
        : std::runtime_error(std::move(message)), code_(code), where_(std::move(where)) {}

    ExitCode code() const { return code_; }
    // "src/io/safetensors.cpp:88": where in our code the problem was detected (for debug logs).
    const std::string& where() const { return where_; }

  private:
    ExitCode code_;
    std::string where_;
};

namespace detail {

template <typename... Parts>
std::string concat(const Parts&... parts) {
    std::ostringstream out;
    (out << ... << parts);
    return out.str();
}

[[noreturn]] void throw_error(const char* file, int line, ExitCode code, std::string message);

}  // namespace detail

// Throws qlora::Error (exit code 2: bad input) unless cond holds. The message parts are streamed:
//   QLORA_CHECK(bs >= 32, "quant.blocksize must be >= 32, got ", bs, " (", path, ")");
#define QLORA_CHECK(cond, ...)                                                             \
    do {                                                                                   \
        if (!(cond)) [[unlikely]] {                                                        \
            ::qlora::detail::throw_error(__FILE__, __LINE__, ::qlora::ExitCode::kBadInput, \
                                         ::qlora::detail::concat(__VA_ARGS__));            \
        }                                                                                  \
    } while (0)

// Same, for failures of the environment rather than the input (I/O, devices): exit code 1.
#define QLORA_RUNTIME_CHECK(cond, ...)                                                    \
    do {                                                                                  \
        if (!(cond)) [[unlikely]] {                                                       \
            ::qlora::detail::throw_error(__FILE__, __LINE__, ::qlora::ExitCode::kRuntime, \
                                         ::qlora::detail::concat(__VA_ARGS__));           \
        }                                                                                 \
    } while (0)

#define QLORA_FAIL(...)                                                            \
    ::qlora::detail::throw_error(__FILE__, __LINE__, ::qlora::ExitCode::kBadInput, \
                                 ::qlora::detail::concat(__VA_ARGS__))

}  // namespace qlora
