// Shared pieces of the libFuzzer targets: a private scratch folder per process, writing the input
// where the parser expects a file, and the rule that a qlora::Error is the expected way to refuse
// input while anything else escaping (std::out_of_range, nlohmann or c10 errors, ...) is a
// finding: it would reach the user as an unclear message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace qlora::fuzz {

// /dev/shm/qlora-fuzz-<pid> (or $TMPDIR), created once.
const std::string& scratch();
// Writes `size` bytes to scratch()/name and returns the full path.
std::string write_file(const std::string& name, const uint8_t* data, size_t size);
std::string write_file(const std::string& name, std::string_view bytes);
// Runs `parse`; returns normally for success or a qlora::Error (checked to be a non-empty message
// of at most a few lines), aborts with the exception's text for anything else.
void expect_clean(const std::function<void()>& parse);

}  // namespace qlora::fuzz
