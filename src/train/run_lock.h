// One qlora-train run per output folder: an exclusive flock(2) on <output.dir>/.qlora-train.lock,
// held for the life of the run. The kernel drops it when the process ends however it ends
// (SIGKILL included), so a killed run never leaves a stale lock; a second run on the same folder
// is refused at once. Taking the lock also proves the folder is writable before training starts.
#pragma once

#include <string>

namespace qlora::train {

class RunLock {
  public:
    // Creates output_dir if needed; throws qlora::Error (exit 2) when the folder cannot be
    // written (read-only, a file in the way) or another run holds the lock.
    explicit RunLock(const std::string& output_dir);
    RunLock(const RunLock&) = delete;
    RunLock& operator=(const RunLock&) = delete;
    ~RunLock();

    const std::string& path() const { return path_; }

  private:
    std::string path_;
    int fd_ = -1;
};

}  // namespace qlora::train
