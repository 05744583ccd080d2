// Issue 8's promise, end to end: a merge_aware QAT run (qlora-train) exported in its scheme's
// format (NF4 QAT: `qlora-export --format hf-nf4`; int4 QAT: `--format hf-int4`) scores exactly
// what the QAT model scores. The QAT model is rebuilt in-process the way the trainer builds it (NF4
// base, the run's adapter, fake quantization on); the export is loaded like any other folder. fp32
// throughout, cs336 TinyStories sample.
#include <gtest/gtest.h>

#include "data/documents.h"
#include "export/attach_adapter.h"
#include "lora/apply_lora.h"
#include "model/evaluate.h"
#include "model/llama_loader.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace qlora {
namespace {

double eval_loss(model::Llama& m, const std::vector<int64_t>& stream, int64_t bos) {
    torch::NoGradGuard no_grad;
    m->eval();
    return model::evaluate_stream(m, stream, 128, bos).loss;
}

struct QatCase {
    std::string weight;     // qat.weight
    std::string format;     // the matching qlora-export format
    std::string overrides;  // what that scheme needs of the rest of the config
};

class QatExport : public ::testing::TestWithParam<QatCase> {};

TEST_P(QatExport, MergeAwareExportScoresExactlyLikeTheQatModel) {
    const QatCase c = GetParam();
    const std::string dir = test::scratch_dir("qat_export_" + c.weight);
    const std::string hf = test::shared_data("stories260K/hf");
    // lr 1e-2: large enough that the merged weights cross 4-bit code boundaries in 12 steps.
    auto train = test::run_command(
        test::tool("qlora-train") + " " + QLORA_SOURCE_DIR +
        "/configs/quickstart.yaml train.max_steps=12 optim.lr=1e-2 eval.every=0 "
        "output.save_every=0 'eval.prompts=[]' qat.enabled=true qat.weight=" +
        c.weight + " qat.mode=merge_aware " + c.overrides + " output.dir=" + dir + "/run");
    ASSERT_EQ(train.exit_code, 0) << train.output;
    auto exported =
        test::run_command(test::tool("qlora-export") + " --base " + hf + " --adapter " + dir +
                          "/run/adapter --out " + dir + "/q --format " + c.format + " --threads 1");
    ASSERT_EQ(exported.exit_code, 0) << exported.output;

    tokenizer::Tokenizer tok(hf);
    const auto stream = data::tokenize_documents(
        tok, data::read_documents(test::shared_data("text/tinystories_sample_cs336.txt"), "text"));

    // The QAT model as the trainer builds it: the base (NF4 for nf4 QAT: the quickstart's blocksize
    // 64 + double quant; dense fp32 for int4), the run's adapter, merge-aware fake quantization.
    model::LoadOptions load;
    lora::QatOptions options;
    if (c.weight == "nf4") {
        load.quant = "nf4";
        options.scheme.nf4 = {quant::QuantType::kNF4, 64, true};
    } else {
        options.scheme.weight = quant::FakeQuantWeight::kInt4;
        options.scheme.group_size = 32;
    }
    model::Llama qat = model::load_llama(hf, load);
    exporting::attach_peft_adapter(*qat, dir + "/run/adapter");
    lora::apply_qat(*qat, options);
    const double unquantized = eval_loss(qat, stream, tok.bos_id());  // QAT starts inactive
    lora::set_qat_active(*qat, true);
    const double qat_loss = eval_loss(qat, stream, tok.bos_id());

    model::Llama deployed = model::load_llama(dir + "/q", {});
    const double export_loss = eval_loss(deployed, stream, tok.bos_id());
    std::printf(
        "[ measured ] %s: QAT model %.8f, %s export %.8f, same adapter without fake quant %.8f\n",
        c.weight.c_str(), qat_loss, c.format.c_str(), export_loss, unquantized);
    EXPECT_NEAR(export_loss, qat_loss, 1e-5);
    // Not vacuous: the quantized merge is a different model from the unquantized one.
    EXPECT_GT(std::abs(unquantized - qat_loss), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Schemes, QatExport,
    ::testing::Values(QatCase{"nf4", "hf-nf4", ""},
                      QatCase{"int4", "hf-int4",
                              "quant.enabled=false lora.dropout=0 qat.group_size=32"}),
    [](const auto& p) { return p.param.weight; });

}  // namespace
}  // namespace qlora
