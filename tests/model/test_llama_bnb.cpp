// Loading a bitsandbytes-4bit folder (written here by exporting::quantize_model, as qlora-quantize
// does): the 4-bit linears must give the same logits as quantizing while loading.
#include <gtest/gtest.h>

#include "core/error.h"
#include "export/quantize_model.h"
#include "model/llama_loader.h"
#include "support/test_support.h"

namespace qlora::model {
namespace {

TEST(LlamaBnb, PrequantizedFolderMatchesQuantizeOnLoad) {
    const std::string out = test::scratch_dir("bnb_stories") + "/nf4";
    exporting::QuantizeModelOptions q;
    q.model_dir = test::shared_data("stories260K/hf");
    q.out_dir = out;
    q.device = "cpu";
    q.compute_dtype = at::kFloat;
    exporting::quantize_model(q);

    Llama prequantized = load_llama(out);
    Llama on_load = load_llama(q.model_dir, LoadOptions{c10::kCPU, at::kFloat, "nf4"});
    int64_t n_quantized = 0;
    for (Linear& l : prequantized->linears()) n_quantized += l->quantized() ? 1 : 0;
    EXPECT_EQ(n_quantized, 5 * 7);
    torch::NoGradGuard no_grad;
    at::Tensor tokens = at::tensor({1, 403, 407, 261, 378, 432, 383, 286}, at::kLong).view({1, 8});
    at::Tensor a = prequantized->forward(tokens);
    at::Tensor b = on_load->forward(tokens);
    std::printf("bnb folder vs quantize-on-load: max |diff| = %.3g\n",
                (a - b).abs().max().item<double>());
    EXPECT_TRUE(test::tensors_close(b, a, 1e-5, 0.0));

    EXPECT_THROW(load_llama(out, LoadOptions{c10::kCPU, at::kFloat, "nf4"}), Error);
}

}  // namespace
}  // namespace qlora::model
