// Crash-safe writes: a file or folder is written under a temporary name in the same folder,
// fsynced, then renamed into place, so a reader sees either the old complete version or the new
// one, never a half-written one (DESIGN.md section 10: a crash leaves the last complete checkpoint
// intact).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qlora::io {

// fsync a file or a folder (a folder's fsync makes a rename inside it durable).
void fsync_path(const std::string& path);

// rm -rf; a missing path is fine. Use this, not std::filesystem::remove_all: the torch wheel's
// libtorch.so exports its own remove_all, which calls a libstdc++ symbol
// (recursive_directory_iterator::__erase) that Debian 12's GCC 12.2 lacks, and it jumps to address
// 0 on any non-empty folder.
void remove_tree(const std::string& path);

// Streams bytes to `<final>.tmp-<pid>-<n>` beside the final path; commit() fsyncs, renames over the
// final path and fsyncs the folder. Destroyed without commit(), it removes the temporary file.
class AtomicFileWriter {
  public:
    explicit AtomicFileWriter(std::string final_path);
    AtomicFileWriter(const AtomicFileWriter&) = delete;
    AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
    ~AtomicFileWriter();

    void write(const void* data, size_t size);
    void write(const std::string& bytes) { write(bytes.data(), bytes.size()); }
    uint64_t bytes_written() const { return written_; }
    void commit();

    const std::string& final_path() const { return final_path_; }
    const std::string& temp_path() const { return temp_path_; }

  private:
    std::string final_path_;
    std::string temp_path_;
    int fd_ = -1;
    uint64_t written_ = 0;
    bool committed_ = false;
};

// Temp file in the same folder, fsync file, rename, fsync folder.
void write_file_atomic(const std::string& path, const std::string& bytes);

// A folder written under a temporary name (<final>.tmp-<pid>) and renamed into place by commit();
// the destructor removes it if not committed. With overwrite, an existing final folder is replaced
// atomically (renameat2 RENAME_EXCHANGE where the filesystem has it); without, an existing final
// folder is an error, reported by the constructor so no work is wasted.
class AtomicDir {
  public:
    explicit AtomicDir(std::string final_path, bool overwrite = false);
    AtomicDir(AtomicDir&& other) noexcept;
    AtomicDir(const AtomicDir&) = delete;
    AtomicDir& operator=(const AtomicDir&) = delete;
    AtomicDir& operator=(AtomicDir&&) = delete;
    ~AtomicDir();

    // The temporary folder to write into.
    const std::string& path() const { return temp_path_; }
    const std::string& final_path() const { return final_path_; }
    // fsyncs every file and folder inside, renames into place, fsyncs the parent folder.
    void commit();
    bool committed() const { return committed_; }

  private:
    std::string final_path_;
    std::string temp_path_;
    bool overwrite_ = false;
    bool committed_ = false;
};

}  // namespace qlora::io
