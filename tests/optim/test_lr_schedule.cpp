// LR schedules at hand-computed points, warmup by steps and by ratio, and the option errors.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "optim/lr_schedule.h"

namespace qlora::optim {
namespace {

LrSchedule make(ScheduleKind kind, int64_t total, int64_t warmup_steps, double warmup_ratio = -1.0,
                double min_ratio = 0.0) {
    LrScheduleOptions o;
    o.kind = kind;
    o.base_lr = 1e-3;
    o.total_steps = total;
    o.warmup_steps = warmup_steps;
    o.warmup_ratio = warmup_ratio;
    o.min_lr_ratio = min_ratio;
    return LrSchedule(o);
}

TEST(LrSchedule, ParsesNamesWithClearErrors) {
    EXPECT_EQ(parse_schedule_kind("constant"), ScheduleKind::kConstant);
    EXPECT_EQ(parse_schedule_kind("linear"), ScheduleKind::kLinear);
    EXPECT_EQ(parse_schedule_kind("cosine"), ScheduleKind::kCosine);
    try {
        parse_schedule_kind("cosin");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(
                      "optim.lr_scheduler must be one of constant, linear, cosine, got "
                      "'cosin'"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_EQ(schedule_kind_name(ScheduleKind::kLinear), "linear");
}

TEST(LrSchedule, ConstantWithWarmupSteps) {
    LrSchedule s = make(ScheduleKind::kConstant, 100, 4);
    EXPECT_DOUBLE_EQ(s.lr(0), 0.0);
    EXPECT_DOUBLE_EQ(s.lr(1), 0.25e-3);
    EXPECT_DOUBLE_EQ(s.lr(3), 0.75e-3);
    EXPECT_DOUBLE_EQ(s.lr(4), 1e-3);
    EXPECT_DOUBLE_EQ(s.lr(99), 1e-3);
}

TEST(LrSchedule, LinearDecay) {
    // W = 10, T = 110: decay over 100 steps.
    LrSchedule s = make(ScheduleKind::kLinear, 110, 10);
    EXPECT_DOUBLE_EQ(s.lr(5), 0.5e-3);
    EXPECT_DOUBLE_EQ(s.lr(10), 1e-3);
    EXPECT_DOUBLE_EQ(s.lr(60), 0.5e-3);
    EXPECT_DOUBLE_EQ(s.lr(85), 0.25e-3);
    EXPECT_DOUBLE_EQ(s.lr(110), 0.0);
    EXPECT_DOUBLE_EQ(s.lr(500), 0.0);
}

TEST(LrSchedule, CosineWithWarmupRatio) {
    // ratio 0.03 of 1000 -> 30 warmup steps, 970 decay steps.
    LrSchedule s = make(ScheduleKind::kCosine, 1000, -1, 0.03);
    EXPECT_EQ(s.warmup_steps(), 30);
    EXPECT_DOUBLE_EQ(s.lr(15), 0.5e-3);
    EXPECT_DOUBLE_EQ(s.lr(30), 1e-3);
    EXPECT_NEAR(s.lr(30 + 485), 0.5e-3, 1e-15);  // halfway: cos(pi/2)
    EXPECT_NEAR(s.lr(30 + 970 / 4), 1e-3 * 0.5 * (1 + std::cos(std::numbers::pi * 242.0 / 970)),
                1e-18);
    EXPECT_NEAR(s.lr(1000), 0.0, 1e-18);
    // ceil: 0.03 * 10 = 0.3 -> 1 warmup step.
    EXPECT_EQ(make(ScheduleKind::kCosine, 10, -1, 0.03).warmup_steps(), 1);
}

TEST(LrSchedule, MinLrRatioFloorsTheDecay) {
    LrSchedule s = make(ScheduleKind::kCosine, 100, 0, -1.0, 0.1);
    EXPECT_DOUBLE_EQ(s.lr(0), 1e-3);
    EXPECT_NEAR(s.lr(50), 1e-3 * (0.1 + 0.9 * 0.5), 1e-15);
    EXPECT_NEAR(s.lr(100), 1e-4, 1e-15);
}

TEST(LrSchedule, RejectsBadOptions) {
    EXPECT_THROW(make(ScheduleKind::kCosine, 100, 5, 0.1), Error);   // both warmups
    EXPECT_THROW(make(ScheduleKind::kCosine, 100, -1, 1.5), Error);  // ratio > 1
    EXPECT_THROW(make(ScheduleKind::kCosine, 100, 101), Error);      // warmup longer than the run
    EXPECT_THROW(make(ScheduleKind::kCosine, 0, 0), Error);          // no steps
    LrScheduleOptions o;
    o.total_steps = 10;
    o.base_lr = 0.0;
    EXPECT_THROW(LrSchedule{o}, Error);
}

}  // namespace
}  // namespace qlora::optim
