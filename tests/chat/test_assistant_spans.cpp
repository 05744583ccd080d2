// Assistant-turn spans on the real Llama 3.1, Qwen2.5 and SmolLM2 templates of the shared tokenizer
// folders, against texts and spans written out by hand from each model's documented format.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "chat/assistant_spans.h"
#include "support/test_support.h"

namespace qlora::chat {
namespace {

using ojson = nlohmann::ordered_json;

const ojson kConversation = ojson::parse(R"([
    {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Bye"}, {"role": "assistant", "content": "See you."}])");

// Builds the expected text piece by piece: turns[i] is (text before, assistant text to learn).
struct Expected {
    std::string text;
    std::vector<ByteSpan> spans;
    void prompt(const std::string& s) { text += s; }
    void learn(const std::string& s) {
        spans.push_back({text.size(), text.size() + s.size()});
        text += s;
    }
};

void expect_spans(const RenderedChat& got, const Expected& want) {
    EXPECT_EQ(got.text, want.text);
    ASSERT_EQ(got.assistant_spans.size(), want.spans.size());
    for (size_t i = 0; i < want.spans.size(); ++i) {
        EXPECT_EQ(got.assistant_spans[i].begin, want.spans[i].begin) << "span " << i;
        EXPECT_EQ(got.assistant_spans[i].end, want.spans[i].end) << "span " << i;
    }
}

TEST(AssistantSpans, Llama31MasksContentAndEotId) {
    const auto t = ChatTemplate::from_model_folder(qlora::test::shared_data("tokenizers/llama3"));
    const ojson extra = {{"date_string", "26 Jul 2024"}};
    Expected want;
    want.prompt(
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: "
        "December 2023\n"
        "Today Date: 26 Jul "
        "2024\n\n<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n");
    want.learn("Hello!<|eot_id|>");
    want.prompt(
        "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|"
        "end_header_id|>\n\n");
    want.learn("See you.<|eot_id|>");
    expect_spans(render_with_assistant_spans(t, kConversation, nullptr, extra), want);
}

TEST(AssistantSpans, Qwen25MasksContentAndImEndNotTheNewline) {
    const auto t = ChatTemplate::from_model_folder(qlora::test::shared_data("tokenizers/qwen2"));
    Expected want;
    want.prompt(
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
        "assistant.<|im_end|>\n"
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    want.learn("Hello!<|im_end|>");
    want.prompt("\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n");
    want.learn("See you.<|im_end|>");
    want.prompt("\n");
    expect_spans(render_with_assistant_spans(t, kConversation), want);
}

TEST(AssistantSpans, SmolLM2WithSystemAndAnEmptyReply) {
    const auto t = ChatTemplate::from_model_folder(qlora::test::shared_data("tokenizers/smollm2"));
    const ojson conversation = ojson::parse(R"([
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Ça va ?"},
        {"role": "assistant", "content": "Oui ✓"}, {"role": "user", "content": "..."},
        {"role": "assistant", "content": ""}])");
    Expected want;
    want.prompt(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nÇa va "
        "?<|im_end|>\n<|im_start|>assistant\n");
    want.learn("Oui ✓<|im_end|>");
    want.prompt("\n<|im_start|>user\n...<|im_end|>\n<|im_start|>assistant\n");
    want.learn("<|im_end|>");
    want.prompt("\n");
    expect_spans(render_with_assistant_spans(t, conversation), want);
}

TEST(AssistantSpans, Qwen3EarlierTurnsAsTheWholeRenderHasThem) {
    // Qwen3 keeps an assistant turn's reasoning only after the last user message, so turn 1
    // renders differently once a later user message follows: its span is found by sentinel.
    const auto t =
        ChatTemplate::from_file(qlora::test::shared_data("chat_templates/Qwen-Qwen3-0.6B.jinja"),
                                {{"eos_token", "<|im_end|>"}});
    const ojson conversation = ojson::parse(R"([
        {"role": "user", "content": "17*3?"}, {"role": "assistant", "content": "51", "reasoning_content": "17*3=51"},
        {"role": "user", "content": "17*4?"}, {"role": "assistant", "content": "68", "reasoning_content": "17*4=68"}])");
    Expected want;
    want.prompt("<|im_start|>user\n17*3?<|im_end|>\n<|im_start|>assistant\n");
    want.learn("51<|im_end|>");
    want.prompt("\n<|im_start|>user\n17*4?<|im_end|>\n<|im_start|>assistant\n");
    want.learn("<think>\n17*4=68\n</think>\n\n68<|im_end|>");
    want.prompt("\n");
    expect_spans(render_with_assistant_spans(t, conversation), want);
}

TEST(AssistantSpans, RefusesTurnsItCannotLocate) {
    // Earlier replies upper-cased: neither prefix rendering nor the sentinel finds them verbatim.
    const auto t = ChatTemplate::from_string(
        "{% for m in messages %}{% if m.role == 'assistant' and not loop.last %}{{ m.content | "
        "upper }}"
        "{% else %}{{ m.content }}{% endif %}|{% endfor %}",
        "upper.jinja");
    const std::string error =
        qlora::test::error_of([&] { render_with_assistant_spans(t, kConversation); });
    EXPECT_NE(error.find("upper.jinja: assistant message 1"), std::string::npos) << error;
    EXPECT_NE(error.find("spans would be misplaced"), std::string::npos) << error;
}

}  // namespace
}  // namespace qlora::chat
