// gguf_hf_tokenizer on small hand-written GGUFs: the tokenizer.json pieces each tokenizer.ggml.*
// key decides (pre-tokenizer per tokenizer.ggml.pre, added tokens per token_type, BOS template,
// SentencePiece merges ranked by score), and one-line errors for what it cannot translate.
#include <gtest/gtest.h>

#include "export/gguf_writer.h"
#include "support/test_support.h"
#include "tokenizer/gguf_tokenizer_json.h"

namespace qlora::tokenizer {
namespace {

using qlora::test::error_of;

struct TinyVocab {
    std::string model = "gpt2";
    std::string pre = "llama-bpe";
    std::vector<std::string> tokens = {"<|begin|>", "a", "b", "ab", "\xc4\xa0"};
    std::vector<int32_t> types = {3, 1, 1, 1, 4};
    std::vector<float> scores = {0, -1, -2, -0.5f, -3};
    std::vector<std::string> merges = {"a b"};
    bool add_bos = true;
};

io::GgufReader write(const std::string& name, const TinyVocab& v) {
    const std::string path = qlora::test::scratch_dir("gguf_tok_" + name) + "/t.gguf";
    exporting::GgufWriter w(path);
    w.add_string("general.architecture", "llama");
    w.add_uint32("llama.context_length", 128);
    w.add_string("tokenizer.ggml.model", v.model);
    if (!v.pre.empty()) w.add_string("tokenizer.ggml.pre", v.pre);
    w.add_string_array("tokenizer.ggml.tokens", v.tokens);
    w.add_int32_array("tokenizer.ggml.token_type", v.types);
    if (v.model == "llama") w.add_float32_array("tokenizer.ggml.scores", v.scores);
    if (!v.merges.empty()) w.add_string_array("tokenizer.ggml.merges", v.merges);
    w.add_uint32("tokenizer.ggml.bos_token_id", 0);
    w.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);
    w.add_string("tokenizer.chat_template", "{{ messages }}");
    w.finish();
    return io::GgufReader(path);
}

TEST(GgufTokenizerJson, Gpt2LlamaBpe) {
    const HfTokenizerJson t = gguf_hf_tokenizer(write("bpe", TinyVocab{}));
    const auto& j = t.tokenizer;
    EXPECT_EQ(j["model"]["type"], "BPE");
    EXPECT_EQ(j["model"]["vocab"]["ab"], 3);
    EXPECT_EQ(j["model"]["merges"], nlohmann::json::array({{"a", "b"}}));
    EXPECT_EQ(j["model"]["ignore_merges"], true);  // Llama 3's BPE
    EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][0]["type"], "Split");
    EXPECT_EQ(j["pre_tokenizer"]["pretokenizers"][1]["use_regex"], false);
    ASSERT_EQ(j["added_tokens"].size(), 2u);
    EXPECT_EQ(j["added_tokens"][0]["content"], "<|begin|>");
    EXPECT_EQ(j["added_tokens"][0]["special"], true);   // CONTROL
    EXPECT_EQ(j["added_tokens"][1]["special"], false);  // USER_DEFINED
    EXPECT_EQ(j["post_processor"]["processors"][1]["single"][0]["SpecialToken"]["id"], "<|begin|>");
    EXPECT_EQ(t.tokenizer_config["bos_token"], "<|begin|>");
    EXPECT_EQ(t.tokenizer_config["chat_template"], "{{ messages }}");
    EXPECT_EQ(t.tokenizer_config["model_max_length"], 128);
}

TEST(GgufTokenizerJson, Gpt2PreTokenizers) {
    TinyVocab v;
    v.add_bos = false;
    v.pre = "qwen2";
    auto qwen = gguf_hf_tokenizer(write("qwen", v)).tokenizer;
    EXPECT_EQ(qwen["normalizer"]["type"], "NFC");
    EXPECT_EQ(qwen["post_processor"]["type"], "ByteLevel");
    v.pre = "smollm";
    auto smol = gguf_hf_tokenizer(write("smol", v)).tokenizer;
    EXPECT_EQ(smol["pre_tokenizer"]["pretokenizers"][0]["type"], "Digits");
    EXPECT_EQ(smol["model"]["ignore_merges"], false);
    v.pre = "gpt-2";
    EXPECT_EQ(gguf_hf_tokenizer(write("gpt2", v)).tokenizer["pre_tokenizer"]["use_regex"], true);
}

TEST(GgufTokenizerJson, SentencePieceMergesFollowTheScores) {
    TinyVocab v;
    v.model = "llama";
    v.pre = "";
    v.merges = {};
    v.tokens = {"<unk>", "<s>", "a", "b", "c", "ab", "bc", "abc", "<0x41>"};
    v.types = {2, 3, 1, 1, 1, 1, 1, 1, 6};
    v.scores = {0, 0, -1, -1, -1, -3, -2, -4, 0};
    const auto j = gguf_hf_tokenizer(write("spm", v)).tokenizer;
    // bc (-2) before ab (-3) before abc's splits (-4: a+bc, then ab+c by ids)
    EXPECT_EQ(j["model"]["merges"],
              nlohmann::json::array({{"b", "c"}, {"a", "b"}, {"a", "bc"}, {"ab", "c"}}));
    EXPECT_EQ(j["model"]["byte_fallback"], true);
    EXPECT_EQ(j["model"]["unk_token"], "<unk>");
    EXPECT_EQ(j["pre_tokenizer"]["type"], "Metaspace");
    EXPECT_EQ(j["post_processor"]["single"][0]["SpecialToken"]["id"], "<unk>");  // bos id 0 here
    EXPECT_EQ(j["added_tokens"].size(), 2u);                                     // <unk> and <s>
}

TEST(GgufTokenizerJson, UntranslatableTokenizersAreOneLineErrors) {
    TinyVocab v;
    v.pre = "deepseek-coder";
    auto bad_pre = write("badpre", v);
    EXPECT_EQ(error_of([&] { gguf_hf_tokenizer(bad_pre); }),
              bad_pre.path() +
                  ": key 'tokenizer.ggml.pre': pre-tokenizer 'deepseek-coder' is not supported "
                  "(expected one of gpt-2, smollm, llama-bpe, qwen2)");
    v.pre = "";
    auto no_pre = write("nopre", v);
    EXPECT_NE(error_of([&] {
                  gguf_hf_tokenizer(no_pre);
              }).find("pre-tokenizer 'default' is not supported"),
              std::string::npos);
    v.pre = "gpt-2";
    v.merges = {"a b", "ab"};
    auto bad_merge = write("badmerge", v);
    EXPECT_EQ(
        error_of([&] { gguf_hf_tokenizer(bad_merge); }),
        bad_merge.path() +
            ": key 'tokenizer.ggml.merges': merge 1 'ab' is not two tokens separated by one space");
    v.merges = {"a b"};
    v.types = {1, 1};
    auto short_types = write("types", v);
    EXPECT_EQ(error_of([&] { gguf_hf_tokenizer(short_types); }),
              short_types.path() +
                  ": key 'tokenizer.ggml.token_type': has 2 entries, expected one per token (5)");
    v.types = {3, 1, 1, 1, 4};
    v.model = "bert";
    auto bert = write("bert", v);
    EXPECT_EQ(error_of([&] { gguf_hf_tokenizer(bert); }),
              bert.path() +
                  ": key 'tokenizer.ggml.model': tokenizer model 'bert' is not supported (expected "
                  "gpt2 or llama)");
}

}  // namespace
}  // namespace qlora::tokenizer
