// qlora-generate --chat driven through a pseudo-terminal (scripts/drive_pty.py types the turns):
// stories260K with a chat template that concatenates the turns, greedy. Each reply must be what
// qlora-generate --prompt gives for the conversation rendered so far, so the second reply shows
// the first turn and reply stayed in the context.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "support/test_support.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;

// stories260K with a tokenizer_config.json whose chat template writes each message's content,
// an assistant message followed by a newline.
std::string chat_model(const std::string& dir) {
    const std::string model = dir + "/model";
    fs::create_directories(model);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"}) {
        fs::copy_file(test::shared_data(std::string("stories260K/hf/") + f), model + "/" + f);
    }
    nlohmann::json config;
    config["chat_template"] =
        "{% for m in messages %}{{ m.content }}{% if m.role == 'assistant' %}{{ '\\n' }}"
        "{% endif %}{% endfor %}";  // an expression: trim_blocks drops a newline after a tag
    std::ofstream(model + "/tokenizer_config.json") << config.dump();
    return model;
}

std::string trim(const std::string& s) {
    const size_t b = s.find_first_not_of(" \r\n");
    const size_t e = s.find_last_not_of(" \r\n");
    return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// qlora-generate --prompt P: the text printed after the prompt itself.
std::string continuation(const std::string& model, const std::string& prompt) {
    // stdout alone (run_command adds 2>&1 after the whole command).
    const auto r = test::run_command("{ " + test::tool("qlora-generate") + " --model " + model +
                                     " --no-bos -n 8 -t 0 --threads 1 --prompt '" + prompt +
                                     "' 2>/dev/null; }");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.rfind(prompt, 0), 0u) << r.output;
    return trim(r.output.substr(std::min(prompt.size(), r.output.size())));
}

TEST(GenerateChat, TwoTurnsThroughAPseudoTerminal) {
    const std::string dir = test::scratch_dir("generate_chat");
    const std::string model = chat_model(dir);
    std::ofstream(dir + "/turns.json") << R"(["Once upon a time", "The end"])";
    const std::string command = test::python() + " " + QLORA_SOURCE_DIR +
                                "/scripts/drive_pty.py '> ' " + dir + "/turns.json " + dir +
                                "/out.json -- " + test::tool("qlora-generate") + " --model " +
                                model + " --chat -n 8 -t 0 --threads 1";
    const auto run = test::run_command(command);
    ASSERT_EQ(run.exit_code, 0) << run.output;
    std::ifstream in(dir + "/out.json");
    const nlohmann::json out = nlohmann::json::parse(in);
    const std::string shown = out["output"].get<std::string>();
    ASSERT_EQ(out["exit"].get<int>(), 0) << shown;

    // "> " + echoed turn + "\r\n" + reply + "\r\n", then the next "> ".
    std::vector<std::string> replies;
    for (size_t at = shown.find("> "); at != std::string::npos;) {
        const size_t next = shown.find("> ", at + 2);
        const std::string turn =
            shown.substr(at + 2, next == std::string::npos ? std::string::npos : next - at - 2);
        const size_t eol = turn.find('\n');
        if (eol != std::string::npos) replies.push_back(trim(turn.substr(eol + 1)));
        at = next;
    }
    ASSERT_GE(replies.size(), 2u) << shown;
    const std::string first = continuation(model, "Once upon a time");
    ASSERT_FALSE(first.empty());
    EXPECT_EQ(replies[0], first) << shown;
    // Turn two continues the whole rendered conversation: turn, reply (as decoded on its own:
    // SentencePiece drops the leading space of its first piece), newline, turn.
    const std::string history = "Once upon a time" + first + "\nThe end";
    EXPECT_EQ(replies[1], continuation(model, history)) << shown;
}

TEST(GenerateChat, NeedsAChatTemplateAndOnePromptMode) {
    const std::string stories = test::shared_data("stories260K/hf");
    auto r = test::run_command(test::tool("qlora-generate") + " --model " + stories +
                               " --chat < /dev/null");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("has no chat template"), std::string::npos) << r.output;
    r = test::run_command(test::tool("qlora-generate") + " --model " + stories);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("give --prompt or --chat"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qlora
