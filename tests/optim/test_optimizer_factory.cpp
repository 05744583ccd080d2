// Optimizer names, the unknown-name error, option validation, and state-byte accounting on a known
// case (LoRA r=64 on every linear layer of Llama-2-7B).
#include <gtest/gtest.h>

#include "core/error.h"
#include "optim/adamw.h"
#include "optim/optimizer_factory.h"

namespace qlora::optim {
namespace {

TEST(OptimizerFactory, NamesAndAliases) {
    EXPECT_EQ(parse_optimizer_kind("adamw_32bit"), OptimizerKind::kAdamw32bit);
    EXPECT_EQ(parse_optimizer_kind("adamw_torch"), OptimizerKind::kAdamw32bit);
    EXPECT_EQ(parse_optimizer_kind("paged_adamw_32bit"), OptimizerKind::kPagedAdamw32bit);
    EXPECT_EQ(parse_optimizer_kind("adamw_8bit"), OptimizerKind::kAdamw8bit);
    EXPECT_EQ(parse_optimizer_kind("paged_adamw_8bit"), OptimizerKind::kPagedAdamw8bit);
    EXPECT_EQ(optimizer_kind_name(OptimizerKind::kPagedAdamw8bit), "paged_adamw_8bit");
    std::vector<at::Tensor> params{at::zeros({8}).requires_grad_(true)};
    auto opt = make_optimizer("adamw_torch", params);
    EXPECT_EQ(opt->name(), "adamw_torch");
}

TEST(OptimizerFactory, UnknownNameListsValidNames) {
    try {
        make_optimizer("sgd", {});
        FAIL();
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("'sgd'"), std::string::npos) << msg;
        EXPECT_NE(
            msg.find("adamw_32bit, adamw_torch, paged_adamw_32bit, adamw_8bit, paged_adamw_8bit"),
            std::string::npos)
            << msg;
    }
}

TEST(OptimizerFactory, RejectsBadOptionsAndParams) {
    OptimOptions o;
    o.beta2 = 1.0;
    EXPECT_THROW(make_optimizer("adamw_32bit", {}, o), Error);
    o = {};
    o.eps = 0.0;
    EXPECT_THROW(make_optimizer("adamw_32bit", {}, o), Error);
    EXPECT_THROW(make_optimizer("adamw_32bit", {at::zeros({4}, at::kDouble)}), Error);
    std::vector<at::Tensor> params{at::zeros({4}).requires_grad_(true)};
    auto opt = make_optimizer("adamw_32bit", params);
    EXPECT_THROW(opt->step(std::nan("")), Error);
}

// Llama-2-7B, r = 64 on q,k,v,o,gate,up,down of 32 layers (hidden 4096, intermediate 11008).
std::vector<int64_t> lora_7b_r64_numels() {
    std::vector<int64_t> n;
    const int64_t r = 64, h = 4096, i = 11008;
    for (int layer = 0; layer < 32; ++layer) {
        for (int k = 0; k < 4; ++k) {  // q, k, v, o: A [r, h], B [h, r]
            n.push_back(r * h);
            n.push_back(h * r);
        }
        for (int k = 0; k < 2; ++k) {  // gate, up: A [r, h], B [i, r]
            n.push_back(r * h);
            n.push_back(i * r);
        }
        n.push_back(r * i);  // down: A [r, i], B [h, r]
        n.push_back(h * r);
    }
    return n;
}

TEST(OptimizerStateBytes, Llama7bLoraR64) {
    const auto numels = lora_7b_r64_numels();
    int64_t params = 0;
    for (int64_t n : numels) params += n;
    ASSERT_EQ(params, 159'907'840);  // the well-known 160M LoRA parameters
    // fp32 m and v: 8 bytes per parameter.
    EXPECT_EQ(optimizer_state_bytes(OptimizerKind::kAdamw32bit, numels).total(), 1'279'262'720);
    EXPECT_EQ(optimizer_state_bytes(OptimizerKind::kAdamw32bit, numels).paged, 0);
    // Every tensor is >= 1e5 elements: all of m and v is paged.
    StateBytes paged32 = optimizer_state_bytes(OptimizerKind::kPagedAdamw32bit, numels);
    EXPECT_EQ(paged32.paged, 1'279'262'720);
    EXPECT_EQ(paged32.resident, 0);
    // 8-bit: 2 bytes per parameter + two fp32 absmax per 256-block. Blocks per layer:
    // 8 * 1024 (q,k,v,o) + 2 * (1024 + 2752) (gate, up) + (2752 + 1024) (down) = 19520; x 32 =
    // 624640.
    StateBytes eight = optimizer_state_bytes(OptimizerKind::kAdamw8bit, numels);
    EXPECT_EQ(eight.total(), 2 * 159'907'840LL + 8 * 624'640LL);
    EXPECT_EQ(eight.total(), 324'812'800);
    StateBytes paged8 = optimizer_state_bytes(OptimizerKind::kPagedAdamw8bit, numels);
    EXPECT_EQ(paged8.paged, 2 * 159'907'840LL);
    EXPECT_EQ(paged8.resident, 8 * 624'640LL);
}

TEST(OptimizerStateBytes, MatchesWhatOptimizersHold) {
    std::vector<at::Tensor> params{at::zeros({64, 128}).requires_grad_(true),
                                   at::zeros({100}).requires_grad_(true),
                                   at::zeros({4099}).requires_grad_(true)};
    for (const char* name : {"adamw_32bit", "adamw_8bit"}) {
        auto opt = make_optimizer(name, params);
        EXPECT_EQ(opt->state_bytes(),
                  optimizer_state_bytes(parse_optimizer_kind(name), {8192, 100, 4099}).total())
            << name;
    }
}

}  // namespace
}  // namespace qlora::optim
