// SmolLM2-135M-Instruct GGUF -> Hugging Face folder (convert_gguf_to_hf), checked by the peers of
// the setup venv: its tokenizer.json gives the reference tokenizer's ids (tokenizers) and the same
// chat rendering (transformers' AutoTokenizer); our logits on the folder equal our logits on the
// GGUF exactly; transformers' float32 logits on the folder equal ours within 1e-4.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "convert/gguf_to_hf.h"
#include "export/gguf_export.h"
#include "io/safetensors.h"
#include "model/llama_loader.h"
#include "support/gguf_import.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace qlora::convert {
namespace {

namespace fs = std::filesystem;
using qlora::test::gguf_import_script;
using qlora::test::run_command;

class GgufImportSmolLM2 : public ::testing::Test {
  protected:
    static void SetUpTestSuite() {
        folder_ = new std::string(qlora::test::scratch_dir("gguf_import_smollm2") + "/hf");
        GgufToHfOptions o;
        o.in_file = qlora::test::smollm2_gguf();
        o.out_dir = *folder_;
        o.max_shard_bytes = 300'000'000;  // two shards and an index, as a large model gets
        summary_ = new GgufToHfSummary(convert_gguf_to_hf(o));
    }
    static void TearDownTestSuite() {
        delete folder_;
        delete summary_;
    }
    static std::string* folder_;
    static GgufToHfSummary* summary_;
};
std::string* GgufImportSmolLM2::folder_ = nullptr;
GgufToHfSummary* GgufImportSmolLM2::summary_ = nullptr;

// The first 24 tokens of Shakespeare by the reference tokenizer, [1, 24].
at::Tensor prompt_tokens() {
    static const at::Tensor tokens = [] {
        auto r = run_command(gguf_import_script() + " tokenize " +
                             qlora::test::shared_data("tokenizers/smollm2") + " " +
                             qlora::test::shared_data("text/tinyshakespeare.txt") + " 24");
        EXPECT_EQ(r.exit_code, 0) << r.output;
        std::vector<int64_t> ids;
        std::stringstream in(r.output);
        for (std::string id; std::getline(in, id, ',');) ids.push_back(std::stoll(id));
        return at::tensor(ids, at::kLong).unsqueeze(0);
    }();
    return tokens;
}

TEST_F(GgufImportSmolLM2, WritesAShardedFolderWithTokenizerAndConfigs) {
    EXPECT_EQ(summary_->tensors, 272);
    for (const char* f : {"config.json", "generation_config.json", "tokenizer.json",
                          "tokenizer_config.json", "model.safetensors.index.json"}) {
        EXPECT_TRUE(fs::is_regular_file(fs::path(*folder_) / f)) << f;
    }
    io::SafetensorsFolder files(*folder_);
    EXPECT_GE(files.files().size(), 2u);
    EXPECT_FALSE(files.contains("lm_head.weight"));  // tied
    EXPECT_EQ(files.info("model.layers.0.self_attn.k_proj.weight").shape,
              (std::vector<int64_t>{192, 576}));
}

TEST_F(GgufImportSmolLM2, TokenizerGivesTheReferenceIdsAndChatTemplate) {
    auto r = run_command(gguf_import_script() + " tokenizer " + *folder_ + " " +
                         qlora::test::shared_data("tokenizers/smollm2") + " " +
                         qlora::test::shared_data("text"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::cout << "[ measured ] " << r.output;
}

TEST_F(GgufImportSmolLM2, OurLogitsOnTheFolderEqualOurLogitsOnTheGguf) {
    torch::NoGradGuard no_grad;
    at::Tensor from_gguf = model::load_llama(qlora::test::smollm2_gguf())->forward(prompt_tokens());
    at::Tensor from_folder = model::load_llama(*folder_)->forward(prompt_tokens());
    EXPECT_TRUE(qlora::test::tensors_identical(from_gguf, from_folder));
}

TEST_F(GgufImportSmolLM2, TransformersLogitsOnTheFolderEqualOurs) {
    torch::NoGradGuard no_grad;
    at::Tensor ours = model::load_llama(*folder_)->forward(prompt_tokens())[0];
    const std::string logits = fs::path(*folder_).parent_path() / "ours.safetensors";
    io::save_safetensors(logits, {{"logits", ours}});
    std::string ids;
    at::Tensor t = prompt_tokens()[0];
    for (int64_t i = 0; i < t.numel(); ++i)
        ids += (i ? "," : "") + std::to_string(t[i].item<int64_t>());
    auto r = run_command(gguf_import_script() + " logits " + *folder_ + " " + ids + " " + logits);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::cout << "[ measured ] " << r.output;
}

// The SentencePiece ("llama") path: stories260K exported to GGUF by us, converted back, its
// tokenizer.json against the sentencepiece library on the original tokenizer.model.
TEST(GgufImportStories, SentencePieceTokenizerJsonMatchesSentencePiece) {
    const std::string base = qlora::test::shared_data("stories260K/hf");
    const std::string dir = qlora::test::scratch_dir("gguf_import_stories");
    GgufToHfOptions o;
    o.in_file = qlora::test::stories_gguf(dir, exporting::GgufType::kF16, "stories.gguf");
    o.out_dir = dir + "/hf";
    convert_gguf_to_hf(o);
    auto r = run_command(gguf_import_script() + " sp-tokenizer " + o.out_dir + " " + base +
                         "/tokenizer.model " + qlora::test::shared_data("text"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::cout << "[ measured ] " << r.output;
}

// #13's "a folder with both tokenizer files": the converted folder's tokenizer.json beside the
// original tokenizer.model. Tokenizer(folder) picks tokenizer.json (as transformers does); both
// give the same ids, BOS included, on TinyStories lines with whitespace runs collapsed
// (sentencepiece's own normalizer collapses them, which the tokenizer.json of a SentencePiece
// vocabulary, as transformers' LlamaConverter builds it, does not).
TEST(GgufImportStories, AFolderWithBothTokenizerFilesGivesTheSameIdsEitherWay) {
    const std::string dir = qlora::test::scratch_dir("gguf_import_both_tokenizers");
    GgufToHfOptions o;
    o.in_file = qlora::test::stories_gguf(dir, exporting::GgufType::kF16, "stories.gguf");
    o.out_dir = dir + "/hf";
    convert_gguf_to_hf(o);
    fs::copy_file(qlora::test::shared_data("stories260K/hf/tokenizer.model"),
                  o.out_dir + "/tokenizer.model");
    const tokenizer::Tokenizer json_first(o.out_dir);
    const tokenizer::Tokenizer sentencepiece(o.out_dir + "/tokenizer.model");
    ASSERT_EQ(json_first.kind(), tokenizer::BackendKind::kHfJson);
    ASSERT_EQ(sentencepiece.kind(), tokenizer::BackendKind::kSentencePiece);
    std::ifstream in(qlora::test::shared_data("text/tinystories_train_prefix_197k.txt"));
    int64_t lines = 0, chars = 0, mismatches = 0;
    for (std::string line; std::getline(in, line) && lines < 3000;) {
        std::istringstream words(line);
        std::string text, word;
        while (words >> word) text += (text.empty() ? "" : " ") + word;
        if (text.empty()) continue;
        ++lines;
        chars += static_cast<int64_t>(text.size());
        if (json_first.encode(text) != sentencepiece.encode(text)) {
            if (mismatches++ == 0) ADD_FAILURE() << "first mismatch: " << text;
        }
    }
    std::cout << "[ measured ] " << lines << " lines, " << chars << " characters, " << mismatches
              << " mismatches between tokenizer.json and tokenizer.model\n";
    EXPECT_GT(lines, 1000);
    EXPECT_EQ(mismatches, 0);
}

}  // namespace
}  // namespace qlora::convert
