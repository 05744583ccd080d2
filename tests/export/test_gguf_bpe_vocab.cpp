// GGUF vocabulary of tokenizer.json (byte-level BPE) models: llama.cpp's pre-tokenizer names, the
// tokens, types and merges as the tokenizer has them, padding ids up to config.vocab_size, the
// special ids, add_bos_token and the chat template.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "export/gguf_export.h"
#include "support/test_support.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace qlora::exporting {
namespace {

using nlohmann::json;

std::string folder(const std::string& name) {
    return qlora::test::shared_data("tokenizers/" + name);
}

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in);
}

TEST(GgufBpeVocab, NamesLlamaCppPreTokenizers) {
    const std::pair<const char*, const char*> expected[] = {
        {"llama3", "llama-bpe"}, {"qwen2", "qwen2"}, {"gpt2", "gpt-2"}, {"smollm2", "smollm"}};
    for (const auto& [name, pre] : expected) {
        const tokenizer::Tokenizer tok(folder(name));
        EXPECT_EQ(llama_cpp_pre_tokenizer(tok.hf()->pre_tokenizer_config(), name), pre) << name;
    }
}

TEST(GgufBpeVocab, RefusesPreTokenizersLlamaCppDoesNotName) {
    const json whitespace = {{"type", "Whitespace"}};
    EXPECT_NE(qlora::test::error_of([&] {
                  llama_cpp_pre_tokenizer(whitespace, "t.json");
              }).find("not one llama.cpp knows by name"),
              std::string::npos);
    json llama3 = read_json(folder("llama3") + "/tokenizer.json")["pre_tokenizer"];
    llama3["pretokenizers"][0]["pattern"]["Regex"] = "\\p{L}+";
    EXPECT_THROW(llama_cpp_pre_tokenizer(llama3, "t.json"), Error);
}

TEST(GgufBpeVocab, IsTheTokenizersVocabularyPaddedToTheConfig) {
    for (const char* name : {"llama3", "qwen2", "smollm2"}) {
        const tokenizer::Tokenizer tok(folder(name));
        model::LlamaConfig config;
        config.vocab_size = tok.vocab_size() + 64;  // Qwen's embeddings are larger, too
        const GgufVocab v = load_gguf_vocab(folder(name), config);
        const json file = read_json(folder(name) + "/tokenizer.json");
        const json tokenizer_config = read_json(folder(name) + "/tokenizer_config.json");
        EXPECT_EQ(v.model, "gpt2");
        ASSERT_EQ(v.tokens.size(), static_cast<size_t>(config.vocab_size));
        EXPECT_TRUE(v.scores.empty());
        for (int64_t id = 0; id < tok.vocab_size(); ++id) {
            ASSERT_EQ(v.tokens[static_cast<size_t>(id)], tok.piece(id)) << name << " id " << id;
        }
        for (const json& added : file["added_tokens"]) {
            const auto id = added["id"].get<size_t>();
            EXPECT_EQ(v.tokens[id], added["content"].get<std::string>());
            if (added["special"].get<bool>()) {
                EXPECT_EQ(v.types[id], 3) << name << " id " << id;  // CONTROL
            }
        }
        EXPECT_EQ(v.tokens.back(), "[PAD" + std::to_string(config.vocab_size - 1) + "]");
        EXPECT_EQ(v.types.back(), 5);  // UNUSED
        ASSERT_EQ(v.merges.size(), file["model"]["merges"].size());
        const json& first = file["model"]["merges"][0];
        EXPECT_EQ(v.merges[0], first.is_string() ? first.get<std::string>()
                                                 : first[0].get<std::string>() + " " +
                                                       first[1].get<std::string>());
        EXPECT_EQ(v.bos_id, tok.bos_id());
        EXPECT_EQ(v.eos_id, tok.piece_to_id(tokenizer_config["eos_token"].get<std::string>()));
        EXPECT_EQ(v.add_bos, std::string(name) == "llama3") << name;  // only its template adds BOS
        ASSERT_EQ(v.chat_templates.size(), tokenizer_config.contains("chat_template") ? 1u : 0u);
        if (!v.chat_templates.empty()) {
            EXPECT_EQ(v.chat_templates[0].first, "");
            EXPECT_EQ(v.chat_templates[0].second,
                      tokenizer_config["chat_template"].get<std::string>());
        }
    }
}

}  // namespace
}  // namespace qlora::exporting
