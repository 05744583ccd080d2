// Tokenizer tests against the stories260K tok512.model: known ids from PROVENANCE.md and the
// llama2.c reference generation, round trips, piece metadata and load errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace qlora::tokenizer {
namespace {

std::string tok512() { return test::shared_data("stories260K/tok512.model"); }

TEST(Tokenizer, EncodesOnceUponATimeAsLlama2cDoes) {
    Tokenizer tok(tok512());
    EXPECT_EQ(tok.encode("Once upon a time", /*add_bos=*/true),
              (std::vector<int64_t>{1, 403, 407, 261, 378}));
    EXPECT_EQ(tok.encode("Once upon a time", /*add_bos=*/false),
              (std::vector<int64_t>{403, 407, 261, 378}));
    EXPECT_EQ(tok.encode("Once", true, /*add_eos=*/true), (std::vector<int64_t>{1, 403, 2}));
}

TEST(Tokenizer, SpecialIdsAndVocab) {
    Tokenizer tok(tok512());
    EXPECT_EQ(tok.vocab_size(), 512);
    EXPECT_EQ(tok.bos_id(), 1);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_EQ(tok.unk_id(), 0);
    EXPECT_EQ(tok.pad_id(), -1);
    EXPECT_EQ(tok.piece(403), "\xE2\x96\x81Once");  // "▁Once"
    EXPECT_EQ(tok.piece_to_id("\xE2\x96\x81Once"), 403);
    EXPECT_EQ(tok.piece_to_id("no-such-piece"), -1);
    EXPECT_EQ(tok.piece_type(0), PieceType::kUnknown);
    EXPECT_EQ(tok.piece_type(1), PieceType::kControl);
    EXPECT_EQ(tok.piece_type(13), PieceType::kByte);  // <0x0A>, the newline byte
    EXPECT_EQ(tok.piece_type(403), PieceType::kNormal);
    EXPECT_LT(tok.score(403), 0.0f);
    EXPECT_THROW(tok.piece(512), Error);
}

TEST(Tokenizer, DecodesReferenceIds) {
    Tokenizer tok(tok512());
    // The first tokens of llama2.c's greedy stories260K output, with the newline byte token 13.
    std::vector<int64_t> ids = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421,
                                395, 317, 426, 338, 401, 396, 267, 337, 410, 408, 419, 292, 411,
                                322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370,
                                432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312,
                                432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13,  438, 310};
    EXPECT_EQ(tok.decode(ids),
              "Once upon a time, there was a little girl named Lily. She loved to play outside in "
              "the park. One day, she saw a big, red ball. She wanted to play with it, but it was "
              "too high.\nLily");
}

TEST(Tokenizer, RoundTripsPlainText) {
    Tokenizer tok(tok512());
    const std::string text = "Tom and Sue went to the shop. They bought 12 apples!";
    EXPECT_EQ(tok.decode(tok.encode(text, true, true)), text);
    // A multi-byte character goes through byte fallback and comes back whole.
    const std::string utf8 = "caf\xC3\xA9 \xE2\x80\x9Cquoted\xE2\x80\x9D";
    EXPECT_EQ(tok.decode(tok.encode(utf8, false)), utf8);
}

TEST(Tokenizer, ModelFolderAndTokenizerConfig) {
    std::string dir = test::scratch_dir("tokenizer_config");
    std::filesystem::copy_file(tok512(), dir + "/tokenizer.model");
    {
        Tokenizer tok(dir);
        EXPECT_EQ(tok.bos_id(), 1);
    }
    std::ofstream(dir + "/tokenizer_config.json")
        << R"({"bos_token": {"content": "<s>"}, "eos_token": "</s>", "pad_token": "<unk>",
              "added_tokens_decoder": {"600": {"content": "<pad2>"}}})";
    {
        Tokenizer tok(dir);
        EXPECT_EQ(tok.bos_id(), 1);
        EXPECT_EQ(tok.eos_id(), 2);
        EXPECT_EQ(tok.pad_id(), 0);
    }
    std::ofstream(dir + "/tokenizer_config.json")
        << R"({"pad_token": "<pad2>", "added_tokens_decoder": {"600": {"content": "<pad2>"}}})";
    EXPECT_EQ(Tokenizer(dir).pad_id(), 600);
    // A token that is nowhere keeps the model's own id (with a warning).
    std::ofstream(dir + "/tokenizer_config.json") << R"({"pad_token": "<nowhere>"})";
    EXPECT_EQ(Tokenizer(dir).pad_id(), -1);
}

TEST(Tokenizer, LoadFailureNamesThePath) {
    std::string dir = test::scratch_dir("tokenizer_bad");
    try {
        Tokenizer tok(dir + "/missing.model");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("missing.model"), std::string::npos) << e.what();
    }
    std::ofstream(dir + "/tokenizer.model") << "not a protobuf";
    try {
        Tokenizer tok(dir);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir + "/tokenizer.model"), std::string::npos)
            << e.what();
    }
}

}  // namespace
}  // namespace qlora::tokenizer
