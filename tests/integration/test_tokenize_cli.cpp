// qlora-tokenize against transformers: --text / --file / --jsonl ids with and without special
// tokens equal AutoTokenizer's, --decode gives back its decode, --chat renders what
// apply_chat_template(tokenize=False) renders, and bad input exits 2 with one line naming the
// problem.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "support/test_support.h"

namespace qlora {
namespace {

using nlohmann::json;

std::string tokenize_tool() { return test::tool("qlora-tokenize"); }

std::string model(const std::string& name) { return test::shared_data("tokenizers/" + name); }

std::vector<std::string> lines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// The stdout lines of a Python `script` (written to the scratch folder `name`) run by the setup
// venv with `args`; stderr (transformers' warnings) is dropped.
std::vector<std::string> python_lines(const std::string& name, const std::string& script,
                                      const std::string& args) {
    const std::string file = test::scratch_dir(name) + "/script.py";
    std::ofstream(file) << script;
    const auto r =
        test::run_command("{ " + test::python() + " " + file + " " + args + " 2>/dev/null; }");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return lines(r.output);
}

// transformers' view of `docs` (one JSONL record per line): ids, ids without special tokens,
// decode of the latter.
std::vector<json> transformers_view(const std::string& folder, const std::string& docs) {
    const std::string script =
        "import json,sys\n"
        "from transformers import AutoTokenizer\n"
        "t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "for line in open(sys.argv[2], encoding='utf-8'):\n"
        "    x = json.loads(line)['text']\n"
        "    plain = t(x, add_special_tokens=False).input_ids\n"
        "    print(json.dumps({'ids': t(x).input_ids, 'plain': plain,\n"
        "                      'decoded': t.decode(plain)}, ensure_ascii=False))\n";
    std::vector<json> out;
    for (const std::string& line : python_lines("tokenize_cli_script", script, folder + " " + docs))
        out.push_back(json::parse(line));
    return out;
}

std::string write_docs(const std::string& dir) {
    const std::string path = dir + "/docs.jsonl";
    std::ofstream out(path, std::ios::binary);
    for (const char* text :
         {"Hello world", "<|im_start|>user\nHi!<|im_end|>\n", "I'LL pay $1,234.56 \xe2\x82\xac",
          "\xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9 caf\xc3\xa9",
          "  tabs\tand\r\nCRLF  ", "<|begin_of_text|><|eot_id|>"}) {
        out << json{{"text", text}}.dump() << '\n';
    }
    return path;
}

class TokenizeCli : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenizeCli, MatchesTransformers) {
    const std::string dir = test::scratch_dir("tokenize_cli_" + GetParam());
    const std::string docs = write_docs(dir);
    const std::vector<json> expected = transformers_view(model(GetParam()), docs);
    ASSERT_EQ(expected.size(), 6u);
    const std::string base = tokenize_tool() + " --model " + model(GetParam());

    auto r = test::run_command(base + " --jsonl " + docs);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto got = lines(r.output);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(json::parse(got[i]), expected[i]["ids"]);

    r = test::run_command(base + " --no-special-tokens --jsonl " + docs);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    got = lines(r.output);
    ASSERT_EQ(got.size(), expected.size());
    std::string arrays;
    for (size_t i = 0; i < got.size(); ++i) {
        EXPECT_EQ(json::parse(got[i]), expected[i]["plain"]);
        arrays += expected[i]["plain"].dump() + "\n";
    }

    r = test::run_command(base + " --text 'Hello world'");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(json::parse(r.output), expected[0]["ids"]);
    std::ofstream(dir + "/doc.txt", std::ios::binary) << "Hello world";
    r = test::run_command(base + " --file " + dir + "/doc.txt");
    EXPECT_EQ(json::parse(r.output), expected[0]["ids"]);

    std::ofstream(dir + "/ids.txt") << arrays;
    r = test::run_command(base + " --decode --file " + dir + "/ids.txt");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    got = lines(r.output);
    ASSERT_EQ(got.size(), expected.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(json::parse(got[i]), expected[i]["decoded"]);
}

INSTANTIATE_TEST_SUITE_P(RealVocabularies, TokenizeCli,
                         ::testing::Values("llama3", "qwen2", "gpt2", "smollm2"),
                         [](const auto& test_case) { return test_case.param; });

TEST(TokenizeCli, BadInputExitsTwoWithOneLine) {
    const std::string dir = test::scratch_dir("tokenize_cli_bad");
    const std::string base = tokenize_tool() + " --model " + model("gpt2");
    std::ofstream(dir + "/bad.jsonl") << "{\"text\": \"ok\"}\n{\"txt\": 1}\n";
    std::ofstream(dir + "/broken.jsonl") << "{\"text\": \n";
    const std::pair<std::string, std::string> cases[] = {
        {base + " --jsonl " + dir + "/bad.jsonl", "bad.jsonl:2"},
        {base + " --jsonl " + dir + "/broken.jsonl", "not valid JSON"},
        {base + " --decode --text '[1, \"x\"]'", "must be integers"},
        {base + " --decode --text 'nope'", "JSON array"},
        {base + " --decode --text '[50257]'", "token id 50257"},
        {base + " --text a --jsonl " + dir + "/bad.jsonl", "excludes"},
        {base, "give one of --text, --file, --jsonl or --chat"},
        {tokenize_tool() + " --model " + dir + " --text a", "tokenizer not found"},
        {base + " --text \"$(printf '\\377')\"", "not valid UTF-8"},
    };
    for (const auto& [command, message] : cases) {
        const auto r = test::run_command(command);
        EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.output;
        EXPECT_NE(r.output.find(message), std::string::npos) << command << "\n" << r.output;
        EXPECT_EQ(lines(r.output).size(), 1u) << command << "\n" << r.output;
    }
}

// transformers' rendering of each {"messages"} line of `chats` (the folder's own template, or the
// .jinja file `template_file` when not empty).
std::vector<std::string> transformers_chats(const std::string& folder, const std::string& chats,
                                            const std::string& template_file, bool generation) {
    const std::string script =
        "import json,sys\n"
        "from transformers import AutoTokenizer\n"
        "t = AutoTokenizer.from_pretrained(sys.argv[1])\n"
        "kw = {'chat_template': open(sys.argv[3]).read()} if sys.argv[3] != '-' else {}\n"
        "for line in open(sys.argv[2], encoding='utf-8'):\n"
        "    x = json.loads(line)\n"
        "    print(json.dumps(t.apply_chat_template(x['messages'], tokenize=False,\n"
        "        add_generation_prompt=sys.argv[4] == '1', **kw)))\n";
    return python_lines("tokenize_cli_chat_script", script,
                        folder + " " + chats + " " + (template_file.empty() ? "-" : template_file) +
                            " " + (generation ? "1" : "0"));
}

// Each line parsed: Python's json.dumps escapes non-ASCII, we write it as UTF-8.
std::vector<json> json_lines(const std::vector<std::string>& text_lines) {
    std::vector<json> out;
    for (const std::string& line : text_lines) out.push_back(json::parse(line));
    return out;
}

TEST(TokenizeCli, ChatRendersAsTransformers) {
    const std::string dir = test::scratch_dir("tokenize_cli_chat");
    const std::string chats = dir + "/chats.jsonl";
    std::ofstream(chats)
        << R"({"messages": [{"role": "user", "content": "Hi"}]})"
        << "\n"
        << R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "Grüße 🙂"}]})"
        << "\n";
    const std::string qwen_file =
        test::shared_data("chat_templates/Qwen-Qwen2.5-7B-Instruct.jinja");
    for (const std::string vocabulary : {"llama3", "qwen2", "smollm2"}) {
        for (const std::string& tmpl : {std::string(), qwen_file}) {
            for (const bool generation : {false, true}) {
                const std::string command = tokenize_tool() + " --model " + model(vocabulary) +
                                            " --chat " + chats +
                                            (tmpl.empty() ? "" : " --template " + tmpl) +
                                            (generation ? " --add-generation-prompt" : "");
                const auto r = test::run_command(command);
                ASSERT_EQ(r.exit_code, 0) << command << "\n" << r.output;
                EXPECT_EQ(
                    json_lines(lines(r.output)),
                    json_lines(transformers_chats(model(vocabulary), chats, tmpl, generation)))
                    << command;
            }
        }
    }
}

TEST(TokenizeCli, ChatErrorsNameTheLineOrTheTemplatePlace) {
    const std::string dir = test::scratch_dir("tokenize_cli_chat_bad");
    std::ofstream(dir + "/bad.jsonl") << R"({"messages": [{"role": "user", "content": "x"}]})"
                                      << "\n"
                                      << R"({"msgs": 1})"
                                      << "\n";
    std::ofstream(dir + "/ok.jsonl") << R"({"messages": [{"role": "user", "content": "x"}]})"
                                     << "\n";
    std::ofstream(dir + "/broken.jinja") << "{% for m in messages %}\n{{ m.content }\n";
    const std::string base = tokenize_tool() + " --model " + model("qwen2");
    const std::pair<std::string, std::string> cases[] = {
        {base + " --chat " + dir + "/bad.jsonl", "bad.jsonl:2: expected an object with a"},
        {base + " --chat " + dir + "/ok.jsonl --template " + dir + "/broken.jinja", "broken.jinja"},
        {tokenize_tool() + " --model " + test::shared_data("stories260K/hf") + " --chat " + dir +
             "/ok.jsonl",
         "has no chat template"},
        {base + " --chat " + dir + "/ok.jsonl --decode", "--chat renders text"},
    };
    for (const auto& [command, message] : cases) {
        const auto r = test::run_command(command);
        EXPECT_EQ(r.exit_code, 2) << command << "\n" << r.output;
        EXPECT_NE(r.output.find(message), std::string::npos) << command << "\n" << r.output;
        EXPECT_EQ(lines(r.output).size(), 1u) << command << "\n" << r.output;
    }
    // The template error names the line and column of the construct.
    const auto r = test::run_command(base + " --chat " + dir + "/ok.jsonl --template " + dir +
                                     "/broken.jinja");
    EXPECT_NE(r.output.find(":2:"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qlora
