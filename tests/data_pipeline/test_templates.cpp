// Each template's exact rendered text, and which segments are completions.
#include <gtest/gtest.h>

#include "data/templates.h"

namespace qlora::data {
namespace {

std::string joined(const std::vector<Segment>& segs) {
    std::string s;
    for (const Segment& g : segs)
        s += (g.bos ? "<s>" : "") + (g.completion ? "[[" + g.text + "]]" : g.text);
    return s;
}

Record alpaca(const std::string& instruction, const std::string& input, const std::string& output) {
    Record r;
    r.instruction = instruction;
    r.input = input;
    r.output = output;
    return r;
}

Record chat(std::vector<Message> messages) {
    Record r;
    r.messages = std::move(messages);
    return r;
}

TEST(Templates, AlpacaWithAndWithoutInput) {
    EXPECT_EQ(
        joined(
            render(alpaca("Add the numbers.", "2 and 3", "5"), Format::kAlpaca, Template::kAlpaca)),
        "Below is an instruction that describes a task, paired with an input that provides further "
        "context. Write a response that appropriately completes the request.\n\n"
        "### Instruction:\nAdd the numbers.\n\n### Input:\n2 and 3\n\n### Response:\n[[5]]");
    EXPECT_EQ(joined(render(alpaca("Say hi.", "", "Hi!"), Format::kAlpaca, Template::kAlpaca)),
              "Below is an instruction that describes a task. Write a response that appropriately "
              "completes the request.\n\n### Instruction:\nSay hi.\n\n### Response:\n[[Hi!]]");
}

TEST(Templates, Llama2ChatWithSystemAndTwoTurns) {
    const Record r = chat({{"system", "Be brief."},
                           {"user", "Hi"},
                           {"assistant", "Hello."},
                           {"user", "Bye"},
                           {"assistant", "Goodbye."}});
    EXPECT_EQ(joined(render(r, Format::kChat, Template::kLlama2Chat)),
              "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST][[Hello.]]<s>[INST] Bye "
              "[/INST][[Goodbye.]]");
    EXPECT_EQ(
        joined(render(alpaca("Add.", "2 and 3", "5"), Format::kAlpaca, Template::kLlama2Chat)),
        "[INST] Add.\n\n2 and 3 [/INST][[5]]");
}

TEST(Templates, Chatml) {
    const Record r = chat({{"system", "S"},
                           {"user", "U1"},
                           {"assistant", "A1"},
                           {"user", "U2"},
                           {"assistant", "A2"}});
    EXPECT_EQ(
        joined(render(r, Format::kChat, Template::kChatml)),
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\n"
        "[[A1<|im_end|>]]\n<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n[[A2<|im_end|>]"
        "]");
}

TEST(Templates, PlainAndText) {
    EXPECT_EQ(joined(render(chat({{"system", "S"}, {"user", "U"}, {"assistant", "A"}}),
                            Format::kChat, Template::kPlain)),
              "S\n\nU\n[[A]]");
    Record t;
    t.text = "Once upon a time.";
    EXPECT_EQ(joined(render(t, Format::kText, Template::kChatml)), "[[Once upon a time.]]");
}

TEST(Templates, ChatUnderAlpacaAndPromptsForGeneration) {
    EXPECT_EQ(joined(render(chat({{"system", "Sys."},
                                  {"user", "Q1"},
                                  {"assistant", "A1"},
                                  {"user", "Q2"},
                                  {"assistant", "A2"}}),
                            Format::kChat, Template::kAlpaca)),
              "Sys.\n\n### Instruction:\nQ1\n\n### Response:\n[[A1]]\n\n### Instruction:\nQ2\n\n"
              "### Response:\n[[A2]]");
    EXPECT_EQ(render_prompt("Hi", Template::kChatml),
              "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    EXPECT_EQ(render_prompt("Hi", Template::kLlama2Chat), "[INST] Hi [/INST]");
}

}  // namespace
}  // namespace qlora::data
