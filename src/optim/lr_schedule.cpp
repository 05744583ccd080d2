// Warmup + decay formulas of lr_schedule.h, with the option checks.
#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace qlora::optim {

ScheduleKind parse_schedule_kind(std::string_view name) { return kScheduleKindNames.parse(name); }

std::string schedule_kind_name(ScheduleKind value) { return kScheduleKindNames.name(value); }

LrSchedule::LrSchedule(const LrScheduleOptions& o) : options_(o) {
    QLORA_CHECK(std::isfinite(o.base_lr) && o.base_lr > 0.0, "optim.lr must be > 0, got ",
                o.base_lr);
    QLORA_CHECK(o.total_steps > 0, "lr schedule: total steps must be > 0, got ", o.total_steps);
    QLORA_CHECK(o.min_lr_ratio >= 0.0 && o.min_lr_ratio <= 1.0,
                "optim.min_lr_ratio must be in [0, 1], got ", o.min_lr_ratio);
    const bool by_steps = o.warmup_steps >= 0;
    const bool by_ratio = o.warmup_ratio >= 0.0;
    QLORA_CHECK(!(by_steps && by_ratio), "optim: set warmup_steps or warmup_ratio, not both (got ",
                o.warmup_steps, " and ", o.warmup_ratio, ")");
    if (by_ratio) {
        QLORA_CHECK(o.warmup_ratio <= 1.0, "optim.warmup_ratio must be in [0, 1], got ",
                    o.warmup_ratio);
        warmup_ =
            static_cast<int64_t>(std::ceil(o.warmup_ratio * static_cast<double>(o.total_steps)));
    } else if (by_steps) {
        warmup_ = o.warmup_steps;
    }
    QLORA_CHECK(warmup_ <= o.total_steps, "optim.warmup_steps (", warmup_,
                ") must not exceed the run's ", o.total_steps, " optimizer steps");
}

double LrSchedule::lr(int64_t step) const {
    const double base = options_.base_lr;
    const double s = static_cast<double>(std::max<int64_t>(step, 0));
    if (step < warmup_) return base * s / static_cast<double>(warmup_);
    if (options_.kind == ScheduleKind::kConstant) return base;
    const double decay_steps =
        static_cast<double>(std::max<int64_t>(options_.total_steps - warmup_, 1));
    const double progress = std::min(1.0, (s - static_cast<double>(warmup_)) / decay_steps);
    const double factor = options_.kind == ScheduleKind::kLinear
                              ? 1.0 - progress
                              : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
    const double r = options_.min_lr_ratio;
    return base * (r + (1.0 - r) * factor);
}

}  // namespace qlora::optim
