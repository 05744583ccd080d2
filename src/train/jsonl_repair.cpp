// Cutting a partial last line off a JSONL file (train/jsonl_repair.h).
#include "train/jsonl_repair.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "core/error.h"

namespace qlora::train {

size_t drop_partial_last_line(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) return 0;
    QLORA_RUNTIME_CHECK(fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
    struct stat st {};
    ::fstat(fd, &st);
    off_t end = st.st_size;
    // Scan backwards in blocks for the last '\n'.
    std::vector<char> block(4096);
    off_t keep = 0;
    for (off_t pos = end; pos > 0;) {
        const off_t begin =
            pos > static_cast<off_t>(block.size()) ? pos - static_cast<off_t>(block.size()) : 0;
        const ssize_t n = ::pread(fd, block.data(), static_cast<size_t>(pos - begin), begin);
        if (n <= 0) break;
        bool found = false;
        for (ssize_t i = n - 1; i >= 0; --i) {
            if (block[static_cast<size_t>(i)] == '\n') {
                keep = begin + i + 1;
                found = true;
                break;
            }
        }
        if (found) break;
        pos = begin;
    }
    const size_t removed = static_cast<size_t>(end - keep);
    const bool ok = removed == 0 || ::ftruncate(fd, keep) == 0;
    const std::string why = std::strerror(errno);
    ::close(fd);
    QLORA_RUNTIME_CHECK(ok, "cannot repair ", path, ": ", why);
    return removed;
}

}  // namespace qlora::train
