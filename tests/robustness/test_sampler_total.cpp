// The sampler is total: for any logits (NaN, +-Inf, denormals, huge, one token) and any accepted
// parameters it returns an id in [0, V) and never reads out of bounds; parameters it cannot use
// (NaN, Inf, negative) are refused with a one-line qlora::Error. A property test over random cases
// (ASan in the fuzz build catches an out-of-bounds read that happens to return a valid id).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/error.h"
#include "model/sampler.h"
#include "support/test_support.h"

namespace qlora {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kDenormal = std::numeric_limits<float>::denorm_min();

// One float from the values that break naive code, or an ordinary one.
float hostile_float(std::mt19937_64& rng) {
    const float specials[] = {0.0f,      -0.0f,      kNaN,  kInf,   -kInf,
                              kDenormal, -kDenormal, 3e38f, -3e38f, 1e-30f};
    std::uniform_int_distribution<int> pick(0, 19);
    const int k = pick(rng);
    if (k < 10) return specials[k];
    return std::normal_distribution<float>(0.0f, 5.0f)(rng);
}

double hostile_param(std::mt19937_64& rng) {
    const double specials[] = {0.0, 1.0, 0.5, 1e-320, 5e-324, 1e-45, 1e300, 2.0, 0.999999, 1e-7};
    std::uniform_int_distribution<int> pick(0, 14);
    const int k = pick(rng);
    if (k < 10) return specials[k];
    return std::uniform_real_distribution<double>(0.0, 3.0)(rng);
}

TEST(SamplerTotal, RandomLogitsAndParametersAlwaysGiveAnIdInRange) {
    std::mt19937_64 rng(20261201);
    int sampled = 0;
    for (int trial = 0; trial < 3000; ++trial) {
        const int64_t n = std::uniform_int_distribution<int64_t>(1, 40)(rng);
        at::Tensor logits = at::empty({n}, at::kFloat);
        float* p = logits.data_ptr<float>();
        const int mode = trial % 4;  // all hostile, all NaN, all -inf, mixed
        for (int64_t i = 0; i < n; ++i) {
            p[i] = mode == 1 ? kNaN : mode == 2 ? -kInf : hostile_float(rng);
        }
        model::SamplingOptions o;
        o.temperature = hostile_param(rng);
        o.top_p = hostile_param(rng);
        o.top_k = std::uniform_int_distribution<int64_t>(0, n + 3)(rng);
        o.repetition_penalty = std::max(hostile_param(rng), 1e-300);
        o.seed = rng();
        std::vector<int64_t> history;
        for (int i = 0; i < 5; ++i)
            history.push_back(std::uniform_int_distribution<int64_t>(-3, n + 3)(rng));
        model::Sampler sampler(o);
        for (int draw = 0; draw < 3; ++draw) {
            const int64_t id = sampler.sample(logits, history);
            ASSERT_GE(id, 0) << "trial " << trial << " n " << n;
            ASSERT_LT(id, n) << "trial " << trial << " n " << n;
            ++sampled;
        }
    }
    EXPECT_EQ(sampled, 9000);
}

// The crash of the issue: one candidate left, top-p in (0, 1): (1 - p) / (V - 1) divided by zero.
TEST(SamplerTotal, SingleTokenVocabularyWithTopP) {
    model::SamplingOptions o;
    o.temperature = 1.0;
    o.top_p = 0.9;
    model::Sampler sampler(o);
    EXPECT_EQ(sampler.sample(at::tensor({0.3f}), {}), 0);
}

TEST(SamplerTotal, NanLogitsAreNeverChosenWhenAFiniteOneExists) {
    model::SamplingOptions o;
    o.temperature = 1.0;
    o.top_p = 0.5;
    model::Sampler sampler(o);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.sample(at::tensor({kNaN, 1.0f, kNaN}), {}), 1);
}

TEST(SamplerTotal, DenormalTemperatureSharesTheMassAmongTheMaxima) {
    model::SamplingOptions o;
    o.temperature = 1e-45;  // every positive logit overflows to +inf
    model::Sampler sampler(o);
    for (int i = 0; i < 50; ++i) {
        const int64_t id = sampler.sample(at::tensor({-1.0f, 2.0f, 2.0f}), {});
        EXPECT_TRUE(id == 1 || id == 2) << id;
    }
}

TEST(SamplerTotal, UnusableParametersAreRefusedInOneLine) {
    auto refuse = [](model::SamplingOptions o) {
        return test::error_of([&] { model::Sampler s(o); });
    };
    model::SamplingOptions nan_temp, inf_temp, nan_top_p, nan_penalty, neg_k;
    nan_temp.temperature = std::nan("");
    inf_temp.temperature = std::numeric_limits<double>::infinity();
    nan_top_p.top_p = std::nan("");
    nan_penalty.repetition_penalty = std::nan("");
    neg_k.top_k = -1;
    EXPECT_NE(refuse(nan_temp).find("temperature must be a finite number"), std::string::npos);
    EXPECT_NE(refuse(inf_temp).find("temperature must be a finite number"), std::string::npos);
    EXPECT_NE(refuse(nan_top_p).find("top-p must be a finite number"), std::string::npos);
    EXPECT_NE(refuse(nan_penalty).find("repetition penalty must be a finite number"),
              std::string::npos);
    EXPECT_NE(refuse(neg_k).find("top-k must be >= 0"), std::string::npos);
}

TEST(SamplerTotal, EmptyLogitsAreAnError) {
    model::Sampler sampler(model::SamplingOptions{});
    EXPECT_NE(test::error_of([&] { sampler.sample(at::empty({0}), {}); }).find("empty logits"),
              std::string::npos);
}

}  // namespace
}  // namespace qlora
