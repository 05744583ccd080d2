// A few AdamW steps (32-bit and paged 8-bit) of LoRA over the NF4 stories260K on a fixed batch
// lower the loss, and the frozen base does not move.
#include <gtest/gtest.h>

#include "lora/activation_checkpointing.h"
#include "lora/apply_lora.h"
#include "lora_model_fixture.h"
#include "optim/optimizer_factory.h"

namespace qlora::lora {
namespace {

constexpr int kSteps = 8;
constexpr double kLr = 1e-2;
constexpr double kMinDrop = 0.05;  // nats over kSteps on a batch the adapter can memorise

TEST(LoraTraining, AdamwStepsOnNf4BaseLowerTheLoss) {
    for (const char* opt : {"adamw_32bit", "paged_adamw_8bit"}) {
        model::Llama m = test::load_stories(/*nf4=*/true);
        LoraOptions o;
        o.r = 8;
        o.alpha = 16.0;
        o.dropout = 0.05;
        o.init_seed = 42;
        apply_lora(*m, o);
        set_gradient_checkpointing(*m, true);
        torch::manual_seed(0);
        const at::Tensor packed_before =
            m->layers[0]->self_attn->q_proj->quant4_weight().packed().clone();
        optim::OptimOptions oo;
        oo.min_8bit_numel = 256;  // stories260K's adapters are tiny: make the 8-bit states real
        const std::vector<double> losses =
            test::train_adapters(m, test::story_batch(2, 48), kSteps, kLr, opt, oo);
        std::string curve;
        for (double l : losses) curve += std::to_string(l) + " ";
        std::printf("%s loss curve: %s\n", opt, curve.c_str());
        EXPECT_LT(losses.back(), losses.front() - kMinDrop) << opt << ": " << curve;
        EXPECT_TRUE(qlora::test::tensors_identical(
            packed_before, m->layers[0]->self_attn->q_proj->quant4_weight().packed()));
    }
}

}  // namespace
}  // namespace qlora::lora
