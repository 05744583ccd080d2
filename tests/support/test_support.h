// Shared test helpers: where data lives, tensor comparison with the first mismatches printed
// (llm.c), a non-zero guard on references (CUTLASS), and running the qlora-* tools.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>

#include "test_paths.h"

namespace qlora::test {

// ../shared/data/<rel>; fails the test (not skips) when it is missing: CI has shared/.
std::string shared_data(const std::string& rel);
// tests/data/<rel> in the source tree.
std::string test_data(const std::string& rel);
// A fresh empty folder under the build tree for this test, removed at the start of each run.
std::string scratch_dir(const std::string& name);
// The setup venv's python (QLORA_PYTHON from CTest, else the one CMake found) for peer-tool checks.
std::string python();
// Path of a built tool, e.g. tool("qlora-quantize").
std::string tool(const std::string& name);

struct CommandResult {
    int exit_code = -1;
    std::string output;  // stdout and stderr together
};
// The message of the qlora::Error that f throws, or "(no error)".
std::string error_of(const std::function<void()>& f);

// Runs a shell command, capturing stdout+stderr.
CommandResult run_command(const std::string& command);

// Bit-exact equality (same dtype, shape and bytes), printing the first mismatches.
::testing::AssertionResult tensors_identical(const at::Tensor& expected, const at::Tensor& actual);
// |a - e| <= atol + rtol*|e| elementwise, comparing in float64; the reference must not be all zero.
::testing::AssertionResult tensors_close(const at::Tensor& expected, const at::Tensor& actual,
                                         double atol, double rtol);

}  // namespace qlora::test
