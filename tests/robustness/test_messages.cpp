// Class "unclear messages": every error is one line of at most limits::kMaxErrorChars (640)
// characters naming the file, exit 2 for bad input and 1 for runtime failures; no bare "stoll", no
// echoed 51 MB line, no backtrace; out-of-range token ids name vocab_size and the tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/error_text.h"
#include "core/limits.h"
#include "core/parse_int.h"
#include "data/records.h"
#include "lora/peft_adapter.h"
#include "model/llama_loader.h"
#include "model/vocab_check.h"
#include "robustness/robustness_support.h"
#include "tokenizer/tokenizer.h"
#include "train/config.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;

TEST(Messages, LongValuesAreCutInTheMiddle) {
    const std::string long_value(5'000'000, 'x');
    const std::string cut =
        cut_middle("file.jsonl:3: bad " + long_value + " (end)", limits::kMaxErrorChars);
    EXPECT_LE(cut.size(), limits::kMaxErrorChars);
    EXPECT_EQ(cut.rfind("file.jsonl:3: bad ", 0), 0u);
    EXPECT_TRUE(cut.ends_with(" (end)")) << cut;
    EXPECT_NE(cut.find("chars cut]"), std::string::npos);
    // A multi-byte character is never split.
    std::string accents;
    for (int i = 0; i < 400; ++i) accents += "\xC3\xA9";
    const std::string a = cut_middle(accents, 101);
    EXPECT_FALSE(a.empty());
    EXPECT_EQ(
        test::error_of([&] { QLORA_FAIL("v=", long_value); }).size() <= limits::kMaxErrorChars,
        true);
    EXPECT_EQ(first_line_cut("first line\nException raised from foo\nframe #0"), "first line");
    std::string many;
    for (int i = 0; i < 40; ++i) many += "problem " + std::to_string(i) + "\n";
    const std::string u = user_error_text(many);
    EXPECT_NE(u.find("... and 28 more"), std::string::npos) << u;
}

TEST(Messages, ParseErrorOfAHugeLineIsShort) {
    const std::string dir = test::scratch_dir("msg_huge_line");
    {
        std::ofstream out(dir + "/big.jsonl");
        out << "{\"text\": \"" << std::string(5'000'000, 'a') << "\" oops}\n";
    }
    const std::string e =
        test::error_of([&] { data::read_records(dir + "/big.jsonl", data::Format::kText, false); });
    EXPECT_LE(e.size(), limits::kMaxErrorChars + 10) << e.size();
    EXPECT_NE(e.find("big.jsonl:1: not valid JSON"), std::string::npos) << e;
    data::ReadResult skipped;
    {
        std::ofstream out(dir + "/mixed.jsonl");
        out << "{\"text\": \"" << std::string(3'000'000, 'b') << "\" oops}\n{\"text\": \"ok\"}\n";
    }
    skipped = data::read_records(dir + "/mixed.jsonl", data::Format::kText, true);
    ASSERT_EQ(skipped.skipped.size(), 1u);
    EXPECT_LE(skipped.skipped[0].size(), limits::kMaxErrorChars);
}

TEST(Messages, NoBareStoll) {
    EXPECT_EQ(parse_int64("32000"), std::optional<int64_t>(32000));
    EXPECT_FALSE(parse_int64("12abc"));
    EXPECT_FALSE(parse_int64("99999999999999999999"));
    EXPECT_FALSE(parse_int64(""));
    const std::string dir = test::scratch_dir("msg_parse_int");
    const std::string model = test::copy_stories_model(dir);
    std::ofstream(model + "/tokenizer_config.json")
        << R"({"added_tokens_decoder": {"abc": {"content": "<x>"}}})";
    const std::string e = test::error_of([&] { tokenizer::Tokenizer tok(model); });
    EXPECT_NE(
        e.find("tokenizer_config.json: added_tokens_decoder key: expected an integer, found 'abc'"),
        std::string::npos)
        << e;
    EXPECT_EQ(e.find("stoll"), std::string::npos) << e;
}

// The tokenizer of one model with the config of another: named at load, with vocab_size.
TEST(Messages, TokenIdsBeyondTheVocabularyNameTokenizerAndVocabSize) {
    const std::string dir = test::scratch_dir("msg_vocab");
    const std::string model = test::copy_stories_model(dir);
    test::patch_config(model, R"({"vocab_size": 256})");
    const std::string e = test::error_of(
        [&] { model::check_vocab_fits(512, model, model::LlamaConfig::load(model), model); });
    EXPECT_NE(e.find("the tokenizer of " + model + " has 512 tokens"), std::string::npos) << e;
    EXPECT_NE(e.find("vocab_size 256"), std::string::npos) << e;
    model::Llama llama = model::load_llama(test::shared_data("stories260K/hf"), {});
    const std::string f = test::error_of([&] {
        llama->forward(at::tensor({1, 600}, at::kLong).view({1, 2}));
    });
    EXPECT_NE(
        f.find("token id 600 is outside the model's vocabulary: config.json has vocab_size 512"),
        std::string::npos)
        << f;
}

// Through the tools: exit codes and one line each.
TEST(Messages, ToolsPrintOneLineWithTheRightExitCode) {
    const std::string dir = test::scratch_dir("msg_tools");
    const std::string model = test::copy_stories_model(dir);
    test::patch_config(model, R"({"num_hidden_layers": 1000000000})");
    auto r =
        test::run_command(test::tool("qlora-eval") + " --model " + model + " --device cpu --data " +
                          test::shared_data("text/tinystories_sample_cs336.txt"));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    ASSERT_EQ(test::error_lines(r.output).size(), 1u) << r.output;
    EXPECT_LE(test::error_lines(r.output)[0].size(), limits::kMaxErrorChars + 40) << r.output;
    EXPECT_NE(r.output.find("config.json"), std::string::npos) << r.output;
}

// A path the file system refuses (a name over NAME_MAX) given on the command line or in a config
// reaches std::filesystem, which throws: one line naming the path (cut) and the reason, exit 2.
TEST(Messages, APathTheFileSystemRefusesIsBadInput) {
    const std::string dir = test::scratch_dir("msg_long_path");
    const std::string model = test::copy_stories_model(dir);
    const std::string too_long = dir + "/" + std::string(300, 'n') + "/out";
    auto expect_bad_path = [&](const test::CommandResult& r) {
        EXPECT_EQ(r.exit_code, 2) << r.output;
        ASSERT_EQ(test::error_lines(r.output).size(), 1u) << r.output;
        const std::string line = test::error_lines(r.output)[0];
        EXPECT_LE(line.size(), 400u) << line;
        EXPECT_NE(line.find(": File name too long"), std::string::npos) << line;
        // The path is cut in the middle (its start and end stay), however deep the checkout.
        EXPECT_NE(line.find("'" + dir.substr(0, 40)), std::string::npos) << line;
        EXPECT_NE(line.find("nnnn/out': File name too long"), std::string::npos) << line;
    };
    expect_bad_path(test::run_command(test::tool("qlora-quantize") + " --model " + model +
                                      " --out " + too_long));
    const std::string cfg = dir + "/train.yaml";
    std::ofstream(cfg) << "model:\n  path: " << model
                       << "\ndata:\n  train: " << test::shared_data("instruct/alpaca_tiny_100.json")
                       << "\ntrain:\n  max_steps: 1\noutput:\n  dir: " << too_long << "\n";
    expect_bad_path(test::run_command(test::tool("qlora-train") + " " + cfg));
}

// Fuzz findings (fuzz_llama_config, fuzz_adapter_config, fuzz_records): a number that overflows
// a double (1e999) escaped nlohmann's parser as out_of_range instead of "not valid JSON".
TEST(Messages, NumberOverflowInJsonIsNamedAsInvalidJson) {
    const std::string dir = test::scratch_dir("messages_json_overflow");
    std::ofstream(dir + "/config.json") << R"({"model_type": "llama", "hidden_size": 22E2222222})";
    EXPECT_EQ(test::error_of([&] {
                  model::LlamaConfig::load(dir);
              }).rfind(dir + "/config.json: not valid JSON (", 0),
              0u);
    std::ofstream(dir + "/adapter_config.json") << R"({"r": 9e9999})";
    EXPECT_EQ(test::error_of([&] {
                  lora::load_peft_adapter(dir);
              }).rfind(dir + "/adapter_config.json: not valid JSON (", 0),
              0u);
    std::ofstream(dir + "/records.jsonl") << "{\"text\": \"a\"}\n{\"text\": 99e9999999999}\n";
    EXPECT_EQ(test::error_of([&] {
                  data::read_records(dir + "/records.jsonl", data::Format::kText, false);
              }).rfind(dir + "/records.jsonl:2: not valid JSON (", 0),
              0u);
}

// Fuzz finding (fuzz_train_config): a config that is one long scalar (a UTF-16 file read as
// UTF-8) was echoed whole in "expected a mapping of sections"; the value is cut now.
TEST(Messages, AConfigThatIsOneLongScalarIsCut) {
    const std::string dir = test::scratch_dir("messages_scalar_config");
    std::ofstream(dir + "/c.yaml") << std::string(3000, 'm');
    const std::string e = test::error_of([&] { train::load_config(dir + "/c.yaml"); });
    EXPECT_NE(e.find("expected a mapping of sections"), std::string::npos) << e;
    EXPECT_LT(e.substr(0, e.find('\n')).size(), 300u) << e;  // then the missing keys, a line each
}

}  // namespace
}  // namespace qlora
