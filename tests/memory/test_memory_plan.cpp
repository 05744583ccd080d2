// The memory plan against a real quantized stories260K (weights, LoRA and optimizer bytes exactly)
// and on LLaMA-65B shapes, where QLoRA's claim is a run under 48 GB (the breakdown is printed).
#include <gtest/gtest.h>

#include "lora/apply_lora.h"
#include "memory/memory_plan.h"
#include "model/llama_loader.h"
#include "optim/optimizer_factory.h"
#include "support/test_support.h"

namespace qlora::memory {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

TEST(MemoryPlan, Nf4BytesMatchQuant4TensorExactly) {
    for (int64_t numel : {64 * 64, 64 * 172 + 7, 1 << 20}) {
        for (bool dq : {true, false}) {
            quant::Quant4Options o;
            o.double_quant = dq;
            at::Tensor w = at::randn({numel});
            EXPECT_EQ(quant4_nbytes(numel, o), quant::Quant4Tensor::quantize(w, o).nbytes())
                << numel << " dq=" << dq;
        }
    }
}

TEST(MemoryPlan, Stories260KMatchesTheRealModel) {
    model::LoadOptions lo;
    lo.quant = "nf4";
    model::Llama m = model::load_llama(test::shared_data("stories260K/hf"), lo);
    lora::LoraOptions lopt;
    lopt.r = 8;
    lora::apply_lora(*m, lopt);

    PlanInputs in;
    in.model = m->config();
    in.lora = lopt;
    in.weight_dtype = at::kFloat;
    in.optimizer = optim::OptimizerKind::kAdamw32bit;
    in.seq_len = 64;
    const MemoryPlan plan = plan_memory(in);
    std::printf("stories260K plan:\n%s", plan.describe().c_str());

    int64_t nf4 = 0;
    for (auto& l : m->linears()) {
        if (l->quantized()) nf4 += l->quant4_weight().nbytes();
    }
    EXPECT_EQ(plan.quantized_weights, nf4);
    EXPECT_EQ(plan.quantized_weights + plan.dense_weights, m->weight_nbytes());

    std::vector<at::Tensor> params;
    int64_t numel = 0;
    for (auto& [name, t] : lora::adapter_parameters(*m)) {
        params.push_back(t);
        numel += t.numel();
    }
    EXPECT_EQ(plan.lora_numel, numel);
    EXPECT_EQ(plan.lora_params, numel * 4);
    // The optimizer's own report after a step (states exist) equals the plan's.
    for (auto& p : params) p.mutable_grad() = at::ones_like(p);
    auto opt = optim::make_optimizer("adamw_32bit", params);
    opt->step(1e-3);
    EXPECT_EQ(plan.optimizer_resident + plan.optimizer_paged, opt->state_bytes());
}

TEST(MemoryPlan, CheckpointingShrinksActivations) {
    PlanInputs in;
    in.model = model::LlamaConfig::from_json({{"hidden_size", 2048},
                                              {"intermediate_size", 5632},
                                              {"num_hidden_layers", 22},
                                              {"num_attention_heads", 32},
                                              {"num_key_value_heads", 4},
                                              {"vocab_size", 32000}});
    in.seq_len = 2048;
    const MemoryPlan on = plan_memory(in);
    in.checkpointing = false;
    const MemoryPlan off = plan_memory(in);
    EXPECT_LT(on.activations * 4, off.activations);
    EXPECT_EQ(on.quantized_weights, off.quantized_weights);
    in.quantize = false;
    const MemoryPlan dense = plan_memory(in);
    EXPECT_EQ(dense.quantized_weights, 0);
    EXPECT_GT(dense.dense_weights, 3 * off.quantized_weights);
}

TEST(MemoryPlan, Llama65BFitsUnder48GB) {
    PlanInputs in;
    in.model = model::LlamaConfig::from_json({{"hidden_size", 8192},
                                              {"intermediate_size", 22016},
                                              {"num_hidden_layers", 80},
                                              {"num_attention_heads", 64},
                                              {"num_key_value_heads", 64},
                                              {"vocab_size", 32000}});
    in.lora.r = 64;
    in.lora.alpha = 16.0;
    in.lora.dropout = 0.05;
    in.weight_dtype = at::kBFloat16;
    in.optimizer = optim::OptimizerKind::kPagedAdamw32bit;
    in.micro_batch = 1;
    in.seq_len = 512;
    const MemoryPlan plan = plan_memory(in);
    std::printf(
        "LLaMA-65B, NF4+DQ, LoRA r=64 all-linear (fp32), paged AdamW 32-bit, bf16, seq 512, "
        "batch 1, checkpointing:\n%s  trainable parameters: %lld\n",
        plan.describe().c_str(), static_cast<long long>(plan.lora_numel));
    EXPECT_EQ(plan.lora_numel, 80LL * (4 * 64 * (8192 + 8192) + 3 * 64 * (8192 + 22016)));
    EXPECT_LT(static_cast<double>(plan.total()), 48.0 * kGiB);
    EXPECT_LT(static_cast<double>(plan.total_without_paged()), 48.0e9);
    // The 4-bit promise: 4.127 bits per quantized parameter (DESIGN.md section 4).
    const double params = 80.0 * (4.0 * 8192 * 8192 + 3.0 * 8192 * 22016);
    EXPECT_NEAR(plan.quantized_weights * 8.0 / params, 4.127, 0.01);
}

}  // namespace
}  // namespace qlora::memory
