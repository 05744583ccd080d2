// Scratch files and the exception rule of the fuzz targets (fuzz/fuzz_support.h).
#include "fuzz/fuzz_support.h"

#include <c10/util/Exception.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/limits.h"

namespace qlora::fuzz {

const std::string& scratch() {
    static const std::string dir = [] {
        const char* base = std::filesystem::exists("/dev/shm") ? "/dev/shm" : std::getenv("TMPDIR");
        std::string d =
            std::string(base ? base : "/tmp") + "/qlora-fuzz-" + std::to_string(::getpid());
        std::filesystem::create_directories(d);
        return d;
    }();
    return dir;
}

std::string write_file(const std::string& name, const uint8_t* data, size_t size) {
    return write_file(name, std::string_view(reinterpret_cast<const char*>(data), size));
}

std::string write_file(const std::string& name, std::string_view bytes) {
    const std::string path = scratch() + "/" + name;
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
}

[[noreturn]] void finding(const char* kind, const char* what) {
    std::fprintf(stderr, "FUZZ FINDING: %s escaped the parser: %s\n", kind, what);
    std::abort();
}

void expect_clean(const std::function<void()>& parse) {
    try {
        parse();
    } catch (const Error& e) {
        const std::string m = e.what();
        // One line each (a config may list several problems), cut to the documented length.
        size_t longest = 0, start = 0;
        for (size_t nl = m.find('\n');; nl = m.find('\n', start)) {
            const size_t end = nl == std::string::npos ? m.size() : nl;
            longest = std::max(longest, end - start);
            if (nl == std::string::npos) break;
            start = nl + 1;
        }
        if (m.empty() || longest > limits::kMaxErrorChars)
            finding("an over-long or empty qlora::Error", m.c_str());
    } catch (const c10::Error& e) {
        finding("c10::Error", e.what_without_backtrace());
    } catch (const std::bad_alloc&) {
        finding("std::bad_alloc", "an allocation sized from the input");
    } catch (const std::exception& e) {
        finding("std::exception", e.what());
    } catch (...) {
        finding("an unknown exception", "");
    }
}

}  // namespace qlora::fuzz
