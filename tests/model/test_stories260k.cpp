// The real tiny model: stories260K (llama2.c) in HF layout must reproduce llama2.c's reference
// logits and generations (greedy and seeded top-p), and its cs336-sample loss (PROVENANCE.md).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "data/documents.h"
#include "model/evaluate.h"
#include "model/generate.h"
#include "model/llama_loader.h"
#include "support/test_support.h"

namespace qlora::model {
namespace {

constexpr double kLogitsAtol = 1e-4;     // PROVENANCE.md: a float32 forward agrees to ~1e-4
constexpr double kLossTolerance = 5e-4;  // 1.3011 is given to 4 decimals
// NF4 (blocksize 64, double quant) of a 260K-parameter model whose matrices are only 64 wide costs
// measurable loss; the bound says "close", the measured gap is printed.
constexpr double kNf4LossGap = 0.15;  // measured: +0.109 nats (1.3011 -> 1.4101)

std::string hf_dir() { return test::shared_data("stories260K/hf"); }

nlohmann::json reference(int index) {
    std::ifstream in(test::shared_data("stories260K/reference/stories260K_reference_outputs.json"));
    return nlohmann::json::parse(in).at(index);
}

std::vector<int64_t> reference_ids(int index) {
    return reference(index).at("token_ids").get<std::vector<int64_t>>();
}

TEST(Stories260K, LogitsOfFirst32TokensMatchReference) {
    Llama model = load_llama(hf_dir());
    std::ifstream in(test::shared_data("stories260K/reference/stories260K_logits_first32.f32"),
                     std::ios::binary);
    std::vector<float> raw(32 * 512);
    in.read(reinterpret_cast<char*>(raw.data()),
            static_cast<std::streamsize>(raw.size() * sizeof(float)));
    ASSERT_TRUE(in.good());
    at::Tensor expected = at::from_blob(raw.data(), {32, 512}, at::kFloat).clone();
    std::vector<int64_t> ids = reference_ids(0);
    ids.resize(32);
    torch::NoGradGuard no_grad;
    at::Tensor logits = model->forward(at::tensor(ids, at::kLong).view({1, 32}))[0];
    std::printf("stories260K logits[32, 512]: max |diff| = %.3g\n",
                (logits - expected).abs().max().item<double>());
    EXPECT_TRUE(test::tensors_close(expected, logits, kLogitsAtol, 0.0));
    EXPECT_EQ(logits[0].argmax().item<int64_t>(), 403);  // "▁Once"
}

// run.c -n N runs N positions: the sequence ends up N + 1 ids long, BOS included.
GenerateResult generate_like_run_c(Llama& model, const std::vector<int64_t>& prompt, int64_t steps,
                                   SamplingOptions sampling) {
    GenerateOptions options;
    options.max_new_tokens = steps + 1 - static_cast<int64_t>(prompt.size());
    options.sampling = sampling;
    return generate(model, prompt, options);
}

TEST(Stories260K, GreedyGenerationMatchesLlama2c) {
    Llama model = load_llama(hf_dir());
    tokenizer::Tokenizer tok(test::shared_data("stories260K/tok512.model"));
    // -n 64 -i "Once upon a time"
    std::vector<int64_t> prompt = tok.encode("Once upon a time", true);
    GenerateResult a = generate_like_run_c(model, prompt, 64, {});
    EXPECT_EQ(a.tokens, reference_ids(2));
    // BOS only: -n 200 (llama2.c's test_all.py) and the default 256 steps
    GenerateResult b = generate_like_run_c(model, {1}, 256, {});
    EXPECT_EQ(b.tokens, reference_ids(0));
    std::vector<int64_t> first201(b.tokens.begin(), b.tokens.begin() + 201);
    EXPECT_EQ(first201, reference_ids(1));
    EXPECT_EQ(tok.decode(b.tokens),
              reference(0).at("stdout_text_without_final_newline").get<std::string>());
    std::printf("stories260K greedy: %.0f tokens/s (decode, CPU fp32)\n",
                b.decode_tokens_per_second());
}

TEST(Stories260K, SeededTopPSamplingMatchesLlama2c) {
    // ./run -t 1.0 -p 0.9 -s 133742: same xorshift64* stream, same sample_topp.
    Llama model = load_llama(hf_dir());
    SamplingOptions sampling;
    sampling.temperature = 1.0;
    sampling.top_p = 0.9;
    sampling.seed = 133742;
    GenerateResult r = generate_like_run_c(model, {1}, 256, sampling);
    EXPECT_EQ(r.tokens, reference_ids(3));
}

TEST(Stories260K, StreamedTextEqualsDecodedText) {
    tokenizer::Tokenizer tok(test::shared_data("stories260K/tok512.model"));
    std::vector<int64_t> ids = reference_ids(3);
    TextStreamer streamer(tok);
    std::string streamed;
    for (int64_t id : ids) streamed += streamer.push({id});
    streamed += streamer.finish();
    EXPECT_EQ(streamed, reference(3).at("stdout_text_without_final_newline").get<std::string>());
    // A character split over byte tokens is held back until complete: "é" = <0xC3> <0xA9>.
    TextStreamer bytes(tok);
    EXPECT_EQ(bytes.push({tok.piece_to_id("<0xC3>")}), "");
    EXPECT_EQ(bytes.push({tok.piece_to_id("<0xA9>")}), "\xC3\xA9");
}

TEST(Stories260K, LossOnCs336SampleMatchesProvenance) {
    Llama model = load_llama(hf_dir());
    tokenizer::Tokenizer tok(test::shared_data("stories260K/tok512.model"));
    auto docs =
        data::read_documents(test::shared_data("text/tinystories_sample_cs336.txt"), "text");
    ASSERT_EQ(docs.size(), 5u);
    std::vector<int64_t> stream = data::tokenize_documents(tok, docs);
    EvalResult fp32 = evaluate_stream(model, stream, 512, tok.bos_id());
    std::printf("stories260K fp32: loss %.4f ppl %.4f over %lld tokens\n", fp32.loss,
                fp32.perplexity, static_cast<long long>(fp32.tokens));
    EXPECT_NEAR(fp32.loss, 1.3011, kLossTolerance);
    EXPECT_EQ(fp32.tokens, 1804);

    Llama nf4 = load_llama(hf_dir(), LoadOptions{c10::kCPU, at::kFloat, "nf4"});
    EvalResult q = evaluate_stream(nf4, stream, 512, tok.bos_id());
    std::printf("stories260K nf4: loss %.4f ppl %.4f (fp32 %.4f / %.4f)\n", q.loss, q.perplexity,
                fp32.loss, fp32.perplexity);
    EXPECT_GT(q.loss, fp32.loss - 0.01);
    EXPECT_LT(q.loss, fp32.loss + kNf4LossGap);
    EXPECT_LT(nf4->weight_nbytes(), model->weight_nbytes());
}

}  // namespace
}  // namespace qlora::model
