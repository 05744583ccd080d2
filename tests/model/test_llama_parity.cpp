// Logits parity with transformers' LlamaForCausalLM / Qwen2ForCausalLM (fp32, eager attention) on
// the tiny random-weight folders of tests/data/llama (scripts/gen_llama_golden.py), and agreement
// of KV-cached incremental decoding with the full forward.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"
#include "model/llama_loader.h"
#include "model/rope.h"
#include "support/test_support.h"

namespace qlora::model {
namespace {

constexpr double kParityAtol = 1e-4;  // the bound for fp32 against transformers

class LlamaParity : public ::testing::TestWithParam<std::string> {};

TEST_P(LlamaParity, LogitsMatchTransformers) {
    const std::string folder = test::test_data("llama/" + GetParam());
    Llama model = load_llama(folder);
    io::SafetensorsReader golden(folder + "/golden.safetensors");
    torch::NoGradGuard no_grad;
    for (int i = 0; i < 3; ++i) {
        at::Tensor tokens = golden.load("tokens_" + std::to_string(i));
        at::Tensor expected = golden.load("logits_" + std::to_string(i));
        at::Tensor logits = model->forward(tokens);
        ASSERT_EQ(logits.sizes(), expected.sizes());
        double diff = (logits - expected).abs().max().item<double>();
        RecordProperty("max_abs_diff_" + std::to_string(i), std::to_string(diff));
        std::printf("%s sequence %d %s: max |diff| = %.3g\n", GetParam().c_str(), i,
                    c10::str(tokens.sizes()).c_str(), diff);
        EXPECT_TRUE(test::tensors_close(expected, logits, kParityAtol, 0.0))
            << GetParam() << " " << i;
    }
}

TEST_P(LlamaParity, KvCacheDecodingMatchesFullForward) {
    const std::string folder = test::test_data("llama/" + GetParam());
    Llama model = load_llama(folder);
    io::SafetensorsReader golden(folder + "/golden.safetensors");
    torch::NoGradGuard no_grad;
    at::Tensor tokens = golden.load("tokens_1");  // [1, 24]
    at::Tensor expected = golden.load("logits_1");
    const int64_t T = tokens.size(1);
    KvCache cache = KvCache::allocate(model->config(), 1, T, at::TensorOptions(at::kFloat));
    // A prefill of 5 tokens, a chunk of 3 (needs the offset causal mask), then one at a time.
    std::vector<at::Tensor> parts;
    int64_t pos = 0;
    for (int64_t len : {int64_t{5}, int64_t{3}}) {
        parts.push_back(model->forward(tokens.narrow(1, pos, len), pos, &cache));
        pos += len;
    }
    for (; pos < T; ++pos) parts.push_back(model->forward(tokens.narrow(1, pos, 1), pos, &cache));
    EXPECT_EQ(cache.length, T);
    EXPECT_TRUE(test::tensors_close(expected, at::cat(parts, 1), kParityAtol, 0.0));
    // Same math as the full forward, summed in another order: logits of O(10) differ by ~1e-5.
    EXPECT_TRUE(test::tensors_close(model->forward(tokens), at::cat(parts, 1), kParityAtol, 0.0));
}

TEST_P(LlamaParity, PaddingMaskLeavesRealTokensAlone) {
    // Right padding with a key mask: the logits of the real tokens must not change.
    const std::string folder = test::test_data("llama/" + GetParam());
    Llama model = load_llama(folder);
    io::SafetensorsReader golden(folder + "/golden.safetensors");
    torch::NoGradGuard no_grad;
    at::Tensor tokens = golden.load("tokens_0");  // [1, 7]
    at::Tensor padded = at::cat({tokens, at::zeros({1, 3}, at::kLong)}, 1);
    ForwardOptions options;
    options.attention_mask =
        at::cat({at::ones({1, 7}, at::kBool), at::zeros({1, 3}, at::kBool)}, 1).view({1, 1, 1, 10});
    at::Tensor logits = model->forward(padded, 0, nullptr, options).narrow(1, 0, 7);
    EXPECT_TRUE(test::tensors_close(golden.load("logits_0"), logits, kParityAtol, 0.0));
}

INSTANTIATE_TEST_SUITE_P(Golden, LlamaParity,
                         ::testing::Values("mha", "gqa_tied", "llama3_rope", "linear_rope_legacy",
                                           "qwen2_bias", "llama_bias"));

TEST(LlamaLoader, Bf16ComputeStaysClose) {
    Llama model =
        load_llama(test::test_data("llama/gqa_tied"), LoadOptions{c10::kCPU, at::kBFloat16});
    io::SafetensorsReader golden(test::test_data("llama/gqa_tied/golden.safetensors"));
    torch::NoGradGuard no_grad;
    at::Tensor logits = model->forward(golden.load("tokens_0"));
    EXPECT_EQ(logits.scalar_type(), at::kBFloat16);
    at::Tensor expected = golden.load("logits_0");
    // bf16 keeps ~3 significant digits; logits here are O(10).
    double rel = ((logits.to(at::kFloat) - expected).norm() / expected.norm()).item<double>();
    EXPECT_LT(rel, 0.05);
}

TEST(LlamaLoader, MissingAndUnexpectedTensorsAreNamed) {
    const std::string src = test::test_data("llama/mha");
    const std::string dir = test::scratch_dir("loader_names");
    std::filesystem::copy_file(src + "/config.json", dir + "/config.json");
    io::SafetensorsReader reader(src + "/model.safetensors");
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& name : reader.names()) {
        if (name != "model.layers.1.mlp.up_proj.weight")
            tensors.emplace_back(name, reader.load(name));
    }
    io::save_safetensors(dir + "/model.safetensors", tensors);
    try {
        load_llama(dir);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("missing tensor 'model.layers.1.mlp.up_proj.weight'"),
                  std::string::npos)
            << e.what();
    }
    tensors.emplace_back("model.layers.1.mlp.up_proj.weight",
                         reader.load("model.layers.1.mlp.up_proj.weight"));
    tensors.emplace_back("model.layers.2.mlp.up_proj.weight",
                         reader.load("model.layers.1.mlp.up_proj.weight"));
    io::save_safetensors(dir + "/model.safetensors", tensors);
    try {
        load_llama(dir);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(
            std::string(e.what()).find("unexpected tensor 'model.layers.2.mlp.up_proj.weight'"),
            std::string::npos)
            << e.what();
        EXPECT_NE(std::string(e.what()).find("model.layers.N.mlp.{gate,up,down}_proj.weight"),
                  std::string::npos);
    }
    tensors.pop_back();
    tensors.back().second = at::zeros({3, 3});
    io::save_safetensors(dir + "/model.safetensors", tensors);
    try {
        load_llama(dir);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find(
                      "'model.layers.1.mlp.up_proj.weight' has shape [3, 3], expected [64, 32]"),
                  std::string::npos)
            << e.what();
    }
}

TEST(Rope, Llama3ScalingKeepsHighAndSlowsLowFrequencies) {
    LlamaConfig c = LlamaConfig::load(test::test_data("llama/llama3_rope"));
    at::Tensor scaled = rope_inv_freq(c);
    c.rope_scaling = RopeScaling{};
    at::Tensor plain = rope_inv_freq(c);
    ASSERT_EQ(scaled.numel(), 8);
    EXPECT_FLOAT_EQ(scaled[0].item<float>(), plain[0].item<float>());  // wavelength 2π: kept
    EXPECT_FLOAT_EQ(scaled[7].item<float>(), plain[7].item<float>() / 8.0f);  // longest: / factor
}

}  // namespace
}  // namespace qlora::model
