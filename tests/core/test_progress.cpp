// Progress line formatting (pure) and the silent mode used when stdout is not a terminal.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "core/progress.h"

namespace qlora {
namespace {

TEST(Progress, FormatDuration) {
    EXPECT_EQ(format_duration(0.4), "0.4s");
    EXPECT_EQ(format_duration(12), "12s");
    EXPECT_EQ(format_duration(245), "4m05s");
    EXPECT_EQ(format_duration(3723), "1h02m03s");
    EXPECT_EQ(format_duration(-1), "?");
}

TEST(Progress, FormatWithTotalHasPercentRateAndEta) {
    // 25 of 100 in 5 s: 5 it/s, 75 left -> 15 s.
    EXPECT_EQ(format_progress("train", 25, 100, 5.0, "it", "loss=2.31"),
              "train 25/100  25% 5.0 it/s ETA 15s loss=2.31");
}

TEST(Progress, FormatFinishedShowsElapsed) {
    EXPECT_EQ(format_progress("quantize", 10, 10, 2.0, "tensor", ""),
              "quantize 10/10 100% 5.0 tensor/s in 2.0s");
}

TEST(Progress, FormatUnknownTotal) {
    EXPECT_EQ(format_progress("read", 7, 0, 2.0, "rec", ""), "read 7 3.5 rec/s");
}

TEST(Progress, DisabledWritesNothing) {
    std::FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    {
        Progress p("x", 3, "it", /*enabled=*/0, f);
        EXPECT_FALSE(p.enabled());
        p.advance();
        p.advance();
        p.finish();
    }
    EXPECT_EQ(std::ftell(f), 0L);
    std::fclose(f);
}

TEST(Progress, EnabledDrawsAndEndsLine) {
    std::FILE* f = std::tmpfile();
    ASSERT_NE(f, nullptr);
    {
        Progress p("x", 2, "it", /*enabled=*/1, f);
        p.advance();
        p.advance();
        p.finish("done");
    }
    std::rewind(f);
    char buf[512] = {};
    size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
    std::string text(buf, n);
    EXPECT_NE(text.find("x 2/2 100%"), std::string::npos) << text;
    EXPECT_NE(text.find("done\n"), std::string::npos) << text;
    std::fclose(f);
}

}  // namespace
}  // namespace qlora
