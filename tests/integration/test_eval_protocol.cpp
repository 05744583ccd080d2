// One eval protocol: qlora-eval --run replays a run's eval and prints the loss of its last eval
// line in metrics.jsonl (plain QLoRA and merge-aware QAT runs), and qlora-eval --format on the
// merge-aware QAT run's 4-bit export scores the eval file as the run's final eval did.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace qlora {
namespace {

// 20 Alpaca records (500..519 of the demo set) as the eval file.
std::string write_eval_jsonl(const std::string& dir) {
    std::ifstream in(test::shared_data("instruct/alpaca_en_demo_999.json"));
    const nlohmann::json records = nlohmann::json::parse(in);
    const std::string path = dir + "/eval.jsonl";
    std::ofstream out(path);
    for (size_t i = 500; i < 520; ++i) out << records.at(i).dump() << "\n";
    return path;
}

nlohmann::json last_eval_line(const std::string& run_dir) {
    std::ifstream in(run_dir + "/metrics.jsonl");
    nlohmann::json last;
    for (std::string line; std::getline(in, line);) {
        nlohmann::json j = nlohmann::json::parse(line);
        if (j.contains("eval_loss")) last = j;
    }
    return last;
}

nlohmann::json qlora_eval(const std::string& args) {
    auto r = test::run_command("{ " + test::tool("qlora-eval") + " " + args +
                               " --threads 1 2>/dev/null; }");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(r.output);
}

std::string train(const std::string& dir, const std::string& overrides) {
    auto r =
        test::run_command(test::tool("qlora-train") + " " + QLORA_SOURCE_DIR +
                          "/configs/quickstart.yaml train.max_steps=8 optim.lr=1e-2 eval.every=4 "
                          "output.save_every=0 'eval.prompts=[]' data.max_seq_len=128 " +
                          overrides + " output.dir=" + dir + "/run 2>&1");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return dir + "/run";
}

TEST(EvalProtocol, RunReplaysTheLastEvalOfAQloraRun) {
    const std::string dir = test::scratch_dir("eval_protocol_qlora");
    const std::string run = train(dir, "");  // eval_split 0.1 of the training file
    const nlohmann::json last = last_eval_line(run);
    ASSERT_TRUE(last.contains("eval_loss"));
    const nlohmann::json ours = qlora_eval("--run " + run);
    EXPECT_EQ(ours.at("protocol"), "samples");
    EXPECT_EQ(ours.at("tokens").get<int64_t>(), last.at("eval_tokens").get<int64_t>());
    EXPECT_NEAR(ours.at("loss").get<double>(), last.at("eval_loss").get<double>(), 1e-6);
}

TEST(EvalProtocol, MergeAwareQatRunAndItsNf4ExportScoreTheRunsFinalEval) {
    const std::string dir = test::scratch_dir("eval_protocol_qat");
    const std::string eval_file = write_eval_jsonl(dir);
    const std::string run = train(dir, "data.eval_split=null data.eval=" + eval_file +
                                           " qat.enabled=true qat.weight=nf4 qat.mode=merge_aware");
    const nlohmann::json last = last_eval_line(run);
    ASSERT_TRUE(last.contains("eval_loss"));
    const double final_eval = last.at("eval_loss").get<double>();
    EXPECT_NEAR(qlora_eval("--run " + run).at("loss").get<double>(), final_eval, 1e-6);

    const std::string hf = test::shared_data("stories260K/hf");
    auto exported =
        test::run_command(test::tool("qlora-export") + " --base " + hf + " --adapter " + run +
                          "/adapter --out " + dir + "/nf4 --format hf-nf4 --threads 1 2>&1");
    ASSERT_EQ(exported.exit_code, 0) << exported.output;
    // The quickstart's eval loader: alpaca template, micro_batch 4, max_seq_len 128 as trained.
    const nlohmann::json deployed =
        qlora_eval("--model " + dir + "/nf4 --data " + eval_file +
                   " --format alpaca --template alpaca --max-seq-len 128 "
                   "--micro-batch 4 --device cpu");
    EXPECT_EQ(deployed.at("tokens").get<int64_t>(), last.at("eval_tokens").get<int64_t>());
    EXPECT_NEAR(deployed.at("loss").get<double>(), final_eval, 1e-5);
}

}  // namespace
}  // namespace qlora
