// apply_lora on stories260K: step 0 equals the base, disabling restores the base, targets select
// the right modules, PEFT names and shapes, frozen base, and bad target names are rejected.
#include <gtest/gtest.h>

#include "lora/apply_lora.h"
#include "lora_model_fixture.h"

namespace qlora::lora {
namespace {

LoraOptions options(std::vector<std::string> targets, int64_t r = 8) {
    LoraOptions o;
    o.r = r;
    o.alpha = 16.0;
    o.targets = std::move(targets);
    o.init_seed = 1;
    return o;
}

TEST(ApplyLora, AllLinearGivesSeventyPeftTensorsWithTheRightShapes) {
    model::Llama m = test::load_stories(/*nf4=*/true);
    apply_lora(*m, options({"all-linear"}));
    auto params = adapter_parameters(*m);
    ASSERT_EQ(params.size(), 70u);  // 5 layers x 7 projections x (A, B)
    EXPECT_EQ(params[0].first, "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight");
    EXPECT_EQ(params[1].first, "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight");
    EXPECT_EQ(params[69].first, "base_model.model.model.layers.4.mlp.down_proj.lora_B.weight");
    const auto& c = m->config();
    for (const auto& [name, t] : params) {
        const bool is_a = name.find("lora_A") != std::string::npos;
        int64_t in = c.hidden_size, out = c.hidden_size;
        if (name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos)
            out = c.kv_dim();
        if (name.find("gate_proj") != std::string::npos ||
            name.find("up_proj") != std::string::npos) {
            out = c.intermediate_size;
        }
        if (name.find("down_proj") != std::string::npos) in = c.intermediate_size;
        EXPECT_EQ(t.sizes(), (is_a ? std::vector<int64_t>{8, in} : std::vector<int64_t>{out, 8}))
            << name;
        EXPECT_EQ(t.scalar_type(), at::kFloat) << name;
        EXPECT_TRUE(t.requires_grad()) << name;
        if (!is_a) {
            EXPECT_EQ(t.abs().max().item<double>(), 0.0) << name << ": B starts at zero";
        }
    }
    EXPECT_TRUE(
        params[0].second.is_same(m->layers[0]->self_attn->q_proj->named_parameters()["lora_A"]));
    for (const auto& p : m->named_parameters()) {
        const bool adapter = p.key().ends_with("lora_A") || p.key().ends_with("lora_B");
        EXPECT_EQ(p.value().requires_grad(), adapter) << p.key();
    }
}

TEST(ApplyLora, KaimingUniformBoundOfA) {
    model::Llama m = test::load_stories(/*nf4=*/false);
    apply_lora(*m, options({"down_proj"}, 64));
    const at::Tensor a = adapter_parameters(*m)[0].second;  // [64, 172]
    const double bound = 1.0 / std::sqrt(172.0);
    EXPECT_LE(a.abs().max().item<double>(), bound);
    EXPECT_GT(a.abs().max().item<double>(), 0.9 * bound);
    EXPECT_NEAR(a.std().item<double>(), bound / std::sqrt(3.0), 0.05 * bound);
}

TEST(ApplyLora, TargetListSelectsModulesAndLmHeadOnlyWhenNamed) {
    model::Llama m = test::load_stories(/*nf4=*/true);
    apply_lora(*m, options({"v_proj", "q_proj"}));
    auto params = adapter_parameters(*m);
    ASSERT_EQ(params.size(), 20u);
    EXPECT_EQ(params[2].first, "base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight");
    for (const auto& [name, t] : params) EXPECT_EQ(name.find("lm_head"), std::string::npos);

    model::Llama m2 = test::load_stories(/*nf4=*/true);
    apply_lora(*m2, options({"all-linear", "lm_head"}));
    auto p2 = adapter_parameters(*m2);
    ASSERT_EQ(p2.size(), 72u);
    EXPECT_EQ(p2[70].first, "base_model.model.lm_head.lora_A.weight");
    EXPECT_EQ(p2[71].second.sizes(), (std::vector<int64_t>{512, 8}));
    // The tied embedding is still frozen and still the lm_head's weight.
    EXPECT_FALSE(m2->embed_weight.requires_grad());
    EXPECT_TRUE(m2->lm_head->weight().is_same(m2->embed_weight));
}

TEST(ApplyLora, BadTargetsAndOptionsAreRejected) {
    model::Llama m = test::load_stories(/*nf4=*/false);
    const std::string msg = qlora::test::error_of([&] { apply_lora(*m, options({"qproj"})); });
    EXPECT_NE(msg.find("unknown module name \"qproj\""), std::string::npos) << msg;
    EXPECT_NE(msg.find("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head"),
              std::string::npos)
        << msg;
    EXPECT_NE(
        qlora::test::error_of([&] { apply_lora(*m, options({"all-linear"}, 0)); }).find("lora.r"),
        std::string::npos);
    apply_lora(*m, options({"q_proj"}));
    EXPECT_NE(qlora::test::error_of([&] { apply_lora(*m, options({"q_proj"})); }).find("already"),
              std::string::npos);
}

TEST(ApplyLora, StepZeroAndDisabledAdapterGiveTheBaseLogitsExactly) {
    at::Tensor tokens = test::story_batch(2, 24).narrow(1, 0, 24);
    for (bool nf4 : {false, true}) {
        model::Llama m = test::load_stories(nf4);
        torch::NoGradGuard no_grad;
        at::Tensor base = m->forward(tokens);
        LoraOptions o = options({"all-linear"});
        o.dropout = 0.1;  // train-mode dropout on a zero B changes nothing either
        apply_lora(*m, o);
        EXPECT_TRUE(qlora::test::tensors_identical(base, m->forward(tokens))) << "nf4=" << nf4;
        // A trained adapter moves the logits; disabled, the base comes back bit for bit.
        for (auto& [name, t] : adapter_parameters(*m)) {
            if (name.ends_with("lora_B.weight")) t.normal_(0.0, 0.05);
        }
        m->eval();
        EXPECT_GT((m->forward(tokens) - base).abs().max().item<double>(), 1e-3);
        set_adapter_enabled(*m, false);
        EXPECT_TRUE(qlora::test::tensors_identical(base, m->forward(tokens))) << "nf4=" << nf4;
        set_adapter_enabled(*m, true);
        EXPECT_GT((m->forward(tokens) - base).abs().max().item<double>(), 1e-3);
    }
}

TEST(ApplyLora, RsLoraScale) {
    LoraOptions o = options({"all-linear"}, 16);
    EXPECT_DOUBLE_EQ(lora_scale(o), 1.0);
    o.use_rslora = true;
    EXPECT_DOUBLE_EQ(lora_scale(o), 4.0);
}

}  // namespace
}  // namespace qlora::lora
