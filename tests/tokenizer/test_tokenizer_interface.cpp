// The Tokenizer facade over both backends: which file a folder's tokenizer comes from, special
// ids from tokenizer_config.json and generation_config.json, the in-memory constructor, streaming
// decode on text whose characters span several tokens, and one-line errors for bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "support/test_support.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace qlora::tokenizer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string vocab(const std::string& name) {
    return qlora::test::shared_data("tokenizers/" + name);
}

json read_json(const std::string& path) {
    std::ifstream in(path);
    return json::parse(in);
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

TEST(TokenizerFolder, PrefersTokenizerJsonAsTransformersDoes) {
    const std::string both = qlora::test::scratch_dir("tokenizer_both");
    fs::create_symlink(vocab("smollm2") + "/tokenizer.json", both + "/tokenizer.json");
    fs::create_symlink(qlora::test::shared_data("stories260K/tok512.model"),
                       both + "/tokenizer.model");
    EXPECT_EQ(Tokenizer(both).kind(), BackendKind::kHfJson);
    EXPECT_EQ(Tokenizer(both).vocab_size(), 49152);

    const std::string sp_only = qlora::test::scratch_dir("tokenizer_sp_only");
    fs::create_symlink(qlora::test::shared_data("stories260K/tok512.model"),
                       sp_only + "/tokenizer.model");
    const Tokenizer sp(sp_only);
    EXPECT_EQ(sp.kind(), BackendKind::kSentencePiece);
    EXPECT_EQ(sp.encode_with_offsets("Once upon", true).ids, sp.encode("Once upon", true));

    const std::string empty = qlora::test::scratch_dir("tokenizer_none");
    EXPECT_NE(qlora::test::error_of([&] { Tokenizer t(empty); }).find("tokenizer not found"),
              std::string::npos);
}

TEST(TokenizerFolder, SpecialIdsComeFromTheConfigFiles) {
    for (const char* name : {"llama3", "qwen2", "gpt2", "smollm2"}) {
        const Tokenizer tok(vocab(name));
        const json config = read_json(vocab(name) + "/tokenizer_config.json");
        const json generation = read_json(vocab(name) + "/generation_config.json");
        auto id_of = [&](const char* key) -> int64_t {
            if (!config.contains(key) || config[key].is_null()) return -1;
            return tok.piece_to_id(config[key].get<std::string>());
        };
        EXPECT_EQ(tok.bos_id(), id_of("bos_token")) << name;
        EXPECT_EQ(tok.eos_id(), id_of("eos_token")) << name;
        EXPECT_EQ(tok.pad_id(), id_of("pad_token")) << name;
        // eos_ids: the tokenizer's EOS first, then generation_config.json's, without repeats.
        std::vector<int64_t> expected = {tok.eos_id()};
        const json& g = generation["eos_token_id"];
        for (const json& id : g.is_array() ? g : json::array({g})) {
            if (std::find(expected.begin(), expected.end(), id.get<int64_t>()) == expected.end()) {
                expected.push_back(id.get<int64_t>());
            }
        }
        EXPECT_EQ(tok.eos_ids(), expected) << name;
        EXPECT_TRUE(tok.is_special(tok.eos_id())) << name;
        EXPECT_EQ(tok.piece_type(tok.eos_id()), PieceType::kControl) << name;
    }
}

TEST(TokenizerFolder, EncodeWithBosFollowsThePostProcessor) {
    const Tokenizer llama3(vocab("llama3"));
    const Tokenizer qwen2(vocab("qwen2"));
    // Llama 3's template adds <|begin_of_text|>; Qwen2's adds nothing.
    EXPECT_EQ(llama3.encode("Hi", true).front(), llama3.bos_id());
    EXPECT_EQ(llama3.encode("Hi", true).size(), llama3.encode("Hi", false).size() + 1);
    EXPECT_EQ(qwen2.encode("Hi", true), qwen2.encode("Hi", false));
    EXPECT_EQ(qwen2.encode("Hi", false, true).back(), qwen2.eos_id());
    EXPECT_TRUE(llama3.adds_bos());
    EXPECT_FALSE(qwen2.adds_bos());
}

TEST(TokenizerFromJson, EqualsTheFolderTokenizer) {
    const json file = read_json(vocab("smollm2") + "/tokenizer.json");
    const json config = read_json(vocab("smollm2") + "/tokenizer_config.json");
    const Tokenizer memory = Tokenizer::from_hf_json(file, config, "smollm2.gguf");
    const Tokenizer folder(vocab("smollm2"));
    const std::string text = "<|im_start|>user\nHow many r's in 'strawberry'? 12345<|im_end|>";
    EXPECT_EQ(memory.encode_with_offsets(text).ids, folder.encode_with_offsets(text).ids);
    EXPECT_EQ(memory.eos_id(), folder.eos_id());
    EXPECT_EQ(memory.vocab_size(), folder.vocab_size());
    EXPECT_EQ(memory.path(), "smollm2.gguf");
    const Tokenizer no_config = Tokenizer::from_hf_json(file, json(), "bare");
    EXPECT_EQ(no_config.bos_id(), -1);
}

TEST(TokenizerOffsets, CoverTheTextTheIdsStandFor) {
    const Tokenizer tok(vocab("llama3"));
    const std::string text = "<|start_header_id|>assistant<|end_header_id|>\n\nSure: 42!";
    const Encoding e = tok.encode_with_offsets(text, true);
    ASSERT_EQ(e.ids.size(), e.offsets.size());
    EXPECT_EQ(e.offsets[0], (std::pair<size_t, size_t>{0, 0}));  // the added <|begin_of_text|>
    std::string joined;
    for (size_t i = 1; i < e.ids.size(); ++i) {
        joined += text.substr(e.offsets[i].first, e.offsets[i].second - e.offsets[i].first);
    }
    EXPECT_EQ(joined, text);
    EXPECT_EQ(text.substr(e.offsets[2].first, e.offsets[2].second - e.offsets[2].first),
              "assistant");
}

TEST(StreamDecoder, HoldsBackCharactersSplitAcrossTokens) {
    const Tokenizer tok(vocab("gpt2"));
    // Rare CJK and emoji: GPT-2 spells them with one token per byte or two.
    const std::string text =
        "\xe9\xbe\x98\xf0\x9f\x98\x80 \xf0\x9f\xa7\x91\xe2\x80\x8d\xf0\x9f\x8e\x84 ok";
    const std::vector<int64_t> ids = tok.encode(text, false);
    ASSERT_GT(ids.size(), 6u);
    StreamDecoder stream(tok);
    std::string out;
    size_t held = 0;
    for (int64_t id : ids) {
        const std::string piece = stream.step(id);
        if (piece.empty()) ++held;
        EXPECT_EQ(piece.find("\xEF\xBF\xBD"), std::string::npos);  // never a U+FFFD
        out += piece;
    }
    out += stream.finish();
    EXPECT_EQ(out, text);
    EXPECT_GT(held, 0u);
    // A character cut off at the end of the stream comes out of finish() as decode() has it.
    const std::vector<int64_t> rare = tok.encode("\xe9\xbe\x98", false);
    ASSERT_GE(rare.size(), 2u);
    const std::vector<int64_t> cut_ids(rare.begin(), rare.end() - 1);
    StreamDecoder cut(tok);
    for (int64_t id : cut_ids) EXPECT_EQ(cut.step(id), "");
    EXPECT_EQ(cut.finish(), tok.decode(cut_ids));
}

TEST(TokenizerErrors, AreOneLineAndNameTheProblem) {
    const Tokenizer tok(vocab("gpt2"));
    EXPECT_NE(qlora::test::error_of([&] { tok.encode("bad \xff byte"); }).find("not valid UTF-8"),
              std::string::npos);
    EXPECT_NE(qlora::test::error_of([&] {
                  tok.decode({1, 50257});
              }).find("token id 50257"),
              std::string::npos);
    EXPECT_THROW(tok.piece(-1), Error);

    json file = read_json(vocab("gpt2") + "/tokenizer.json");
    json wordpiece = file;
    wordpiece["model"]["type"] = "WordPiece";
    EXPECT_NE(qlora::test::error_of([&] {
                  Tokenizer::from_hf_json(wordpiece, json(), "wp.json");
              }).find("'WordPiece' is not supported"),
              std::string::npos);
    json unigram = file;
    unigram["model"]["type"] = "Unigram";
    EXPECT_THROW(Tokenizer::from_hf_json(unigram, json(), "u.json"), Error);
    json bad_merge = file;
    bad_merge["model"]["merges"][3] = "nosuchtoken t";
    EXPECT_NE(qlora::test::error_of([&] {
                  Tokenizer::from_hf_json(bad_merge, json(), "m.json");
              }).find("merges[3]"),
              std::string::npos);
    json bad_regex = read_json(vocab("llama3") + "/tokenizer.json");
    bad_regex["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = "(unclosed";
    EXPECT_NE(qlora::test::error_of([&] {
                  Tokenizer::from_hf_json(bad_regex, json(), "r.json");
              }).find("does not compile"),
              std::string::npos);
    json bad_type = file;
    bad_type["decoder"] = {{"type", "CTC"}};
    EXPECT_NE(qlora::test::error_of([&] {
                  Tokenizer::from_hf_json(bad_type, json(), "d.json");
              }).find("decoder type 'CTC' is not supported"),
              std::string::npos);
    EXPECT_THROW(Tokenizer::from_hf_json(json::array(), json(), "x.json"), Error);

    const std::string dir = qlora::test::scratch_dir("tokenizer_bad_json");
    write_file(dir + "/tokenizer.json", "{not json");
    EXPECT_NE(qlora::test::error_of([&] { Tokenizer t(dir); }).find("not valid JSON"),
              std::string::npos);
}

}  // namespace
}  // namespace qlora::tokenizer
