// Sampler: llama2.c's xorshift64* stream, greedy, top-k / top-p restriction, repetition penalty,
// and determinism by seed. Inputs are hand-made logits with known softmax.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "model/sampler.h"

namespace qlora::model {
namespace {

SamplingOptions sampling(double temperature, double top_p = 1.0, int64_t top_k = 0,
                         double penalty = 1.0, uint64_t seed = 7) {
    SamplingOptions o;
    o.temperature = temperature;
    o.top_p = top_p;
    o.top_k = top_k;
    o.repetition_penalty = penalty;
    o.seed = seed;
    return o;
}

TEST(Sampler, XorshiftStreamIsLlama2cs) {
    // random_u32 of run.c from state 1, worked by hand: state ^= state >> 12 (1), ^= state << 25
    // (0x2000001), ^= state >> 27 (0x2000001); (state * 0x2545F4914F6CDD1D) >> 32.
    Sampler s(sampling(1.0, 1.0, 0, 1.0, 1));
    const uint64_t state = 0x2000001ULL;
    EXPECT_EQ(s.random_u32(), static_cast<uint32_t>((state * 0x2545F4914F6CDD1DULL) >> 32));
    for (int i = 0; i < 1000; ++i) {
        float f = s.random_f32();
        ASSERT_GE(f, 0.0f);
        ASSERT_LT(f, 1.0f);
    }
}

TEST(Sampler, GreedyTakesFirstMaximum) {
    Sampler s(sampling(0.0));
    at::Tensor logits = at::tensor({0.5f, 3.0f, -1.0f, 3.0f});
    EXPECT_EQ(s.sample(logits, {}), 1);
    EXPECT_EQ(s.sample(logits.to(at::kBFloat16), {}), 1);
}

TEST(Sampler, RepetitionPenaltyFollowsTransformers) {
    // Seen token 1 (logit 3.0) becomes 3.0 / 2 = 1.5 < 2.0: greedy now picks token 0.
    Sampler s(sampling(0.0, 1.0, 0, 2.0));
    at::Tensor logits = at::tensor({2.0f, 3.0f, -1.0f});
    EXPECT_EQ(s.sample(logits, {1}), 0);
    // A negative logit is multiplied: -0.1 * 2 = -0.2 < -0.15, so token 2 stays below token 0.
    at::Tensor neg = at::tensor({-0.15f, -5.0f, -0.1f});
    EXPECT_EQ(s.sample(neg, {2}), 0);
}

TEST(Sampler, TopKAndTopPRestrictTheSupport) {
    at::Tensor logits = at::log(at::tensor({0.5f, 0.3f, 0.15f, 0.05f}));
    Sampler k2(sampling(1.0, 1.0, 2));
    Sampler p07(sampling(1.0, 0.7));  // 0.5 + 0.3 > 0.7: the nucleus is {0, 1}
    std::set<int64_t> seen_k, seen_p;
    std::vector<int> counts(4, 0);
    Sampler full(sampling(1.0));
    for (int i = 0; i < 4000; ++i) {
        seen_k.insert(k2.sample(logits, {}));
        seen_p.insert(p07.sample(logits, {}));
        ++counts[full.sample(logits, {})];
    }
    EXPECT_EQ(seen_k, (std::set<int64_t>{0, 1}));
    EXPECT_EQ(seen_p, (std::set<int64_t>{0, 1}));
    // Unrestricted sampling follows the distribution (4000 draws: 5 sigma is about 0.04).
    EXPECT_NEAR(counts[0] / 4000.0, 0.5, 0.04);
    EXPECT_NEAR(counts[3] / 4000.0, 0.05, 0.02);
}

TEST(Sampler, SameSeedSameSamples) {
    at::Tensor logits = at::randn({300}, at::TensorOptions(at::kFloat));
    Sampler a(sampling(0.9, 0.95, 40, 1.1, 1234)), b(sampling(0.9, 0.95, 40, 1.1, 1234)),
        c(sampling(0.9, 0.95, 40, 1.1, 99));
    std::vector<int64_t> ha, hb, hc;
    for (int i = 0; i < 50; ++i) {
        ha.push_back(a.sample(logits, ha));
        hb.push_back(b.sample(logits, hb));
        hc.push_back(c.sample(logits, hc));
    }
    EXPECT_EQ(ha, hb);
    EXPECT_NE(ha, hc);
}

TEST(Sampler, RejectsBadOptions) {
    EXPECT_THROW(Sampler(sampling(-1.0)), Error);
    EXPECT_THROW(Sampler(sampling(1.0, 1.0, -1)), Error);
    EXPECT_THROW(Sampler(sampling(1.0, 1.0, 0, 0.0)), Error);
}

}  // namespace
}  // namespace qlora::model
