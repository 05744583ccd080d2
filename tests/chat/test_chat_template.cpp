// Chat templates against transformers: every template of ../shared/data/chat_templates/ and of the
// shared tokenizer folders, over the conversation corpus tests/data/chat/conversations.json, with
// add_generation_prompt both ways, renders byte-identically to apply_chat_template(...,
// tokenize=False) run by the test (scripts/render_chat_templates.py); where transformers raises,
// we raise with the template's own message. Plus loading: named template lists, AddedToken dicts,
// chat_template.jinja beside the config.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "chat/chat_template.h"
#include "support/test_support.h"

namespace qlora::chat {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

ojson read_json(const std::string& path) {
    std::ifstream in(path);
    EXPECT_TRUE(in) << path;
    return ojson::parse(in);
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::vector<std::string> template_specs() {
    std::vector<std::string> specs;
    for (const char* folder : {"llama3", "qwen2", "smollm2"}) {
        specs.push_back("folder:" + qlora::test::shared_data(std::string("tokenizers/") + folder));
    }
    std::vector<std::string> files;
    for (const auto& e : fs::directory_iterator(qlora::test::shared_data("chat_templates"))) {
        if (e.path().extension() == ".jinja") files.push_back("file:" + e.path().string());
    }
    std::sort(files.begin(), files.end());
    specs.insert(specs.end(), files.begin(), files.end());
    return specs;
}

ChatTemplate load(const std::string& spec, const ojson& special_tokens) {
    const std::string path = spec.substr(spec.find(':') + 1);
    if (spec.rfind("folder:", 0) == 0) return ChatTemplate::from_model_folder(path);
    SpecialTokens tokens;
    for (const auto& [k, v] : special_tokens.items()) tokens[k] = v.get<std::string>();
    return ChatTemplate::from_file(path, tokens);
}

TEST(ChatTemplate, RendersLikeTransformersOverTheCorpus) {
    const auto specs = template_specs();
    ASSERT_EQ(specs.size(), 18u);  // 3 tokenizer folders + 15 template files
    const std::string corpus_path = qlora::test::test_data("chat/conversations.json");
    const std::string expected_path = qlora::test::scratch_dir("chat_parity") + "/expected.json";
    std::string command = qlora::test::python() + " " + QLORA_SOURCE_DIR +
                          "/scripts/render_chat_templates.py " + corpus_path + " " + expected_path;
    for (const auto& s : specs) command += " '" + s + "'";
    const auto r = qlora::test::run_command(command);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const ojson corpus = read_json(corpus_path);
    std::map<std::string, ojson> conversations;
    for (const auto& c : corpus) conversations[c["name"].get<std::string>()] = c;
    const ojson expected = read_json(expected_path);
    ASSERT_EQ(expected.size(), specs.size() * corpus.size() * 2);

    std::map<std::string, ChatTemplate> templates;
    size_t identical = 0, raised = 0;
    std::set<std::string> templates_that_render;
    for (const auto& want : expected) {
        const std::string spec = want["spec"].get<std::string>();
        if (!templates.count(spec)) templates.emplace(spec, load(spec, want["special_tokens"]));
        const ChatTemplate& t = templates.at(spec);
        const ojson& conv = conversations.at(want["conversation"].get<std::string>());
        const bool agp = want["add_generation_prompt"].get<bool>();
        SCOPED_TRACE(spec + " x " + conv["name"].get<std::string>() +
                     (agp ? " +generation prompt" : ""));
        std::string ours, error;
        try {
            ours = t.render(conv["messages"], agp, conv.value("tools", ojson()),
                            conv.value("kwargs", ojson::object()));
        } catch (const qlora::Error& e) {
            error = e.what();
        }
        if (want.contains("output")) {
            ASSERT_TRUE(error.empty()) << error;
            EXPECT_EQ(ours, want["output"].get<std::string>());
            identical += ours == want["output"].get<std::string>();
            templates_that_render.insert(spec);
        } else {
            ASSERT_FALSE(error.empty())
                << "transformers raised " << want["error"] << "; we rendered " << ours;
            EXPECT_NE(error.find(want["error"].get<std::string>()), std::string::npos)
                << "ours: " << error << "\ntransformers: " << want["error"];
            ++raised;
        }
    }
    std::cout << "[chat] " << specs.size() << " templates x " << corpus.size()
              << " conversations x 2 = " << expected.size() << " renders: " << identical
              << " byte-identical, " << raised << " raise as transformers does\n";
    EXPECT_EQ(identical + raised, expected.size());
    EXPECT_EQ(templates_that_render.size(), specs.size());
}

TEST(ChatTemplate, RaisesWithTheTemplatesOwnMessage) {
    const auto t = ChatTemplate::from_file(
        qlora::test::shared_data("chat_templates/google-gemma-2-2b-it.jinja"),
        {{"bos_token", "<bos>"}});
    const ojson messages =
        ojson::parse(R"([{"role": "system", "content": "x"}, {"role": "user", "content": "y"}])");
    const std::string error = qlora::test::error_of([&] { t.render(messages, true); });
    EXPECT_NE(error.find("google-gemma-2-2b-it.jinja:1:"), std::string::npos) << error;
    EXPECT_NE(error.find("TemplateError: System role not supported"), std::string::npos) << error;
}

TEST(ChatTemplate, LoadsNamedTemplatesAndAddedTokenDicts) {
    const std::string dir = qlora::test::scratch_dir("chat_named");
    write_text(dir + "/tokenizer_config.json", R"({
        "bos_token": {"content": "<B>", "lstrip": false, "normalized": false, "rstrip": false, "single_word": false},
        "eos_token": "<E>", "pad_token": null,
        "chat_template": [{"name": "default", "template": "{{ bos_token }}D{{ messages|length }}{{ eos_token }}{{ pad_token is defined }}"},
                          {"name": "tool_use", "template": "T{{ tools|length }}"}]})");
    const ojson messages = ojson::parse(R"([{"role": "user", "content": "hi"}])");
    const auto def = ChatTemplate::from_model_folder(dir);
    EXPECT_EQ(def.render(messages, false), "<B>D1<E>False");
    EXPECT_EQ(def.special_tokens().at("bos_token"), "<B>");
    EXPECT_EQ(def.render(nlohmann::json::parse(R"([{"role": "user", "content": "hi"}])"), false),
              "<B>D1<E>False");
    const auto tool = ChatTemplate::from_model_folder(dir, "tool_use");
    EXPECT_EQ(tool.render(messages, false, ojson::parse(R"([{"type": "function"}])")), "T1");
    const std::string missing =
        qlora::test::error_of([&] { ChatTemplate::from_model_folder(dir, "rag"); });
    EXPECT_NE(missing.find("no chat template named 'rag' (it has: default, tool_use)"),
              std::string::npos)
        << missing;

    write_text(dir + "/chat_template.jinja", "J{{ messages[0].content }}\n");
    EXPECT_EQ(ChatTemplate::from_model_folder(dir).render(messages, false),
              "Jhi");  // trailing newline dropped

    const std::string none_dir = qlora::test::scratch_dir("chat_none");
    write_text(none_dir + "/tokenizer_config.json", R"({"eos_token": "<E>"})");
    EXPECT_NE(qlora::test::error_of([&] {
                  ChatTemplate::from_model_folder(none_dir);
              }).find("no chat template"),
              std::string::npos);
    EXPECT_NE(qlora::test::error_of([&] {
                  def.render(ojson::array(), false);
              }).find("empty conversation"),
              std::string::npos);
}

TEST(ChatTemplate, SyntaxErrorsNameTheTemplateLineAndColumn) {
    const std::string error = qlora::test::error_of([] {
        ChatTemplate::from_string("ok\n{% for m in messages %}{{ m.content", "gguf:chat_template");
    });
    EXPECT_NE(error.find("gguf:chat_template:2:"), std::string::npos) << error;
    EXPECT_NE(error.find("TemplateSyntaxError"), std::string::npos) << error;
}

}  // namespace
}  // namespace qlora::chat
