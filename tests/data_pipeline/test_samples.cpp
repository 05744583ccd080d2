// Tokenization and label masking with the stories260K tokenizer, padding/packing collation and
// truncation.
#include <gtest/gtest.h>

#include "data/batch.h"
#include "data/dataset.h"
#include "data/sample.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace qlora::data {
namespace {

const tokenizer::Tokenizer& tok() {
    static const tokenizer::Tokenizer t(qlora::test::shared_data("stories260K/hf/tokenizer.model"));
    return t;
}

std::vector<int64_t> enc(const std::string& s) { return tok().encode(s, false, false); }

std::vector<int64_t> cat(std::initializer_list<std::vector<int64_t>> parts) {
    std::vector<int64_t> out;
    for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
    return out;
}

std::vector<int64_t> masked(size_t n) { return std::vector<int64_t>(n, kIgnoreIndex); }

TEST(Samples, PromptMaskedCompletionLearnedWithEos) {
    const int64_t bos = tok().bos_id(), eos = tok().eos_id();
    ASSERT_EQ(bos, 1);
    ASSERT_EQ(eos, 2);
    const std::vector<Segment> segs = {{"Tom said", false, false}, {"hi", true, false}};
    const Sample s = tokenize_segments(segs, tok(), {});
    // Pinned ids: the stories260K tokenizer's pieces for these words.
    EXPECT_EQ(enc("Tom said"), (std::vector<int64_t>{274, 287, 336}));
    EXPECT_EQ(enc("hi"), (std::vector<int64_t>{270, 417}));
    EXPECT_EQ(s.tokens, (std::vector<int64_t>{1, 274, 287, 336, 270, 417, 2}));
    EXPECT_EQ(s.labels, (std::vector<int64_t>{-100, -100, -100, -100, 270, 417, 2}));
    const std::vector<int64_t> prompt = enc("Tom said"), completion = enc("hi");
    EXPECT_EQ(s.tokens, cat({{bos}, prompt, completion, {eos}}));
    EXPECT_EQ(s.labels, cat({masked(1 + prompt.size()), completion, {eos}}));
    EXPECT_EQ(s.num_label_tokens(), static_cast<int64_t>(completion.size() + 1));

    TokenizeOptions all;
    all.train_on_inputs = true;
    const Sample t = tokenize_segments(segs, tok(), all);
    EXPECT_EQ(t.labels, cat({{kIgnoreIndex}, prompt, completion, {eos}}));  // BOS is never a target
}

TEST(Samples, MultiTurnEosAfterEveryCompletionAndBosPerTurn) {
    const int64_t bos = tok().bos_id(), eos = tok().eos_id();
    const std::vector<Segment> segs = {
        {"a", false, false}, {"b", true, false}, {"c", false, true}, {"d", true, false}};
    const Sample s = tokenize_segments(segs, tok(), {});
    EXPECT_EQ(s.tokens, cat({{bos}, enc("a"), enc("b"), {eos}, {bos}, enc("c"), enc("d"), {eos}}));
    EXPECT_EQ(s.labels, cat({masked(1 + enc("a").size()),
                             enc("b"),
                             {eos},
                             masked(1 + enc("c").size()),
                             enc("d"),
                             {eos}}));
}

TEST(Samples, TruncationAndDroppedSamples) {
    TokenizeOptions o;
    o.max_seq_len = 3;
    const Sample s =
        tokenize_segments({{"Once upon a time there was a girl", true, false}}, tok(), o);
    EXPECT_EQ(s.tokens.size(), 3u);
    EXPECT_EQ(s.tokens[0], tok().bos_id());
    EXPECT_EQ(s.labels.size(), 3u);
    EXPECT_NE(s.labels.back(), tok().eos_id());  // the EOS fell off with the tail
}

Sample make(std::vector<int64_t> tokens, std::vector<int64_t> labels) {
    return {std::move(tokens), std::move(labels)};
}

TEST(Batches, PaddingMasksLabelsAndKeys) {
    const Sample a = make({1, 5, 6}, {-100, 5, 6});
    const Sample b = make({1, 7}, {-100, 7});
    const Batch batch = collate({{&a}, {&b}}, /*pad_id=*/0);
    EXPECT_TRUE(qlora::test::tensors_identical(
        batch.tokens, at::tensor({1, 5, 6, 1, 7, 0}, at::kLong).view({2, 3})));
    EXPECT_TRUE(qlora::test::tensors_identical(
        batch.labels, at::tensor({-100, 5, 6, -100, 7, -100}, at::kLong).view({2, 3})));
    EXPECT_TRUE(qlora::test::tensors_identical(
        batch.position_ids, at::tensor({0, 1, 2, 0, 1, 0}, at::kLong).view({2, 3})));
    EXPECT_EQ(batch.num_label_tokens, 3);
    EXPECT_EQ(batch.num_tokens, 5);
    ASSERT_EQ(batch.attention_mask.sizes(), (at::IntArrayRef{2, 1, 3, 3}));
    // Row 1: real tokens see each other, never the pad key; the pad query sees only itself.
    const at::Tensor m = batch.attention_mask[1][0];
    EXPECT_TRUE(qlora::test::tensors_identical(
        m, at::tensor({1, 1, 0, 1, 1, 0, 0, 0, 1}, at::kLong).to(at::kBool).view({3, 3})));
}

TEST(Batches, PackingRestartsPositionsAndBlocksCrossAttention) {
    std::vector<Sample> samples = {make({1, 10, 11}, {-100, 10, 11}),
                                   make({1, 20, 21, 22}, {-100, -100, 21, 22}),
                                   make({1, 30, 31, 32, 33}, {-100, 30, 31, 32, 33})};
    const auto rows = pack_rows({0, 1, 2}, samples, /*row_len=*/8);
    ASSERT_EQ(rows, (std::vector<std::vector<int64_t>>{{0, 1}, {2}}));
    const Batch b = collate({{&samples[0], &samples[1]}, {&samples[2]}}, 0);
    EXPECT_EQ(b.tokens.sizes(), (at::IntArrayRef{2, 7}));
    EXPECT_TRUE(qlora::test::tensors_identical(
        b.position_ids,
        at::tensor({0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 3, 4, 0, 0}, at::kLong).view({2, 7})));
    EXPECT_TRUE(qlora::test::tensors_identical(
        b.document_ids,
        at::tensor({0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, -1, -1}, at::kLong).view({2, 7})));
    EXPECT_EQ(b.num_label_tokens, 2 + 2 + 4);
    const at::Tensor m = b.attention_mask[0][0];
    // Within a document everything may attend (the model adds causality); across documents nothing.
    for (int i = 0; i < 7; ++i) {
        for (int j = 0; j < 7; ++j) {
            EXPECT_EQ(m[i][j].item<bool>(), (i < 3) == (j < 3)) << i << "," << j;
        }
    }
}

TEST(Dataset, SampleFileThroughAlpacaTemplate) {
    DatasetOptions o;
    o.tokenize.max_seq_len = 512;
    const Dataset ds =
        load_dataset(std::string(QLORA_SOURCE_DIR) + "/datasets/sample_alpaca.jsonl", tok(), o);
    ASSERT_EQ(ds.samples.size(), 32u);
    for (const Sample& s : ds.samples) {
        EXPECT_EQ(s.tokens.front(), tok().bos_id());
        EXPECT_EQ(s.tokens.back(), tok().eos_id());
        EXPECT_EQ(s.labels.back(), tok().eos_id());
        EXPECT_EQ(s.labels[1], kIgnoreIndex);
    }
    o.tokenize.max_seq_len = 40;  // shorter than every Alpaca prompt: nothing left to learn
    EXPECT_NE(qlora::test::error_of([&] {
                  load_dataset(std::string(QLORA_SOURCE_DIR) + "/datasets/sample_alpaca.jsonl",
                               tok(), o);
              }).find("no sample keeps a completion token within data.max_seq_len=40"),
              std::string::npos);
}

}  // namespace
}  // namespace qlora::data
