// Class "accepted when it should be refused" (NaN/Inf weights): a non-finite weight is refused
// when a model or adapter loads, naming the tensor; eval and every export refuse rather than emit
// NaN ({"loss": null} with exit 0 was the bug).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "io/finite_check.h"
#include "lora/peft_adapter.h"
#include "model/llama_loader.h"
#include "robustness/robustness_support.h"

namespace qlora {
namespace {

TEST(NonFinite, ModelLoadNamesTheTensor) {
    const std::string dir = test::scratch_dir("nonfinite_model");
    const std::string model = test::copy_stories_model(dir);
    test::poison_tensor(model, "model.layers.3.mlp.up_proj.weight", std::nanf(""));
    for (const std::string quant : {"none", "nf4"}) {
        model::LoadOptions o;
        o.quant = quant;
        const std::string e = test::error_of([&] { model::load_llama(model, o); });
        EXPECT_NE(e.find("tensor 'model.layers.3.mlp.up_proj.weight' holds NaN or Inf (1 of"),
                  std::string::npos)
            << e;
    }
}

// float32 weights beyond the fp16 range become Inf when cast: refused at load, not at the loss.
TEST(NonFinite, OverflowOnTheCastIsCaught) {
    const std::string dir = test::scratch_dir("nonfinite_cast");
    const std::string model = test::copy_stories_model(dir);
    test::poison_tensor(model, "model.norm.weight", 1e30f);
    model::LoadOptions o;
    o.dtype = at::kHalf;
    EXPECT_NE(test::error_of([&] {
                  model::load_llama(model, o);
              }).find("'model.norm.weight' holds NaN or Inf"),
              std::string::npos);
    o.dtype = at::kFloat;
    EXPECT_EQ(test::error_of([&] { model::load_llama(model, o); }), "(no error)");
}

TEST(NonFinite, AdapterLoadNamesTheTensor) {
    const std::string dir = test::scratch_dir("nonfinite_adapter");
    test::write_small_adapter(dir + "/a");  // saving refuses Inf, so poison the file afterwards
    test::poison_tensor(dir + "/a",
                        "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight",
                        std::numeric_limits<float>::infinity(), "adapter_model.safetensors");
    const std::string e = test::error_of([&] { lora::load_peft_adapter(dir + "/a"); });
    EXPECT_NE(e.find("adapter_model.safetensors: tensor "
                     "'base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight'"),
              std::string::npos)
        << e;
    EXPECT_NE(e.find("holds NaN or Inf"), std::string::npos) << e;
}

TEST(NonFinite, EvalRefusesInsteadOfPrintingNull) {
    const std::string dir = test::scratch_dir("nonfinite_eval");
    const std::string model = test::copy_stories_model(dir);
    test::poison_tensor(model, "model.embed_tokens.weight", std::nanf(""));
    auto r =
        test::run_command(test::tool("qlora-eval") + " --model " + model + " --device cpu --data " +
                          test::shared_data("text/tinystories_sample_cs336.txt"));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_EQ(r.output.find("null"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("model.embed_tokens.weight"), std::string::npos) << r.output;
}

// A merge that overflows fp16 (a large but finite adapter) must not write Inf into hf-fp16.
TEST(NonFinite, ExportRefusesAnOverflowingMerge) {
    const std::string dir = test::scratch_dir("nonfinite_export");
    test::write_small_adapter(dir + "/adapter", 3e4f);
    auto r = test::run_command(test::tool("qlora-export") + " --base " +
                               test::shared_data("stories260K/hf") + " --adapter " + dir +
                               "/adapter --format hf-fp16 --out " + dir + "/out");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("overflow"), std::string::npos) << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir + "/out"));
}

TEST(NonFinite, NonFiniteTensorOfAModuleIsFound) {
    torch::nn::Linear lin(4, 4);
    EXPECT_FALSE(io::first_nonfinite_tensor(*lin));
    {
        torch::NoGradGuard g;
        lin->bias[2] = std::nanf("");
    }
    EXPECT_EQ(io::first_nonfinite_tensor(*lin), std::optional<std::string>("bias"));
}

}  // namespace
}  // namespace qlora
