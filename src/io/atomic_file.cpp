// Temp-name + fsync + rename for files and folders. POSIX calls throughout: std::filesystem has no
// fsync, and renameat2 is what lets an existing checkpoint folder be replaced in one step.
#include "io/atomic_file.h"

#include <fcntl.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "core/error.h"

namespace fs = std::filesystem;

namespace qlora::io {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string parent_folder(const std::string& path) {
    fs::path parent = fs::path(path).parent_path();
    return parent.empty() ? std::string(".") : parent.string();
}

// "a/b/" and "a/b" must name the same folder, and its temp sibling must be "a/b.tmp-N", not
// "a/b/.tmp-N".
std::string without_trailing_slash(std::string path) {
    while (path.size() > 1 && path.back() == '/') path.pop_back();
    return path;
}

// Unique per process and per call, so threads writing the same final path never share a temp file.
std::string temp_file_name(const std::string& final_path) {
    static std::atomic<uint64_t> counter{0};
    return final_path + ".tmp-" + std::to_string(::getpid()) + "-" + std::to_string(counter++);
}

void fsync_tree(const std::string& root) {
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
        if (entry.is_regular_file() || entry.is_directory()) fsync_path(entry.path().string());
    }
    fsync_path(root);
}

// Swaps two existing paths atomically; false when the filesystem or kernel cannot (EINVAL, ENOSYS).
bool exchange_paths(const std::string& a, const std::string& b) {
    if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) == 0) return true;
    QLORA_RUNTIME_CHECK(errno == EINVAL || errno == ENOSYS, "cannot replace ", b, " with ", a, ": ",
                        errno_text());
    return false;
}

void rename_path(const std::string& from, const std::string& to) {
    QLORA_RUNTIME_CHECK(std::rename(from.c_str(), to.c_str()) == 0, "cannot rename ", from, " to ",
                        to, ": ", errno_text());
}

int remove_entry(const char* path, const struct stat*, int, struct FTW*) { return ::remove(path); }

// For destructors and best-effort cleanup: failures are left for the next run to find.
void remove_tree_quietly(const std::string& path) noexcept {
    try {
        remove_tree(path);
    } catch (...) {
    }
}

}  // namespace

void remove_tree(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) return;
    // FTW_DEPTH visits children before their folder; FTW_PHYS removes links, not their targets.
    int rc = ::nftw(path.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    QLORA_RUNTIME_CHECK(rc == 0, "cannot remove ", path, ": ", errno_text());
}

void fsync_path(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    QLORA_RUNTIME_CHECK(fd >= 0, "cannot open ", path, " to fsync it: ", errno_text());
    int rc = ::fsync(fd);
    int saved = errno;
    ::close(fd);
    // Some filesystems cannot fsync a folder (EINVAL); the data itself was already synced.
    QLORA_RUNTIME_CHECK(rc == 0 || saved == EINVAL, "fsync failed for ", path, ": ",
                        std::strerror(saved));
}

// ---- AtomicFileWriter --------------------------------------------------------------------------

AtomicFileWriter::AtomicFileWriter(std::string final_path)
    : final_path_(std::move(final_path)), temp_path_(temp_file_name(final_path_)) {
    std::error_code ec;
    fs::create_directories(parent_folder(final_path_), ec);  // open() below reports any failure
    fd_ = ::open(temp_path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    QLORA_RUNTIME_CHECK(fd_ >= 0, "cannot create ", temp_path_, " (to write ", final_path_,
                        "): ", errno_text());
}

AtomicFileWriter::~AtomicFileWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_path_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
    QLORA_CHECK(fd_ >= 0 && !committed_, "write to ", final_path_, " after commit()");
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd_, p, size);
        if (n < 0 && errno == EINTR) continue;
        QLORA_RUNTIME_CHECK(n > 0, "cannot write ", final_path_, " (", written_,
                            " bytes written): ", n < 0 ? errno_text() : std::string("no progress"));
        p += n;
        size -= static_cast<size_t>(n);
        written_ += static_cast<uint64_t>(n);
    }
}

void AtomicFileWriter::commit() {
    QLORA_CHECK(!committed_, "commit() called twice for ", final_path_);
    QLORA_RUNTIME_CHECK(::fsync(fd_) == 0, "fsync failed for ", temp_path_, ": ", errno_text());
    int rc = ::close(fd_);
    fd_ = -1;
    QLORA_RUNTIME_CHECK(rc == 0, "cannot close ", temp_path_, ": ", errno_text());
    rename_path(temp_path_, final_path_);
    committed_ = true;
    fsync_path(parent_folder(final_path_));
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
    AtomicFileWriter out(path);
    out.write(bytes);
    out.commit();
}

// ---- AtomicDir ---------------------------------------------------------------------------------

AtomicDir::AtomicDir(std::string final_path, bool overwrite)
    : final_path_(without_trailing_slash(std::move(final_path))),
      temp_path_(final_path_ + ".tmp-" + std::to_string(::getpid())),
      overwrite_(overwrite) {
    QLORA_CHECK(overwrite_ || !fs::exists(final_path_), final_path_,
                " already exists; choose another output folder or allow overwriting it");
    remove_tree(temp_path_);  // left by an earlier crashed process that had our pid
    std::error_code ec;
    fs::create_directories(temp_path_, ec);
    QLORA_RUNTIME_CHECK(!ec, "cannot create folder ", temp_path_, ": ", ec.message());
}

AtomicDir::AtomicDir(AtomicDir&& other) noexcept
    : final_path_(std::move(other.final_path_)),
      temp_path_(std::move(other.temp_path_)),
      overwrite_(other.overwrite_),
      committed_(other.committed_) {
    other.committed_ = true;  // the moved-from object must not remove our folder
    other.temp_path_.clear();
}

AtomicDir::~AtomicDir() {
    if (committed_ || temp_path_.empty()) return;
    remove_tree_quietly(temp_path_);
}

void AtomicDir::commit() {
    QLORA_CHECK(!committed_, "commit() called twice for ", final_path_);
    fsync_tree(temp_path_);
    if (fs::exists(final_path_)) {
        QLORA_CHECK(overwrite_, final_path_, " appeared while ", temp_path_,
                    " was being written; not overwriting it");
        if (exchange_paths(temp_path_, final_path_)) {
            committed_ = true;
            fsync_path(parent_folder(final_path_));
            remove_tree_quietly(temp_path_);  // now the old version
            return;
        }
        // No atomic swap here: move the old one aside first, so a crash leaves one of the two.
        std::string old = final_path_ + ".old-" + std::to_string(::getpid());
        remove_tree(old);
        rename_path(final_path_, old);
        rename_path(temp_path_, final_path_);
        committed_ = true;
        fsync_path(parent_folder(final_path_));
        remove_tree_quietly(old);
        return;
    }
    rename_path(temp_path_, final_path_);
    committed_ = true;
    fsync_path(parent_folder(final_path_));
}

}  // namespace qlora::io
