// Available memory from /proc/meminfo and the process limits, for the checks of core/limits.h.
#include "core/limits.h"

#include <sys/resource.h>

#include <fstream>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace qlora::limits {
namespace {

constexpr uint64_t kUnknown = std::numeric_limits<uint64_t>::max();

// "MemAvailable:   123456 kB" -> bytes; kUnknown when the file or the key is missing.
uint64_t meminfo_bytes(const std::string& key) {
    std::ifstream in("/proc/meminfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) != 0) continue;
        std::istringstream fields(line.substr(key.size() + 1));
        uint64_t kib = 0;
        if (fields >> kib) return saturating_mul(kib, 1024);
    }
    return kUnknown;
}

uint64_t rlimit_bytes(int resource) {
    struct rlimit r {};
    if (::getrlimit(resource, &r) != 0 || r.rlim_cur == RLIM_INFINITY) return kUnknown;
    return static_cast<uint64_t>(r.rlim_cur);
}

std::string gib_text(uint64_t bytes) {
    std::ostringstream out;
    out.precision(3);
    out << static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0) << " GiB";
    return out.str();
}

}  // namespace

uint64_t saturating_mul(uint64_t a, uint64_t b) {
    if (a != 0 && b > kUnknown / a) return kUnknown;
    return a * b;
}

uint64_t available_host_memory() {
    uint64_t avail = meminfo_bytes("MemAvailable");
    const uint64_t swap = meminfo_bytes("SwapFree");
    if (avail != kUnknown && swap != kUnknown) avail += swap;
    avail = std::min(avail, rlimit_bytes(RLIMIT_AS));
    return std::min(avail, rlimit_bytes(RLIMIT_DATA));
}

void check_host_memory(uint64_t bytes, const std::string& what) {
    const uint64_t avail = available_host_memory();
    QLORA_RUNTIME_CHECK(avail == kUnknown || bytes <= avail, what, " needs ", gib_text(bytes),
                        ", but only ", gib_text(avail), " of memory is available");
}

}  // namespace qlora::limits
