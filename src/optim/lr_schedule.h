// Learning-rate schedules as pure functions of the optimizer step: constant, linear decay and
// cosine decay, each after a linear warmup given in steps or as a ratio of the total.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/enum_names.h"

namespace qlora::optim {

enum class ScheduleKind { kConstant, kLinear, kCosine };

// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kScheduleKindNames =
    enum_names<ScheduleKind>("optim.lr_scheduler", {{ScheduleKind::kConstant, "constant"},
                                                    {ScheduleKind::kLinear, "linear"},
                                                    {ScheduleKind::kCosine, "cosine"}});
ScheduleKind parse_schedule_kind(std::string_view name);
std::string schedule_kind_name(ScheduleKind value);

struct LrScheduleOptions {
    ScheduleKind kind = ScheduleKind::kCosine;
    double base_lr = 2e-4;
    int64_t total_steps = 0;     // optimizer steps of the whole run, > 0
    int64_t warmup_steps = -1;   // set at most one of warmup_steps (>= 0) ...
    double warmup_ratio = -1.0;  // ... and warmup_ratio in [0, 1]: warmup = ceil(ratio * total)
    double min_lr_ratio = 0.0;   // linear/cosine decay to base_lr * min_lr_ratio, not to 0
};

// With W warmup steps and T total steps, at optimizer step s (0-based, the number of updates
// already made; Hugging Face's convention, so step 0 of a warmup has lr 0):
//   s < W:       base * s / W
//   constant:    base
//   linear:      base * (r + (1 - r) * max(0, (T - s) / (T - W)))
//   cosine:      base * (r + (1 - r) * 0.5 * (1 + cos(pi * min(1, (s - W) / (T - W)))))
// where r = min_lr_ratio.
class LrSchedule {
  public:
    // Throws qlora::Error naming the bad field (both warmups set, ratio outside [0, 1], warmup
    // longer than the run, base_lr <= 0, total_steps <= 0, ...).
    explicit LrSchedule(const LrScheduleOptions& options);

    double lr(int64_t step) const;
    int64_t warmup_steps() const { return warmup_; }
    const LrScheduleOptions& options() const { return options_; }

  private:
    LrScheduleOptions options_;
    int64_t warmup_ = 0;
};

}  // namespace qlora::optim
