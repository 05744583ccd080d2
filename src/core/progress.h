// A progress line for long work (quantizing, training, exporting): "label 120/500 24% 31.2 it/s
// ETA 12s extra". Redrawn in place on a terminal; silent when stdout is not a TTY (logs, CI).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace qlora {

// "1h02m03s", "4m05s", "12s", "0.4s"; "?" for negative or non-finite seconds.
std::string format_duration(double seconds);

// The text of one progress line; total <= 0 means unknown (no percentage, no ETA).
std::string format_progress(const std::string& label, int64_t done, int64_t total,
                            double elapsed_seconds, const std::string& unit,
                            const std::string& extra);

class Progress {
  public:
    // enabled: draw at all (default: only when stdout is a terminal).
    Progress(std::string label, int64_t total, std::string unit = "it", int enabled = -1,
             std::FILE* out = stdout);
    ~Progress();
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    // Sets the count of finished items and redraws at most every 100 ms.
    void update(int64_t done, const std::string& extra = {});
    void advance(int64_t n = 1, const std::string& extra = {}) { update(done_ + n, extra); }
    // Draws the final state and ends the line.
    void finish(const std::string& extra = {});
    bool enabled() const { return enabled_; }
    double elapsed_seconds() const;

  private:
    void draw(const std::string& extra);

    std::string label_;
    int64_t total_;
    std::string unit_;
    bool enabled_;
    std::FILE* out_;
    int64_t done_ = 0;
    bool finished_ = false;
    std::chrono::steady_clock::time_point start_;
    std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace qlora
