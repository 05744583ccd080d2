// flock-based run lock and the writability probe of the output folder (train/run_lock.h).
#include "train/run_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace fs = std::filesystem;

namespace qlora::train {
namespace {

// A real write, not access(2): root passes access() on read-only mounts, and a full disk only
// shows when bytes go out.
void probe_writable(const std::string& dir) {
    const std::string probe =
        (fs::path(dir) / (".write-probe-" + std::to_string(::getpid()))).string();
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    const std::string why = std::strerror(errno);
    QLORA_CHECK(fd >= 0, "output.dir ", dir, " is not writable (", why,
                "); refusing to start training");
    const bool wrote = ::write(fd, "x", 1) == 1;
    const std::string write_why = std::strerror(errno);
    ::close(fd);
    ::unlink(probe.c_str());
    QLORA_CHECK(wrote, "output.dir ", dir, " is not writable (", write_why,
                "); refusing to start training");
}

}  // namespace

RunLock::RunLock(const std::string& output_dir) {
    std::error_code ec;
    fs::create_directories(output_dir, ec);
    QLORA_CHECK(fs::is_directory(output_dir), "output.dir ", output_dir, " cannot be created (",
                ec ? ec.message() : std::string("a file is in the way"),
                "); refusing to start training");
    probe_writable(output_dir);
    path_ = (fs::path(output_dir) / ".qlora-train.lock").string();
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    QLORA_CHECK(fd_ >= 0, "cannot open the run lock ", path_, ": ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        ::close(fd_);
        fd_ = -1;
        QLORA_CHECK(err != EWOULDBLOCK, "output.dir ", output_dir,
                    " is in use by another qlora-train run (it holds ", path_,
                    "); wait for it to finish or choose another output.dir");
        QLORA_FAIL("cannot lock ", path_, ": ", std::strerror(err));
    }
}

RunLock::~RunLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace qlora::train
