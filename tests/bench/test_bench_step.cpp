// qlora-bench step on the CPU with the smallest shape: every case reports a finite step, a loss
// near ln(vocab) for random weights, 4-bit base bytes below the dense ones, and a summary comparing
// them.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "bench/bench_step.h"
#include "core/error.h"
#include "support/test_support.h"
#include "train/config.h"

namespace qlora::bench {
namespace {

// One layer of the tiny shape, LoRA r 4, plain AdamW: a run of a second or so.
StepBenchOptions tiny_run(std::vector<std::string> bases) {
    StepBenchOptions o;
    o.shape = "tiny";
    o.layers = 1;
    o.seq = 16;
    o.lora_r = 4;
    o.optimizer = "adamw_32bit";
    o.bases = std::move(bases);
    o.warmup = 1;
    o.iters = 1;
    return o;
}

TEST(BenchStep, ReportsEachBaseAndTheirRatio) {
    const StepBenchOptions o = tiny_run({"nf4", "fp32"});
    const auto lines = bench_step(o, c10::Device(c10::kCPU));
    ASSERT_EQ(lines.size(), 3u);
    const auto nf4 = nlohmann::json::parse(lines[0]);
    const auto fp32 = nlohmann::json::parse(lines[1]);
    const auto summary = nlohmann::json::parse(lines[2]);
    for (const auto& j : {nf4, fp32}) {
        EXPECT_EQ(j["bench"], "step");
        EXPECT_EQ(j["layers"], 1);
        EXPECT_GT(j["step_ms"].get<double>(), 0.0);
        EXPECT_GT(j["tokens_per_s"].get<double>(), 0.0);
        EXPECT_GT(j["peak_step_bytes"].get<int64_t>(), 0);
        // 7 linears of rank 4 in one layer: q, k, v, o (256 x 256), gate, up (688 x 256), down.
        EXPECT_EQ(j["lora_params"].get<int64_t>(), 4 * (4 * (256 + 256) + 3 * (256 + 688)));
        EXPECT_NEAR(j["loss"].get<double>(), std::log(32000.0),
                    0.5);  // random weights: near uniform
    }
    // The recipe built the components: a config's defaults apply to what the options leave open.
    const train::TrainConfig defaults;
    EXPECT_EQ(nf4["compute_dtype"], "float32");  // model.dtype auto on the CPU
    EXPECT_EQ(fp32["compute_dtype"], "float32");
    EXPECT_EQ(nf4["lora_dropout"].get<double>(), defaults.lora.dropout);
    EXPECT_EQ(nf4["blocksize"].get<int64_t>(), defaults.quant.blocksize);
    EXPECT_EQ(nf4["double_quant"].get<bool>(), defaults.quant.double_quant);
    EXPECT_FALSE(fp32.contains("blocksize"));
    // Same embeddings and lm_head; the 4-bit linears shrink the rest.
    EXPECT_LT(nf4["base_weight_bytes"].get<int64_t>(), fp32["base_weight_bytes"].get<int64_t>());
    EXPECT_EQ(summary["compare"], "nf4 vs fp32");
    EXPECT_NEAR(summary["speed_ratio"].get<double>(),
                nf4["tokens_per_s"].get<double>() / fp32["tokens_per_s"].get<double>(), 1e-12);
}

// --compute-dtype bf16: the 4-bit base computes in bf16 (the bf16 tiled matmuls), the dense
// baseline is named by its base; a name that is no dtype is refused with the flag in the message.
TEST(BenchStep, ComputeDtypeSetsTheFourBitBasesDtype) {
    StepBenchOptions o = tiny_run({"nf4", "bf16"});
    o.seq = 24;
    o.compute_dtype = "bf16";
    const auto lines = bench_step(o, c10::Device(c10::kCPU));
    ASSERT_EQ(lines.size(), 3u);
    for (int i = 0; i < 2; ++i) {
        const auto j = nlohmann::json::parse(lines[static_cast<size_t>(i)]);
        EXPECT_EQ(j["compute_dtype"], "bfloat16");
        EXPECT_NEAR(j["loss"].get<double>(), std::log(32000.0), 0.5);
    }
    o.compute_dtype = "int8";
    try {
        bench_step(o, c10::Device(c10::kCPU));
        FAIL() << "int8 accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("--compute-dtype"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("'int8'"), std::string::npos) << e.what();
    }
}

// --trace: one more step of each base in LibTorch's Chrome trace, which holds the step's ops.
TEST(BenchStep, TraceWritesOneTracePerBase) {
    StepBenchOptions o = tiny_run({"nf4"});
    o.trace_prefix = test::scratch_dir("bench_step_trace") + "/step-";
    ASSERT_EQ(bench_step(o, c10::Device(c10::kCPU)).size(), 1u);  // one base: no summary
    std::ifstream in(o.trace_prefix + "nf4.json");
    ASSERT_TRUE(in.good());
    const auto events = nlohmann::json::parse(in);
    int mm = 0, lora = 0;
    for (const auto& e : events) {
        const auto name = e.value("name", std::string());
        mm += name == "aten::mm";
        lora += name.find("LoraLinearFunction") != std::string::npos;
    }
    EXPECT_GT(mm, 0);
    EXPECT_GT(lora, 0);  // the backward nodes of the LoRA projections
}

TEST(BenchStep, UnknownShapeOrBaseIsAClearError) {
    EXPECT_THROW(step_bench_config("70b", 0), Error);
    EXPECT_THROW(step_bench_config("7b", 33), Error);
    EXPECT_EQ(step_bench_config("7b", 2).num_hidden_layers, 2);
    StepBenchOptions o;
    o.layers = 1;
    o.seq = 8;
    o.bases = {"int3"};
    try {
        bench_step(o, c10::Device(c10::kCPU));
        FAIL() << "int3 accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'int3'"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace qlora::bench
