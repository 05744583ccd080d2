// qlora-generate and qlora-eval end to end on stories260K: llama2.c's greedy text byte for byte,
// the cs336-sample loss as one JSON line, and exit code 2 with a clear message for bad input.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace qlora {
namespace {

// stdout only: run_command appends 2>&1, so stderr (log lines) is dropped inside a group.
test::CommandResult run_stdout(const std::string& command) {
    return test::run_command("{ " + command + " 2>/dev/null; }");
}

std::string hf_dir() { return test::shared_data("stories260K/hf"); }

std::string reference_text(int index) {
    std::ifstream in(test::shared_data("stories260K/reference/stories260K_reference_outputs.json"));
    return nlohmann::json::parse(in)
        .at(index)
        .at("stdout_text_without_final_newline")
        .get<std::string>();
}

TEST(GenerateCli, GreedyStoryMatchesLlama2c) {
    // run.c -n 64 -i "Once upon a time": 64 positions, so 60 new tokens after the 4 prompt ones.
    auto r =
        run_stdout(test::tool("qlora-generate") + " --model " + hf_dir() +
                   " --prompt 'Once upon a time' --max-new-tokens 60 --temperature 0 --device cpu");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, reference_text(2) + "\n");
}

TEST(GenerateCli, SeededTopPMatchesLlama2c) {
    auto r = run_stdout(test::tool("qlora-generate") + " --model " + hf_dir() +
                        " --prompt '' -n 256 -t 1.0 -p 0.9 -s 133742 --device cpu");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output, reference_text(3) + "\n");
}

TEST(GenerateCli, Nf4AndStatsRun) {
    auto r = test::run_command(test::tool("qlora-generate") + " --model " + hf_dir() +
                               " --quant nf4 --prompt 'Once upon a time' -n 20 --top-k 5 -t 0.8"
                               " --repetition-penalty 1.1 --stats --device cpu");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("Once upon a time"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("tokens/s"), std::string::npos) << r.output;
}

// The opt-in int8-activation decode (AVX-512 VNNI; exact GEMV elsewhere) is an approximation:
// greedy text on the NF4 base starts as the exact run's does and stays readable.
TEST(GenerateCli, Int8ActivationsKeepTheGreedyStoryOnTrack) {
    const std::string command = test::tool("qlora-generate") + " --model " + hf_dir() +
                                " --quant nf4 --prompt 'Once upon a time' -n 60 -t 0 --device cpu";
    auto exact = run_stdout(command);
    auto int8 = run_stdout(command + " --int8-activations");
    ASSERT_EQ(exact.exit_code, 0) << exact.output;
    ASSERT_EQ(int8.exit_code, 0) << int8.output;
    size_t common = 0;
    while (common < exact.output.size() && common < int8.output.size() &&
           exact.output[common] == int8.output[common])
        ++common;
    EXPECT_GE(common, std::string("Once upon a time, there was a little girl").size())
        << "exact: " << exact.output << "\nint8:  " << int8.output;
}

TEST(GenerateCli, BadInputExitsWithTwo) {
    auto r = test::run_command(test::tool("qlora-generate") + " --model " + hf_dir() +
                               " --adapter some/adapter --prompt x --device cpu");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(
        r.output.find(
            "some/adapter/adapter_config.json: cannot open (expected a PEFT LoRA adapter folder)"),
        std::string::npos)
        << r.output;
    r = test::run_command(test::tool("qlora-generate") + " --model " + hf_dir() +
                          " --prompt x --top-p 2");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    r = test::run_command(test::tool("qlora-generate") + " --model " + hf_dir());
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("--prompt"), std::string::npos) << r.output;
}

TEST(EvalCli, Cs336SampleLoss) {
    auto r = run_stdout(test::tool("qlora-eval") + " --model " + hf_dir() + " --data " +
                        test::shared_data("text/tinystories_sample_cs336.txt") +
                        " --max-seq-len 512 --device cpu");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto j = nlohmann::json::parse(r.output);
    EXPECT_NEAR(j.at("loss").get<double>(), 1.3011, 5e-4);
    EXPECT_NEAR(j.at("perplexity").get<double>(), std::exp(1.3011), 2e-3);
    EXPECT_EQ(j.at("tokens").get<int64_t>(), 1804);
}

TEST(EvalCli, JsonlAndErrors) {
    const std::string dir = test::scratch_dir("eval_cli");
    std::ofstream(dir + "/data.jsonl")
        << R"({"text": "Once upon a time, there was a cat."})"
        << "\n"
        << R"({"instruction": "Tell a story.", "output": "Tom ran."})"
        << "\n";
    auto r = run_stdout(test::tool("qlora-eval") + " --model " + hf_dir() + " --data " + dir +
                        "/data.jsonl --device cpu");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_GT(nlohmann::json::parse(r.output).at("tokens").get<int64_t>(), 10);

    std::ofstream(dir + "/bad.jsonl") << R"({"text": "fine"})"
                                      << "\n"
                                      << "{not json\n";
    r = test::run_command(test::tool("qlora-eval") + " --model " + hf_dir() + " --data " + dir +
                          "/bad.jsonl --device cpu");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("bad.jsonl:2"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qlora
