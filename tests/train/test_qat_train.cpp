// Short QAT runs of the trainer on stories260K (configs/quickstart.yaml with overrides, CPU): both
// modes lower the loss and write their adapter; fake quantization switches on at qat.start_step,
// which metrics.jsonl records, and the steps before it are exactly the run without QAT.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_support.h"
#include "train/config.h"
#include "train/trainer.h"

namespace qlora::train {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSteps = 8;

struct TrainRun {
    std::vector<double> losses;
    std::vector<nlohmann::json> metrics;  // every line of metrics.jsonl
    std::string adapter_dir;
};

TrainRun train(const std::string& name, std::vector<std::string> overrides) {
    const std::string dir = qlora::test::scratch_dir(name);
    std::vector<std::string> all = {"train.max_steps=" + std::to_string(kSteps),
                                    "data.max_seq_len=128",
                                    "optim.lr=3e-3",
                                    "eval.every=0",
                                    "eval.prompts=[]",
                                    "output.save_every=0",
                                    "output.dir=" + dir + "/run"};
    all.insert(all.end(), overrides.begin(), overrides.end());
    Trainer t(load_config(std::string(QLORA_SOURCE_DIR) + "/configs/quickstart.yaml", all), "");
    t.setup();
    TrainResult r = t.train();
    TrainRun run{r.losses, {}, r.adapter_dir};
    std::ifstream in(dir + "/run/metrics.jsonl");
    for (std::string line; std::getline(in, line);)
        run.metrics.push_back(nlohmann::json::parse(line));
    return run;
}

double mean(const std::vector<double>& v, size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += v[i];
    return s / static_cast<double>(to - from);
}

void expect_learns(const TrainRun& r) {
    ASSERT_EQ(r.losses.size(), static_cast<size_t>(kSteps));
    std::string curve;
    for (double l : r.losses) curve += std::to_string(l) + " ";
    std::printf("loss curve: %s\n", curve.c_str());
    EXPECT_LT(mean(r.losses, kSteps - 3, kSteps), mean(r.losses, 0, 3) - 0.1) << curve;
    EXPECT_TRUE(fs::exists(r.adapter_dir + "/adapter_model.safetensors"));
}

// Merge-aware NF4 over the quickstart's NF4 base: Q(deq(W0) + s·B·A) from the first step.
TEST(QatTrain, MergeAwareNf4LearnsAndWritesItsAdapter) {
    TrainRun r = train("qat_train_merge_aware",
                       {"qat.enabled=true", "qat.mode=merge_aware", "qat.weight=nf4"});
    expect_learns(r);
    ASSERT_FALSE(r.metrics.empty());
    EXPECT_EQ(r.metrics[0].value("event", ""), "qat_on");
    EXPECT_EQ(r.metrics[0]["step"], 1);
    for (const auto& m : r.metrics) {
        if (m.contains("loss")) {
            EXPECT_TRUE(m["qat"].get<bool>()) << m.dump();
        }
    }
}

// lora mode, int4 per group of 32 over a 16-bit base with int8 activations, switched on after 3
// steps: steps 1-3 equal the run without QAT bit for bit, step 4 onwards are fake-quantized.
TEST(QatTrain, LoraModeInt4StartsAtStartStep) {
    const std::vector<std::string> dense = {"quant.enabled=false"};
    std::vector<std::string> qat = dense;
    qat.insert(qat.end(), {"qat.enabled=true", "qat.mode=lora", "qat.weight=int4",
                           "qat.group_size=32", "qat.activations=int8", "qat.start_step=3"});
    TrainRun r = train("qat_train_lora", qat);
    TrainRun plain = train("qat_train_plain", dense);
    expect_learns(r);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(r.losses[i], plain.losses[i]) << "step " << i + 1;
    EXPECT_NE(r.losses[3], plain.losses[3]);
    int64_t on_at = -1;
    for (const auto& m : r.metrics) {
        if (m.value("event", "") == "qat_on") on_at = m["step"].get<int64_t>();
        if (m.contains("loss")) {
            EXPECT_EQ(m["qat"].get<bool>(), m["step"].get<int64_t>() > 3) << m.dump();
        }
    }
    EXPECT_EQ(on_at, 4);
    for (const auto& m : plain.metrics) EXPECT_FALSE(m.contains("qat")) << "no qat key without QAT";
}

}  // namespace
}  // namespace qlora::train
