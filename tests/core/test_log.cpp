// Leveled logging: levels filter, the sink captures, warn-once warns once.
#include <gtest/gtest.h>

#include <vector>

#include "core/log.h"

namespace qlora {
namespace {

struct CapturedLog {
    std::vector<std::pair<LogLevel, std::string>> lines;
    LogSink previous;
    LogLevel previous_level;
    CapturedLog() : previous_level(log_level()) {
        previous =
            set_log_sink([this](LogLevel l, const std::string& m) { lines.emplace_back(l, m); });
    }
    ~CapturedLog() {
        set_log_sink(previous);
        set_log_level(previous_level);
    }
};

TEST(Log, LevelsFilter) {
    CapturedLog cap;
    set_log_level(LogLevel::kWarn);
    log_info("hidden");
    log_debug("hidden");
    log_warn("shown ", 1);
    log_error("shown ", 2);
    ASSERT_EQ(cap.lines.size(), 2u);
    EXPECT_EQ(cap.lines[0].first, LogLevel::kWarn);
    EXPECT_EQ(cap.lines[0].second, "shown 1");
    EXPECT_EQ(cap.lines[1].first, LogLevel::kError);
    set_log_level(LogLevel::kDebug);
    log_debug("now ", "visible");
    ASSERT_EQ(cap.lines.size(), 3u);
    EXPECT_EQ(cap.lines[2].second, "now visible");
}

TEST(Log, WarnOnceWarnsOnce) {
    CapturedLog cap;
    set_log_level(LogLevel::kInfo);
    for (int i = 0; i < 3; ++i) log_warn_once("test-key-unique", "paged optimizer on CPU");
    log_warn_once("test-key-other", "other");
    ASSERT_EQ(cap.lines.size(), 2u);
    EXPECT_EQ(cap.lines[0].second, "paged optimizer on CPU");
    EXPECT_EQ(cap.lines[1].second, "other");
}

TEST(Log, ParseLevel) {
    EXPECT_EQ(parse_log_level("debug"), LogLevel::kDebug);
    EXPECT_EQ(parse_log_level("warning"), LogLevel::kWarn);
    try {
        parse_log_level("loud");
        FAIL();
    } catch (const Error& e) {
        EXPECT_STREQ(e.what(), "log level must be one of error, warn, info, debug; got 'loud'");
    }
}

}  // namespace
}  // namespace qlora
