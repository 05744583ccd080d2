// What QAT costs in the memory plan (LLaMA-65B shapes, where it matters): merge-aware NF4 keeps the
// 4-bit base and adds one layer's merged weight + fake-quant transient; lora mode adds the
// fake-quant transient of Q(W0); int4/int8 need a 16-bit base; int8 activations save each
// projection's input.
#include <gtest/gtest.h>

#include "memory/memory_plan.h"
#include "support/test_support.h"

namespace qlora::memory {
namespace {

constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

PlanInputs llama65b() {
    PlanInputs in;
    in.model = model::LlamaConfig::load(std::string(QLORA_SOURCE_DIR) +
                                        "/configs/model-configs/llama-65b.json");
    in.lora.r = 64;
    in.lora.dropout = 0.0;
    in.seq_len = 512;
    return in;
}

TEST(QatPlan, EachModeShowsItsCost) {
    const PlanInputs base = llama65b();
    const MemoryPlan qlora = plan_memory(base);
    EXPECT_EQ(qlora.qat_transient, 0);

    PlanInputs merge = base;
    merge.qat = true;
    merge.qat_merge_aware = true;
    const MemoryPlan m = plan_memory(merge);
    EXPECT_EQ(m.quantized_weights, qlora.quantized_weights)
        << "merge-aware NF4 keeps the base in 4 bits";
    EXPECT_EQ(m.activations, qlora.activations);
    const int64_t largest = 8192LL * 22016;  // gate/up/down of LLaMA-65B
    // float32 W0 + s·B·A, Q, one intermediate, the bf16 cast, the mask and dL/dM, plus float32 G
    // and X
    EXPECT_EQ(m.qat_transient, largest * (4 + 4 + 4 + 2 + 1 + 4) + 512LL * (8192 + 22016) * 4);
    EXPECT_LT(m.qat_transient, qlora.total() / 8) << "one layer's transient, not a dense model";

    PlanInputs lora_mode = merge;
    lora_mode.qat_merge_aware = false;
    EXPECT_LT(plan_memory(lora_mode).qat_transient, m.qat_transient);

    PlanInputs acts = merge;
    acts.qat_activations_int8 = true;
    EXPECT_GT(plan_memory(acts).activations, m.activations)
        << "each projection saves Qa(x) and its mask";

    PlanInputs int4 = lora_mode;  // int4/int8 QAT fake-quantize a 16-bit base
    int4.quantize = false;
    const MemoryPlan i = plan_memory(int4);
    EXPECT_EQ(i.quantized_weights, 0);
    EXPECT_GT(i.total(), 2 * qlora.total());
    std::printf(
        "LLaMA-65B: QLoRA %.2f GiB, + merge-aware NF4 QAT %.2f GiB, int4 QAT on a bf16 base %.2f "
        "GiB\n%s",
        qlora.total_without_paged() / kGiB, m.total_without_paged() / kGiB,
        i.total_without_paged() / kGiB, m.describe().c_str());
    EXPECT_NE(m.describe().find("QAT transient"), std::string::npos);
    EXPECT_EQ(qlora.describe().find("QAT"), std::string::npos) << "no QAT row without QAT";
}

}  // namespace
}  // namespace qlora::memory
