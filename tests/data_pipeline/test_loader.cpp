// DataLoader: deterministic shuffles by seed, every sample once per epoch, cursor save/restore
// giving the same following batches, group_by_length, and the deterministic eval split.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/rng.h"
#include "support/test_support.h"

namespace qlora::data {
namespace {

// Sample i has i % 7 + 2 tokens, every one a distinct id, so batches identify their samples.
std::vector<Sample> numbered(int n) {
    std::vector<Sample> out;
    for (int i = 0; i < n; ++i) {
        Sample s;
        for (int t = 0; t < i % 7 + 2; ++t) {
            s.tokens.push_back(1000 * i + t);
            s.labels.push_back(t == 0 ? kIgnoreIndex : 1000 * i + t);
        }
        out.push_back(s);
    }
    return out;
}

LoaderOptions opts(uint64_t seed, int64_t micro_batch = 3) {
    LoaderOptions o;
    o.seed = seed;
    o.micro_batch = micro_batch;
    o.max_seq_len = 16;
    return o;
}

TEST(Rng, SplitMix64IsTheReferenceSequence) {
    // splitmix64 seeded with 0: first outputs as published with the algorithm.
    SplitMix64 r(0);
    EXPECT_EQ(r.next(), 0xE220A8397B1DCDAFull);
    EXPECT_EQ(r.next(), 0x6E789E6AA1B965F4ull);
    EXPECT_EQ(r.next(), 0x06C45D188009454Full);
}

TEST(Loader, ShuffleIsDeterministicAndCoversEachSampleOnce) {
    DataLoader a(numbered(20), opts(42)), b(numbered(20), opts(42)), c(numbered(20), opts(43));
    EXPECT_EQ(a.plan(0), b.plan(0));
    EXPECT_EQ(a.plan(3), b.plan(3));
    EXPECT_NE(a.plan(0), c.plan(0));
    const auto epoch0 = a.plan(0);  // plan() returns the loader's cached plan: copy before the next
    EXPECT_NE(epoch0, a.plan(1));   // a new order every epoch
    std::multiset<int64_t> seen;
    for (const auto& batch : a.plan(0)) {
        for (const auto& row : batch) seen.insert(row.begin(), row.end());
    }
    EXPECT_EQ(seen.size(), 20u);
    EXPECT_EQ(std::set<int64_t>(seen.begin(), seen.end()).size(), 20u);
    EXPECT_EQ(a.batches_in_epoch(0), 7);  // ceil(20 / 3), the last batch smaller
    EXPECT_EQ(a.plan(0).back().size(), 2u);

    LoaderOptions ordered = opts(42);
    ordered.shuffle = false;
    DataLoader d(numbered(5), ordered);
    EXPECT_EQ(d.plan(0),
              (std::vector<std::vector<std::vector<int64_t>>>{{{0}, {1}, {2}}, {{3}, {4}}}));
}

void expect_same(const Batch& x, const Batch& y) {
    EXPECT_TRUE(qlora::test::tensors_identical(x.tokens, y.tokens));
    EXPECT_TRUE(qlora::test::tensors_identical(x.labels, y.labels));
    EXPECT_TRUE(qlora::test::tensors_identical(x.attention_mask, y.attention_mask));
    EXPECT_TRUE(qlora::test::tensors_identical(x.position_ids, y.position_ids));
    EXPECT_EQ(x.num_label_tokens, y.num_label_tokens);
}

TEST(Loader, RestoredCursorGivesTheSameFollowingBatches) {
    for (bool packing : {false, true}) {
        SCOPED_TRACE(packing ? "packing" : "padding");
        LoaderOptions o = opts(7);
        o.packing = packing;
        DataLoader uninterrupted(numbered(20), o);
        for (int i = 0; i < 5; ++i) uninterrupted.next();
        const LoaderState saved = uninterrupted.state();
        if (!packing) {
            EXPECT_EQ(saved, (LoaderState{0, 5}));
        }
        std::vector<Batch> expected;
        for (int i = 0; i < 12; ++i)
            expected.push_back(uninterrupted.next());  // crosses into epoch 1+

        DataLoader resumed(numbered(20), o);
        resumed.restore(saved);
        for (int i = 0; i < 12; ++i) expect_same(expected[i], resumed.next());
        EXPECT_EQ(resumed.state(), uninterrupted.state());
        EXPECT_GE(resumed.state().epoch, 1);
    }
}

TEST(Loader, RestoreRejectsACursorBeyondTheData) {
    DataLoader a(numbered(6), opts(1));
    EXPECT_NE(qlora::test::error_of([&] {
                  a.restore({0, 9});
              }).find("cannot restore cursor {epoch 0, index 9}"),
              std::string::npos);
}

TEST(Loader, PackingFillsRowsWithinMaxSeqLen) {
    LoaderOptions o = opts(3, 2);
    o.packing = true;
    DataLoader a(numbered(20), o);
    int64_t rows = 0;
    for (const auto& batch : a.plan(0)) {
        for (const auto& row : batch) {
            int64_t len = 0;
            for (int64_t i : row) len += i % 7 + 2;
            EXPECT_LE(len, 16);
            ++rows;
        }
    }
    EXPECT_LT(rows, 20);  // several samples share rows
    const Batch b = a.batch_at(0, 0);
    EXPECT_LE(b.tokens.size(1), 16);
}

TEST(Loader, GroupByLengthPutsSimilarLengthsTogether) {
    LoaderOptions o = opts(5, 4);
    o.group_by_length = true;
    DataLoader a(numbered(28), o);
    int64_t padding = 0;
    for (int64_t i = 0; i < a.batches_in_epoch(0); ++i) {
        const Batch b = a.batch_at(0, i);
        padding += b.tokens.numel() - b.num_tokens;
    }
    EXPECT_EQ(padding, 0);  // 28 samples, 4 of each of 7 lengths: every batch is one length
}

TEST(EvalSplit, DeterministicBySeed) {
    std::vector<Sample> a = numbered(20), b = numbered(20);
    const std::vector<Sample> ea = split_eval(a, 0.1, 42), eb = split_eval(b, 0.1, 42);
    ASSERT_EQ(ea.size(), 2u);
    EXPECT_EQ(a.size(), 18u);
    EXPECT_EQ(ea[0].tokens, eb[0].tokens);
    EXPECT_EQ(ea[1].tokens, eb[1].tokens);
    std::vector<Sample> c = numbered(20);
    const std::vector<Sample> ec = split_eval(c, 0.5, 42);
    EXPECT_EQ(ec.size(), 10u);
    std::vector<Sample> tiny = numbered(2);
    EXPECT_EQ(split_eval(tiny, 0.01, 1).size(), 1u);  // at least one each side
    EXPECT_EQ(tiny.size(), 1u);
}

}  // namespace
}  // namespace qlora::data
