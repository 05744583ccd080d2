// A GGUF as the model of every tool: stories260K exported by us to an F16 GGUF (SentencePiece
// "llama" vocabulary) is trained on (model.path: x.gguf), scored, sampled and tokenized straight
// from the file, and each tool gives exactly what it gives on qlora-convert's Hugging Face folder
// of the same file (same float32 weights, same rebuilt tokenizer.json). A fine-tune of the GGUF
// exports back to GGUF with the source's vocabulary and to a Hugging Face folder; llama.cpp scores
// the GGUF export as we do. Bad paths are one-line errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "io/gguf_reader.h"
#include "support/gguf_import.h"
#include "support/llamacpp.h"
#include "support/test_support.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;

struct GgufAndFolder {
    std::string dir, gguf, folder;
};

// An F16 GGUF of stories260K and its qlora-convert folder, in the calling test's own scratch
// folder (ctest runs the tests of this file in parallel processes).
GgufAndFolder models() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    GgufAndFolder g;
    g.dir = test::scratch_dir(std::string("gguf_model_cli_") + info->name());
    g.gguf = test::stories_gguf(g.dir, exporting::GgufType::kF16, "stories260K-f16.gguf");
    g.folder = g.dir + "/converted";
    auto r = test::run_command(test::tool("qlora-convert") + " " + g.gguf + " " + g.folder);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return g;
}

std::string train(const std::string& model, const std::string& out, const std::string& extra) {
    auto r = test::run_command(test::tool("qlora-train") + " " + QLORA_SOURCE_DIR +
                               "/configs/quickstart.yaml model.path=" + model +
                               " train.max_steps=4 eval.every=2 eval.on_start=true "
                               "eval.max_new_tokens=8 output.save_every=0 data.max_seq_len=128 "
                               "output.dir=" +
                               out + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return out;
}

// metrics.jsonl without the timing fields (tokens_per_s, elapsed_s, peak memory).
std::vector<nlohmann::json> metrics_without_timing(const std::string& run) {
    std::vector<nlohmann::json> lines;
    std::ifstream in(run + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
        nlohmann::json j = nlohmann::json::parse(line);
        for (const char* key : {"tokens_per_s", "elapsed_s", "peak_memory_mb"}) j.erase(key);
        lines.push_back(j);
    }
    return lines;
}

std::string quiet(const std::string& tool, const std::string& args) {
    auto r = test::run_command("{ " + test::tool(tool) + " " + args + " 2>/dev/null; }");
    EXPECT_EQ(r.exit_code, 0) << tool << " " << args << ": " << r.output;
    return r.output;
}

TEST(GgufModelCli, TrainingFromTheGgufEqualsTrainingFromItsConversion) {
    const GgufAndFolder m = models();
    const std::string from_gguf = train(m.gguf, m.dir + "/run_gguf", "");
    const std::string from_folder = train(m.folder, m.dir + "/run_folder", "");
    const auto a = metrics_without_timing(from_gguf);
    const auto b = metrics_without_timing(from_folder);
    ASSERT_FALSE(a.empty());
    EXPECT_EQ(a, b);
    // eval.on_start: the base's eval (step 0) comes before the first step's line.
    ASSERT_TRUE(a.front().contains("step"));
    bool eval_at_start = false;
    for (const auto& line : a) {
        if (line.contains("loss")) break;
        eval_at_start = eval_at_start || (line.contains("eval_loss") && line["step"] == 0);
    }
    EXPECT_TRUE(eval_at_start) << a.front().dump();
    std::ifstream adapter_config(from_gguf + "/adapter/adapter_config.json");
    EXPECT_EQ(nlohmann::json::parse(adapter_config)["base_model_name_or_path"], m.gguf);
}

TEST(GgufModelCli, EvalGenerateAndTokenizeReadTheGgufAsTheFolder) {
    const GgufAndFolder m = models();
    const std::string text = test::shared_data("text/tinystories_sample_cs336.txt");
    const std::string eval = "--data " + text + " --max-seq-len 128 --threads 1";
    EXPECT_EQ(quiet("qlora-eval", "--model " + m.gguf + " " + eval),
              quiet("qlora-eval", "--model " + m.folder + " " + eval));
    const std::string gen = " --prompt 'Once upon a time' -n 12 --threads 1";
    const std::string generated = quiet("qlora-generate", "--model " + m.gguf + gen);
    EXPECT_EQ(generated, quiet("qlora-generate", "--model " + m.folder + gen));
    EXPECT_EQ(generated.rfind("Once upon a time", 0), 0u) << generated;
    const std::string tok = " --text 'Lily saw a big dog. It was 42 years old!'";
    EXPECT_EQ(quiet("qlora-tokenize", "--model " + m.gguf + tok),
              quiet("qlora-tokenize", "--model " + m.folder + tok));
}

TEST(GgufModelCli, AFineTuneOfTheGgufExportsBackToGgufAndToAFolder) {
    const GgufAndFolder m = models();
    const std::string run = train(m.gguf, m.dir + "/run_export", "'eval.prompts=[]'");
    for (const std::string type : {"f16", "q8_0", "q4_0"}) {
        const std::string out = m.dir + "/tuned-" + type + ".gguf";
        quiet("qlora-export", "--base " + m.gguf + " --adapter " + run + "/adapter --format gguf-" +
                                  type + " --out " + out);
        // The vocabulary goes out as it came in: llama.cpp's own tokenizer.ggml.* keys.
        const io::GgufReader source(m.gguf), tuned(out);
        for (const char* key : {"tokenizer.ggml.model", "tokenizer.ggml.pre"}) {
            EXPECT_EQ(tuned.get_string(key), source.get_string(key)) << key;
        }
        EXPECT_EQ(tuned.get("tokenizer.ggml.tokens").strings("tokens"),
                  source.get("tokenizer.ggml.tokens").strings("tokens"));
        EXPECT_EQ(tuned.get("tokenizer.ggml.scores").floats("scores"),
                  source.get("tokenizer.ggml.scores").floats("scores"));

        // llama.cpp's mean NLL on 256 held-out tokens (llama.cpp's tokenizer, its BOS) equals
        // ours on the same export within 1% (it rounds activations: f16, or Q8 for Q8_0/Q4_0).
        const std::string ids_file = m.dir + "/ids-" + type + ".txt";
        const std::vector<int64_t> ids =
            test::tokenize_with_llamacpp(out, "tinystories_sample_cs336.txt", 256, ids_file);
        ASSERT_EQ(ids.size(), 256u);
        const double ours = test::mean_nll(test::our_logits(out, ids), ids);
        const double theirs = test::llamacpp_nll(out, ids_file);
        std::cout << "[ measured ] fine-tuned " << type << " export: NLL " << ours << " (ours) vs "
                  << theirs << " (llama.cpp)\n";
        EXPECT_NEAR(ours, theirs, 0.01 * theirs) << type;
    }

    const std::string folder = m.dir + "/tuned-bf16";
    quiet("qlora-export", "--base " + m.gguf + " --adapter " + run + "/adapter --format hf-bf16" +
                              " --out " + folder);
    for (const char* f : {"config.json", "tokenizer.json", "tokenizer_config.json",
                          "generation_config.json", "model.safetensors"}) {
        EXPECT_TRUE(fs::is_regular_file(fs::path(folder) / f)) << f;
    }
    const std::string tok = " --text 'Lily saw a big dog.'";
    EXPECT_EQ(quiet("qlora-tokenize", "--model " + folder + tok),
              quiet("qlora-tokenize", "--model " + m.gguf + tok));
}

// A byte-level BPE model with a chat template through the whole trainer: SmolLM2 from its Q4_1
// GGUF (requantized to NF4), Alpaca records rendered by the GGUF's own ChatML template with the
// loss on the assistant turns; qlora-eval --run replays the run's eval to the same loss.
TEST(GgufModelCli, SmolLM2ChatRunFromTheGgufReplaysItsEval) {
    const std::string run = test::scratch_dir("gguf_smollm2_run") + "/run";
    auto r = test::run_command(test::tool("qlora-train") + " " + QLORA_SOURCE_DIR +
                               "/configs/smollm2-chat.yaml model.path=" + test::smollm2_gguf() +
                               " train.max_steps=1 train.micro_batch=1 train.grad_accum=2 "
                               "data.max_seq_len=64 eval.max_batches=2 eval.on_start=false "
                               "'eval.prompts=[]' output.dir=" +
                               run);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    nlohmann::json last;
    std::ifstream in(run + "/metrics.jsonl");
    for (std::string line; std::getline(in, line);) {
        const nlohmann::json j = nlohmann::json::parse(line);
        if (j.contains("eval_loss")) last = j;
    }
    ASSERT_TRUE(last.contains("eval_loss")) << r.output;
    const nlohmann::json replay =
        nlohmann::json::parse(quiet("qlora-eval", "--run " + run + " --threads 2"));
    EXPECT_EQ(replay.at("tokens"), last.at("eval_tokens"));
    EXPECT_NEAR(replay.at("loss").get<double>(), last.at("eval_loss").get<double>(), 1e-6);
}

// The shipped chat recipe plans its memory from the GGUF's own llama.* keys.
TEST(GgufModelCli, SmolLM2RecipeDryRunReadsTheGgufShape) {
    const std::string out =
        quiet("qlora-train", std::string(QLORA_SOURCE_DIR) +
                                 "/configs/smollm2-chat.yaml model.path=" + test::smollm2_gguf() +
                                 " --dry-run");
    EXPECT_NE(out.find("30 layers, hidden 576, 0.13B parameters"), std::string::npos) << out;
    EXPECT_NE(out.find("micro_batch 4 x seq 256, r 16, nf4"), std::string::npos) << out;
}

TEST(GgufModelCli, MissingOrBrokenGgufIsOneLineError) {
    const GgufAndFolder m = models();
    auto missing = test::run_command(test::tool("qlora-train") + " " + QLORA_SOURCE_DIR +
                                     "/configs/quickstart.yaml model.path=" + m.dir +
                                     "/none.gguf output.dir=" + m.dir + "/never");
    EXPECT_EQ(missing.exit_code, 2);
    EXPECT_NE(missing.output.find("model.path: file not found: " + m.dir + "/none.gguf"),
              std::string::npos)
        << missing.output;
    EXPECT_FALSE(fs::exists(m.dir + "/never"));

    const std::string fake = m.dir + "/fake.gguf";
    std::ofstream(fake) << "this is plain text, longer than a GGUF header";
    auto bad = test::run_command(test::tool("qlora-eval") + " --model " + fake + " --data " +
                                 test::shared_data("text/tinystories_sample_cs336.txt"));
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_EQ(bad.output, "qlora-eval: error: " + fake +
                              ": not a GGUF file (the first 4 bytes are not \"GGUF\")\n");

    auto folder_not_gguf = test::run_command(test::tool("qlora-generate") + " --model " + m.dir +
                                             "/absent.gguf --prompt x");
    EXPECT_EQ(folder_not_gguf.exit_code, 2);
    EXPECT_NE(folder_not_gguf.output.find("expected a model folder or a .gguf file"),
              std::string::npos)
        << folder_not_gguf.output;
}

}  // namespace
}  // namespace qlora
