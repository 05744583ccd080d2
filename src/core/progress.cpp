// Progress line: formatting is pure (tested); drawing only happens on a terminal.
#include "core/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace qlora {

std::string format_duration(double seconds) {
    if (!std::isfinite(seconds) || seconds < 0) return "?";
    char buf[32];
    if (seconds < 10) {
        std::snprintf(buf, sizeof(buf), "%.1fs", seconds);
        return buf;
    }
    auto total = static_cast<int64_t>(std::llround(seconds));
    int64_t h = total / 3600, m = (total % 3600) / 60, s = total % 60;
    if (h > 0) {
        std::snprintf(buf, sizeof(buf), "%lldh%02lldm%02llds", static_cast<long long>(h),
                      static_cast<long long>(m), static_cast<long long>(s));
    } else if (m > 0) {
        std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(m),
                      static_cast<long long>(s));
    } else {
        std::snprintf(buf, sizeof(buf), "%llds", static_cast<long long>(s));
    }
    return buf;
}

std::string format_progress(const std::string& label, int64_t done, int64_t total,
                            double elapsed_seconds, const std::string& unit,
                            const std::string& extra) {
    char buf[160];
    std::string line = label + " " + std::to_string(done);
    if (total > 0) {
        std::snprintf(buf, sizeof(buf), "/%lld %3.0f%%", static_cast<long long>(total),
                      100.0 * static_cast<double>(done) / static_cast<double>(total));
        line += buf;
    }
    double rate = elapsed_seconds > 0 ? static_cast<double>(done) / elapsed_seconds : 0.0;
    std::snprintf(buf, sizeof(buf), " %.1f %s/s", rate, unit.c_str());
    line += buf;
    if (total > 0 && done < total) {
        double eta = rate > 0 ? static_cast<double>(total - done) / rate : -1.0;
        line += " ETA " + format_duration(eta);
    } else if (total > 0) {
        line += " in " + format_duration(elapsed_seconds);
    }
    if (!extra.empty()) line += " " + extra;
    return line;
}

Progress::Progress(std::string label, int64_t total, std::string unit, int enabled, std::FILE* out)
    : label_(std::move(label)),
      total_(total),
      unit_(std::move(unit)),
      enabled_(enabled < 0 ? isatty(fileno(out)) != 0 : enabled != 0),
      out_(out),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_ - std::chrono::seconds(1)) {}

Progress::~Progress() {
    if (enabled_ && !finished_ && done_ > 0) std::fputc('\n', out_);
}

double Progress::elapsed_seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, const std::string& extra) {
    done_ = done;
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(100) && done_ != total_) return;
    last_draw_ = now;
    draw(extra);
}

void Progress::finish(const std::string& extra) {
    if (finished_) return;
    finished_ = true;
    if (!enabled_) return;
    draw(extra);
    std::fputc('\n', out_);
    std::fflush(out_);
}

void Progress::draw(const std::string& extra) {
    std::string line = format_progress(label_, done_, total_, elapsed_seconds(), unit_, extra);
    std::fprintf(out_, "\r\033[2K%s", line.c_str());
    std::fflush(out_);
}

}  // namespace qlora
