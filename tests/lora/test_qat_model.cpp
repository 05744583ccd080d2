// Merge-aware QAT on stories260K: a few AdamW steps lower the loss, and a plain model whose
// projections hold merge_aware_weight(W0, A, B, s) (what a merged-and-quantized export writes)
// gives the QAT model's logits and eval loss: the export is exactly the trained model.
#include <gtest/gtest.h>

#include "lora/activation_checkpointing.h"
#include "lora/apply_lora.h"
#include "lora/merge_aware_function.h"
#include "lora_model_fixture.h"

namespace qlora::lora {
namespace {

constexpr int kSteps = 6;
constexpr double kLr = 1e-2;
constexpr double kExportAtol = 1e-5;  // float32 logits of the same weights, different op order

struct Case {
    bool nf4_base;
    quant::FakeQuantWeight weight;
};

TEST(QatModel, MergeAwareTrainsAndItsMergedQuantizedWeightsAreTheModel) {
    for (Case c :
         {Case{true, quant::FakeQuantWeight::kNF4}, Case{false, quant::FakeQuantWeight::kInt4}}) {
        SCOPED_TRACE(quant::fake_quant_weight_name(c.weight));
        model::Llama m = test::load_stories(c.nf4_base);
        LoraOptions o;
        o.r = 4;
        o.alpha = 8.0;
        o.init_seed = 3;
        apply_lora(*m, o);
        set_gradient_checkpointing(*m, true);
        QatOptions q;
        q.scheme.weight = c.weight;
        q.mode = QatMode::kMergeAware;
        apply_qat(*m, q);
        set_qat_active(*m, true);

        const at::Tensor batch = test::story_batch(2, 48);
        const std::vector<double> losses = test::train_adapters(m, batch, kSteps, kLr);
        EXPECT_LT(losses.back(), losses.front() - 0.05)
            << losses.front() << " -> " << losses.back();

        // The "export": a fresh dense model, each decoder projection set to Q(W0 + s·B·A).
        model::Llama plain = test::load_stories(/*nf4=*/false);
        auto qat_slots = projection_slots(*m), plain_slots = projection_slots(*plain);
        for (size_t i = 0; i < qat_slots.size(); ++i) {
            if (qat_slots[i].key == "lm_head") continue;
            auto l = std::dynamic_pointer_cast<LoraLinearImpl>(qat_slots[i].holder->ptr());
            ASSERT_TRUE(l != nullptr && l->has_adapter());
            at::NoGradGuard no_grad;
            at::Tensor w0 = l->base_weight(at::kFloat);  // deq(NF4) as trained, or the 16-bit base
            (*plain_slots[i].holder)
                ->set_weight(merge_aware_weight(w0, l->lora_A, l->lora_B, l->scale(), q.scheme));
        }
        at::NoGradGuard no_grad;
        m->eval();
        plain->eval();
        const at::Tensor tokens = batch.narrow(1, 0, batch.size(1) - 1);
        EXPECT_TRUE(
            qlora::test::tensors_close(m->forward(tokens), plain->forward(tokens), kExportAtol, 0));
        const double qat_loss = test::lm_loss(m, batch).item<double>();
        const double export_loss = test::lm_loss(plain, batch).item<double>();
        EXPECT_NEAR(qat_loss, export_loss, 1e-5);
        std::printf("%s: loss %.4f -> %.4f; eval QAT %.6f, exported %.6f\n",
                    quant::fake_quant_weight_name(c.weight).c_str(), losses.front(), losses.back(),
                    qat_loss, export_loss);
    }
}

}  // namespace
}  // namespace qlora::lora
