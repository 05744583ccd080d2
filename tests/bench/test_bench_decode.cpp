// qlora-bench decode / prefill on the CPU with the smallest shape: one line per base with positive
// speeds, the 4-bit model smaller than the dense one, and a summary comparing them. Never timed.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "bench/bench_decode.h"
#include "core/error.h"

namespace qlora::bench {
namespace {

InferenceBenchOptions tiny() {
    InferenceBenchOptions o;
    o.shape = "tiny";
    o.layers = 1;
    o.prompt = 8;
    o.tokens = 2;
    o.iters = 1;
    return o;
}

void expect_cases(const std::vector<std::string>& lines, const std::string& bench) {
    ASSERT_EQ(lines.size(), 3u);
    const auto nf4 = nlohmann::json::parse(lines[0]);
    const auto fp32 = nlohmann::json::parse(lines[1]);
    const auto summary = nlohmann::json::parse(lines[2]);
    EXPECT_EQ(nf4["bench"], bench);
    EXPECT_EQ(nf4["base"], "nf4");
    EXPECT_EQ(nf4["lm_head"], "nf4");
    EXPECT_EQ(fp32["base"], "fp32");
    EXPECT_EQ(fp32["lm_head"], "fp32");
    for (const auto& j : {nf4, fp32}) {
        EXPECT_EQ(j["layers"], 1);
        EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
    }
    EXPECT_LT(nf4["weight_bytes"].get<int64_t>(), fp32["weight_bytes"].get<int64_t>());
    EXPECT_EQ(summary["bench"], bench + "_summary");
    EXPECT_GT(summary["speed_ratio"].get<double>(), 0.0);
    EXPECT_LT(summary["weight_bytes_ratio"].get<double>(), 1.0);
}

TEST(BenchDecode, ReportsEachBaseAndTheirRatio) {
    expect_cases(bench_decode(tiny(), c10::Device(c10::kCPU)), "decode");
}

TEST(BenchPrefill, ReportsEachBaseAndTheirRatio) {
    expect_cases(bench_prefill(tiny(), c10::Device(c10::kCPU)), "prefill");
}

TEST(BenchDecode, RejectsAnUnknownBase) {
    InferenceBenchOptions o = tiny();
    o.bases = {"int3"};
    EXPECT_THROW(bench_decode(o, c10::Device(c10::kCPU)), Error);
}

}  // namespace
}  // namespace qlora::bench
