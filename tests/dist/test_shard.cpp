// The data-parallel shards: with W ranks and grad_accum A, the ranks' micro-batches of a window,
// taken in rank order, are exactly the micro-batches one process with grad_accum A·W trains on,
// across epoch boundaries and the short last batch; every rank takes the same number of steps.
#include <gtest/gtest.h>

#include "data/loader.h"
#include "dist/data_parallel.h"
#include "support/test_support.h"

namespace qlora::dist {
namespace {

// Sample i has i % 5 + 2 tokens with distinct ids, so a batch's tokens identify its samples.
std::vector<data::Sample> numbered(int n) {
    std::vector<data::Sample> out;
    for (int i = 0; i < n; ++i) {
        data::Sample s;
        for (int t = 0; t < i % 5 + 2; ++t) {
            s.tokens.push_back(1000 * i + t);
            s.labels.push_back(t == 0 ? data::kIgnoreIndex : 1000 * i + t);
        }
        out.push_back(s);
    }
    return out;
}

data::LoaderOptions options() {
    data::LoaderOptions o;
    o.seed = 7;
    o.micro_batch = 2;
    o.max_seq_len = 16;
    return o;
}

void expect_shards_cover_single_process(int world, int64_t accum, int windows) {
    // 23 samples, micro-batch 2: 12 batches an epoch (the last one short); windows cross epochs.
    data::DataLoader single(numbered(23), options());
    std::vector<data::DataLoader> ranks;
    for (int r = 0; r < world; ++r) ranks.emplace_back(numbered(23), options());
    for (int w = 0; w < windows; ++w) {
        std::vector<data::Batch> expected;
        for (int64_t i = 0; i < accum * world; ++i) expected.push_back(single.next());
        size_t k = 0;
        for (int r = 0; r < world; ++r) {
            std::vector<data::Batch> shard =
                next_window_shard(ranks[static_cast<size_t>(r)], {r, world, accum});
            ASSERT_EQ(shard.size(), static_cast<size_t>(accum)) << "rank " << r;
            for (const data::Batch& b : shard) {
                EXPECT_TRUE(test::tensors_identical(expected[k].tokens, b.tokens))
                    << "world " << world << " window " << w << " rank " << r;
                EXPECT_TRUE(test::tensors_identical(expected[k].labels, b.labels));
                ++k;
            }
            EXPECT_EQ(ranks[static_cast<size_t>(r)].state(), single.state())
                << "every cursor moves alike";
        }
    }
}

TEST(Shard, RanksTogetherSeeTheSingleProcessWindow) {
    expect_shards_cover_single_process(2, 2, 7);
    expect_shards_cover_single_process(3, 1, 9);
    expect_shards_cover_single_process(3, 2, 5);
}

TEST(Shard, EveryRankTakesTheSameStepCount) {
    // 12 batches an epoch: 2 ranks × 2 = windows of 4 -> 3 steps; 3 × 2 -> 2; 5 × 1 -> ceil(12/5)
    // = 3.
    EXPECT_EQ(steps_per_epoch(12, {0, 2, 2}), 3);
    EXPECT_EQ(steps_per_epoch(12, {1, 2, 2}), 3);
    EXPECT_EQ(steps_per_epoch(12, {2, 3, 2}), 2);
    EXPECT_EQ(steps_per_epoch(12, {4, 5, 1}), 3);
    EXPECT_EQ(steps_per_epoch(12, {0, 1, 8}), 2);  // one process: the trainer's own rule
}

TEST(Shard, OwnershipIsContiguousPerRank) {
    const ShardSpec spec{1, 3, 2};
    std::vector<int64_t> mine;
    for (int64_t i = 0; i < spec.window(); ++i) {
        if (spec.owns(i)) mine.push_back(i);
    }
    EXPECT_EQ(mine, (std::vector<int64_t>{2, 3}));
    EXPECT_TRUE(owns_eval_batch(4, 1, 3));
    EXPECT_FALSE(owns_eval_batch(4, 0, 3));
}

}  // namespace
}  // namespace qlora::dist
