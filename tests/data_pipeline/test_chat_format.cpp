// data.template auto / model: conversations through the tokenizer's own chat template on the real
// Llama 3, Qwen2 and SmolLM2 vocabularies. The ids must equal transformers' apply_chat_template(
// tokenize=True), run here by scripts/check_chat_ids.py; the loss mask must cover exactly the
// assistant turns, written out by hand below for each template.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/chat_format.h"
#include "data/dataset.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace qlora::data {
namespace {

Record conversation() {
    Record r;
    r.messages = {{"system", "Be brief."},
                  {"user", "Hello?"},
                  {"assistant", "Hi there!"},
                  {"user", "Bye"},
                  {"assistant", "Bye."}};
    r.origin = "chat.jsonl:1";
    return r;
}

// The decoded runs of consecutive labelled tokens.
std::vector<std::string> labelled_runs(const Sample& s, const tokenizer::Tokenizer& tok) {
    std::vector<std::string> runs;
    std::vector<int64_t> run;
    for (size_t i = 0; i <= s.labels.size(); ++i) {
        if (i < s.labels.size() && s.labels[i] != kIgnoreIndex) {
            run.push_back(s.labels[i]);
        } else if (!run.empty()) {
            runs.push_back(tok.decode(run, /*skip_special_tokens=*/false));
            run.clear();
        }
    }
    return runs;
}

std::vector<int64_t> peer_ids(const std::string& folder, const Record& r, const std::string& dir) {
    nlohmann::json conv = nlohmann::json::array();
    for (const Message& m : r.messages) conv.push_back({{"role", m.role}, {"content", m.content}});
    std::ofstream(dir + "/conv.json") << nlohmann::json::array({conv}).dump();
    const auto run =
        test::run_command(test::python() + " " + QLORA_SOURCE_DIR + "/scripts/check_chat_ids.py " +
                          folder + " " + dir + "/conv.json " + dir + "/ids.json");
    EXPECT_EQ(run.exit_code, 0) << run.output;
    std::ifstream in(dir + "/ids.json");
    return nlohmann::json::parse(in).at(0).get<std::vector<int64_t>>();
}

struct Case {
    std::string vocabulary;
    std::vector<std::string> assistant_runs;  // hand-checked: each turn and its end-of-turn marker
};

class ModelTemplate : public ::testing::TestWithParam<Case> {};

TEST_P(ModelTemplate, IdsEqualTransformersAndMaskCoversAssistantTurns) {
    const Case& c = GetParam();
    const std::string folder = test::shared_data("tokenizers/" + c.vocabulary);
    const tokenizer::Tokenizer tok(folder);
    const ResolvedTemplate t = resolve_template(Template::kAuto, tok);
    ASSERT_EQ(t.tmpl, Template::kModel);
    ASSERT_TRUE(t.chat.has_value());
    const Record r = conversation();
    const Sample s = tokenize_with_chat_template(r, Format::kChat, *t.chat, tok, {});
    EXPECT_EQ(s.tokens, peer_ids(folder, r, test::scratch_dir("chat_ids_" + c.vocabulary)));
    EXPECT_EQ(labelled_runs(s, tok), c.assistant_runs);

    TokenizeOptions all;
    all.train_on_inputs = true;
    const Sample every = tokenize_with_chat_template(r, Format::kChat, *t.chat, tok, all);
    EXPECT_EQ(every.tokens, s.tokens);
    const bool leading_bos = s.tokens.front() == tok.bos_id();
    EXPECT_EQ(every.num_label_tokens(), static_cast<int64_t>(s.tokens.size()) - leading_bos);
}

INSTANTIATE_TEST_SUITE_P(
    RealVocabularies, ModelTemplate,
    ::testing::Values(Case{"llama3", {"Hi there!<|eot_id|>", "Bye.<|eot_id|>"}},
                      Case{"qwen2", {"Hi there!<|im_end|>", "Bye.<|im_end|>"}},
                      Case{"smollm2", {"Hi there!<|im_end|>", "Bye.<|im_end|>"}}),
    [](const auto& test_case) { return test_case.param.vocabulary; });

TEST(ModelTemplate, AlpacaRecordIsOneUserAndOneAssistantTurn) {
    const tokenizer::Tokenizer tok(test::shared_data("tokenizers/qwen2"));
    const ResolvedTemplate t = resolve_template(Template::kModel, tok);
    Record r;
    r.instruction = "Add the numbers.";
    r.input = "2 and 3";
    r.output = "5";
    const Sample s = tokenize_with_chat_template(r, Format::kAlpaca, *t.chat, tok, {});
    EXPECT_EQ(labelled_runs(s, tok), (std::vector<std::string>{"5<|im_end|>"}));
    const std::string text = tok.decode(s.tokens, /*skip_special_tokens=*/false);
    EXPECT_NE(text.find("<|im_start|>user\nAdd the numbers.\n\n2 and 3<|im_end|>"),
              std::string::npos)
        << text;
}

TEST(ModelTemplate, AutoFallsBackToAlpacaAndModelNeedsATemplate) {
    const tokenizer::Tokenizer sp(test::shared_data("stories260K/hf"));  // no chat template
    EXPECT_EQ(resolve_template(Template::kAuto, sp).tmpl, Template::kAlpaca);
    EXPECT_EQ(resolve_template(Template::kChatml, sp).tmpl, Template::kChatml);
    const std::string e = test::error_of([&] { resolve_template(Template::kModel, sp); });
    EXPECT_NE(e.find("data.template: model needs the tokenizer's chat template"), std::string::npos)
        << e;
    EXPECT_NE(e.find("stories260K/hf"), std::string::npos) << e;
}

TEST(ModelTemplate, DatasetOfChatRecordsWithoutABosToken) {
    // Qwen2 has no BOS: the named templates need one, the model's own template does not.
    const tokenizer::Tokenizer tok(test::shared_data("tokenizers/qwen2"));
    ASSERT_LT(tok.bos_id(), 0);
    const std::string dir = test::scratch_dir("chat_dataset_qwen2");
    std::ofstream(dir + "/chat.jsonl")
        << R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})"
        << "\n"
        << R"({"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]})"
        << "\n";
    DatasetOptions o;
    o.format = Format::kChat;
    o.tmpl = Template::kAuto;
    o.tokenize.max_seq_len = 256;
    const Dataset ds = load_dataset(dir + "/chat.jsonl", tok, o);
    ASSERT_EQ(ds.samples.size(), 2u);
    EXPECT_EQ(labelled_runs(ds.samples[1], tok), (std::vector<std::string>{"4<|im_end|>"}));
}

}  // namespace
}  // namespace qlora::data
