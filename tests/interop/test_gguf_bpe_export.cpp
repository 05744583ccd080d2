// GGUF export of byte-level BPE models, read back by llama.cpp: a tiny random Llama with the real
// Llama 3 or SmolLM2 vocabulary is exported, then scripts/check_gguf_bpe_vocab.py checks with the
// `gguf` reader that the vocabulary, merges, special ids, add_bos_token and chat template are the
// tokenizer folder's, and that llama.cpp (llama-cpp-python, vocab_only) tokenizes a corpus to
// the ids HF `tokenizers` gives.
#include <gtest/gtest.h>

#include <fstream>

#include "export/gguf_export.h"
#include "support/test_support.h"
#include "tokenizer/tokenizer.h"

namespace qlora::exporting {
namespace {

model::LlamaConfig tiny_config(int64_t vocab_size) {
    model::LlamaConfig c;
    c.hidden_size = 64;
    c.intermediate_size = 128;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.num_key_value_heads = 2;
    c.head_dim = 32;
    c.vocab_size = vocab_size;
    c.rope_theta = 500000.0;
    c.tie_word_embeddings = true;
    return c;
}

// The first documents of the parity corpus (prose, code, numbers, scripts, emoji, specials).
std::string texts_file(const std::string& dir) {
    const std::string corpus = dir + "/corpus.jsonl";
    auto r = qlora::test::run_command(qlora::test::python() + " " + QLORA_SOURCE_DIR +
                                      "/scripts/gen_tokenizer_corpus.py " + QLORA_SHARED_DIR +
                                      "/data " + corpus + " 200000");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return corpus;
}

class GgufBpeExport : public ::testing::TestWithParam<std::pair<std::string, std::string>> {};

TEST_P(GgufBpeExport, LlamaCppReadsOurVocabulary) {
    const auto& [name, pre] = GetParam();
    const std::string tokenizer_dir = qlora::test::shared_data("tokenizers/" + name);
    const std::string dir = qlora::test::scratch_dir("gguf_bpe_" + name);
    const tokenizer::Tokenizer tok(tokenizer_dir);
    GgufExportInputs in;
    in.config = tiny_config(tok.vocab_size());
    in.tokenizer_model = tokenizer_dir;
    for (const auto& p : plan_gguf_tensors(in.config, GgufType::kF16)) {
        if (!p.hf_name.empty()) in.tensor_names.push_back(p.hf_name);
    }
    const auto config = in.config;
    in.load_tensor = [&config](const std::string& hf_name) {
        for (const auto& p : plan_gguf_tensors(config, GgufType::kF16)) {
            if (p.hf_name == hf_name) return at::randn(p.shape, at::kFloat) * 0.02;
        }
        return at::Tensor();
    };
    in.out_file = dir + "/" + name + ".gguf";
    in.model_name = name;
    export_gguf(in);
    auto r = qlora::test::run_command(qlora::test::python() + " " + QLORA_SOURCE_DIR +
                                      "/scripts/check_gguf_bpe_vocab.py " + in.out_file + " " +
                                      tokenizer_dir + " " + pre + " " + texts_file(dir));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::cout << "[ measured ] " << name << ": " << r.output;
}

INSTANTIATE_TEST_SUITE_P(
    RealVocabularies, GgufBpeExport,
    ::testing::Values(std::pair<std::string, std::string>{"llama3", "llama-bpe"},
                      std::pair<std::string, std::string>{"smollm2", "smollm"}),
    [](const auto& test_case) { return test_case.param.first; });

}  // namespace
}  // namespace qlora::exporting
