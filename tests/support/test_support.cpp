// Implementation of the shared test helpers.
#include "support/test_support.h"

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "core/error.h"
#include "io/atomic_file.h"

namespace fs = std::filesystem;

namespace qlora::test {

std::string shared_data(const std::string& rel) {
    fs::path p = fs::path(QLORA_SHARED_DIR) / "data" / rel;
    if (!fs::exists(p)) {
        ADD_FAILURE() << "shared data file missing: " << p
                      << " (tests expect ../shared beside the checkout)";
    }
    return p.string();
}

std::string test_data(const std::string& rel) {
    return (fs::path(QLORA_TEST_DATA_DIR) / rel).string();
}

// CTest runs every test in a process of its own, in parallel, with --gtest_filter naming it; a
// suite's SetUpTestSuite then runs once in each of those processes. Keying the scratch root by
// that filter keeps two processes from clearing and writing one folder at the same time, while
// one process (one test, or a whole binary run by hand) keeps stable names.
namespace {
std::string process_scratch_key() {
    std::string key = ::testing::GTEST_FLAG(filter);
    if (key.empty() || key == "*") return "all";
    for (char& c : key) {
        if (c == '/' || c == '*' || c == ':' || c == '?') c = '_';
    }
    return key;
}
}  // namespace

std::string scratch_dir(const std::string& name) {
    fs::path p = fs::path(QLORA_BINARY_DIR) / "test-scratch" / process_scratch_key() / name;
    io::remove_tree(p.string());  // not fs::remove_all: see the note in CMakeLists.txt
    fs::create_directories(p);
    return p.string();
}

std::string python() {
    const char* env = std::getenv("QLORA_PYTHON");
    return env != nullptr && *env != '\0' ? env : QLORA_PYTHON_EXE;
}

std::string tool(const std::string& name) { return (fs::path(QLORA_BINARY_DIR) / name).string(); }

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

CommandResult run_command(const std::string& command) {
    CommandResult result;
    std::string full = command + " 2>&1";
    FILE* pipe = popen(full.c_str(), "r");
    if (pipe == nullptr) return result;
    std::array<char, 4096> buf{};
    size_t n = 0;
    while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) result.output.append(buf.data(), n);
    int status = pclose(pipe);
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return result;
}

::testing::AssertionResult tensors_identical(const at::Tensor& expected, const at::Tensor& actual) {
    if (expected.scalar_type() != actual.scalar_type()) {
        return ::testing::AssertionFailure() << "dtype differs: expected " << expected.scalar_type()
                                             << ", got " << actual.scalar_type();
    }
    if (expected.sizes() != actual.sizes()) {
        return ::testing::AssertionFailure()
               << "shape differs: expected " << expected.sizes() << ", got " << actual.sizes();
    }
    auto e = expected.contiguous().cpu().reshape(-1).view(at::kByte);
    auto a = actual.contiguous().cpu().reshape(-1).view(at::kByte);
    auto diff = (e != a).nonzero().reshape(-1);
    if (diff.numel() == 0) return ::testing::AssertionSuccess();
    std::ostringstream msg;
    int64_t elem = expected.element_size();
    msg << diff.numel() << " of " << e.numel() << " bytes differ; first elements:";
    auto ef = expected.contiguous().cpu().reshape(-1);
    auto af = actual.contiguous().cpu().reshape(-1);
    int64_t last = -1;
    int shown = 0;
    for (int64_t i = 0; i < diff.numel() && shown < 5; ++i) {
        int64_t idx = diff[i].item<int64_t>() / elem;
        if (idx == last) continue;
        last = idx;
        ++shown;
        msg << "\n  [" << idx << "] expected " << ef[idx].item() << " got " << af[idx].item();
    }
    return ::testing::AssertionFailure() << msg.str();
}

::testing::AssertionResult tensors_close(const at::Tensor& expected, const at::Tensor& actual,
                                         double atol, double rtol) {
    if (expected.sizes() != actual.sizes()) {
        return ::testing::AssertionFailure()
               << "shape differs: expected " << expected.sizes() << ", got " << actual.sizes();
    }
    auto e = expected.detach().cpu().to(at::kDouble).reshape(-1);
    auto a = actual.detach().cpu().to(at::kDouble).reshape(-1);
    if (e.abs().max().item<double>() == 0.0) {
        return ::testing::AssertionFailure()
               << "reference is all zeros: the comparison proves nothing";
    }
    auto bad = ((a - e).abs() > atol + rtol * e.abs()) | (a.isnan() != e.isnan());
    auto idx = bad.nonzero().reshape(-1);
    if (idx.numel() == 0) return ::testing::AssertionSuccess();
    std::ostringstream msg;
    msg << idx.numel() << " of " << e.numel() << " elements outside atol=" << atol
        << " rtol=" << rtol << "; max abs diff " << (a - e).abs().max().item<double>() << ":";
    for (int64_t i = 0; i < std::min<int64_t>(5, idx.numel()); ++i) {
        int64_t k = idx[i].item<int64_t>();
        msg << "\n  [" << k << "] expected " << e[k].item<double>() << " got "
            << a[k].item<double>();
    }
    return ::testing::AssertionFailure() << msg.str();
}

}  // namespace qlora::test
