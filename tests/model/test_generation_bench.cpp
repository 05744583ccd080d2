// Generation speed on the CPU (DISABLED_: run on demand with
//   build/tests/test_model --gtest_also_run_disabled_tests --gtest_filter='*GenerationBench*'
// ). Prints decode tokens/s for stories260K and for a random model shaped like Llama-3.2-1B
// (hidden 2048, 16 layers, 32/8 heads, MLP 8192, vocab 128256, tied), fp32 and NF4.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>

#include "model/generate.h"
#include "model/llama_loader.h"
#include "support/test_support.h"

namespace qlora::model {
namespace {

double decode_rate(Llama& model, const std::vector<int64_t>& prompt, int64_t new_tokens) {
    GenerateOptions options;
    options.max_new_tokens = new_tokens;
    GenerateResult r = generate(model, prompt, options);
    std::printf("  prompt %lld, generated %lld, prefill %.3fs, decode %.2f tokens/s\n",
                static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.new_tokens),
                r.prefill_seconds, r.decode_tokens_per_second());
    return r.decode_tokens_per_second();
}

TEST(GenerationBench, DISABLED_Stories260K) {
    std::printf("threads: %d\n", at::get_num_threads());
    for (const char* quant : {"none", "nf4"}) {
        Llama model = load_llama(test::shared_data("stories260K/hf"),
                                 LoadOptions{c10::kCPU, at::kFloat, quant});
        std::printf("stories260K %s:\n", quant);
        decode_rate(model, {1}, 16);  // warm-up
        EXPECT_GT(decode_rate(model, {1}, 256), 0.0);
    }
}

TEST(GenerationBench, DISABLED_Random1B) {
    LlamaConfig c;
    c.hidden_size = 2048;
    c.intermediate_size = 8192;
    c.num_hidden_layers = 16;
    c.num_attention_heads = 32;
    c.num_key_value_heads = 8;
    c.head_dim = 64;
    c.vocab_size = 128256;
    c.max_position_embeddings = 2048;
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = true;
    if (const char* layers = std::getenv("QLORA_BENCH_LAYERS"))
        c.num_hidden_layers = std::atoi(layers);
    std::printf("random Llama-3.2-1B shape, %lld layers, %.2fB parameters, threads %d\n",
                static_cast<long long>(c.num_hidden_layers), c.num_parameters() / 1e9,
                at::get_num_threads());
    Llama model(c);
    auto t0 = std::chrono::steady_clock::now();
    model->init_random(1, at::kFloat, c10::kCPU);
    std::printf("init %.1fs, weights %.2f GB\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                model->weight_nbytes() / 1e9);
    const std::vector<int64_t> prompt = {1, 15, 27, 300, 4000, 128000, 77, 9};
    std::printf("fp32:\n");
    decode_rate(model, prompt, 2);
    double fp32 = decode_rate(model, prompt, 8);
    t0 = std::chrono::steady_clock::now();
    model->quantize_linears(quant::Quant4Options{});
    std::printf("nf4 (quantized in %.1fs, weights %.2f GB):\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                model->weight_nbytes() / 1e9);
    double nf4 = decode_rate(model, prompt, 8);
    std::printf("1B-shaped decode: fp32 %.2f tokens/s, nf4 %.2f tokens/s\n", fp32, nf4);
}

}  // namespace
}  // namespace qlora::model
