// GGUF -> model::Llama: the SmolLM2 GGUF's config, names and tied output; Q/K rows back in Hugging
// Face order (our f16 GGUF export of stories260K, whose Q/K rows the exporter permuted the way
// llama.cpp's converter does, loads back to the same model); NF4 on load; refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <sstream>

#include "export/gguf_export.h"
#include "io/safetensors.h"
#include "model/evaluate.h"
#include "model/gguf_config.h"
#include "model/gguf_model.h"
#include "model/gguf_names.h"
#include "model/llama_loader.h"
#include "support/gguf_import.h"
#include "support/test_support.h"

namespace qlora::model {
namespace {

using qlora::test::error_of;

TEST(GgufNames, MapsLlamaCppNamesToHuggingFace) {
    EXPECT_EQ(hf_name_for_gguf("token_embd.weight"), "model.embed_tokens.weight");
    EXPECT_EQ(hf_name_for_gguf("output.weight"), "lm_head.weight");
    EXPECT_EQ(hf_name_for_gguf("output_norm.weight"), "model.norm.weight");
    EXPECT_EQ(hf_name_for_gguf("blk.12.attn_q.weight"), "model.layers.12.self_attn.q_proj.weight");
    EXPECT_EQ(hf_name_for_gguf("blk.0.ffn_norm.weight"),
              "model.layers.0.post_attention_layernorm.weight");
    EXPECT_EQ(hf_name_for_gguf("blk.3.attn_output.weight"),
              "model.layers.3.self_attn.o_proj.weight");
    EXPECT_EQ(hf_name_for_gguf("rope_freqs.weight"), std::nullopt);
    EXPECT_EQ(hf_name_for_gguf("blk.x.attn_q.weight"), std::nullopt);
    EXPECT_EQ(hf_name_for_gguf("blk.0.ffn_gate_exps.weight"), std::nullopt);
    EXPECT_EQ(rope_permute_heads("model.layers.1.self_attn.q_proj.weight", 9, 3), 9);
    EXPECT_EQ(rope_permute_heads("model.layers.1.self_attn.k_proj.bias", 9, 3), 3);
    EXPECT_EQ(rope_permute_heads("model.layers.1.self_attn.v_proj.weight", 9, 3), 0);
}

TEST(GgufNames, UnpermuteInvertsTheConverterPermutation) {
    at::Tensor w = at::arange(8 * 3, at::kFloat).reshape({8, 3});
    at::Tensor p = permute_rope_rows(w, 2);
    // head 0 rows [0 1 2 3] (two halves [0 1] [2 3]) interleave to [0 2 1 3]
    EXPECT_EQ(p[1][0].item<float>(), w[2][0].item<float>());
    EXPECT_TRUE(at::equal(unpermute_rope_rows(p, 2), w));
    EXPECT_TRUE(at::equal(permute_rope_rows(unpermute_rope_rows(w, 2), 2), w));
}

TEST(GgufConfig, SmolLM2HyperparametersComeFromTheLlamaKeys) {
    io::GgufReader r(qlora::test::smollm2_gguf());
    const nlohmann::json j = gguf_hf_config(r);
    const LlamaConfig c = gguf_llama_config(r);
    EXPECT_EQ(c.num_hidden_layers, 30);
    EXPECT_EQ(c.hidden_size, 576);
    EXPECT_EQ(c.intermediate_size, 1536);
    EXPECT_EQ(c.num_attention_heads, 9);
    EXPECT_EQ(c.num_key_value_heads, 3);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.vocab_size, 49152);
    EXPECT_EQ(c.rope_theta, 100000.0);
    EXPECT_EQ(c.max_position_embeddings, 8192);
    EXPECT_TRUE(c.tie_word_embeddings);                // the file has no output.weight
    EXPECT_EQ(j["rms_norm_eps"].get<double>(), 1e-5);  // float32 shown as its shortest decimal
    EXPECT_EQ(c.bos_token_id, 1);
    EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
    EXPECT_EQ(c.pad_token_id, 2);
    EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
}

// 384 tokens of Shakespeare by the reference HF tokenizer (tokenizers, in the venv).
std::vector<int64_t> shakespeare_tokens(int64_t n) {
    auto r = qlora::test::run_command(qlora::test::gguf_import_script() + " tokenize " +
                                      qlora::test::shared_data("tokenizers/smollm2") + " " +
                                      qlora::test::shared_data("text/tinyshakespeare.txt") + " " +
                                      std::to_string(n) + " 2>&1");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::vector<int64_t> ids;
    std::stringstream in(r.output);
    for (std::string id; std::getline(in, id, ',');) ids.push_back(std::stoll(id));
    return ids;
}

TEST(GgufModel, LoadsSmolLM2AsLlamaAndNf4OnRequest) {
    const std::string path = qlora::test::smollm2_gguf();
    GgufLlamaFile file(path);
    EXPECT_EQ(file.hf_names().size(), 272u);
    Llama m = load_llama(path);
    // The q_proj weight is the GGUF's dequantized attn_q with its rows un-permuted.
    at::Tensor q = file.reader().dequantize("blk.4.attn_q.weight");
    EXPECT_TRUE(at::equal(m->layers[4]->self_attn->q_proj->weight(), unpermute_rope_rows(q, 9)));
    EXPECT_FALSE(at::equal(m->layers[4]->self_attn->q_proj->weight(), q));
    EXPECT_TRUE(at::equal(m->lm_head->weight(), m->embed_weight));  // tied

    LoadOptions nf4;
    nf4.quant = "nf4";  // blocksize 64, double quant: QLoRA's base
    Llama q4 = load_llama(path, nf4);
    EXPECT_TRUE(q4->layers[0]->mlp->down_proj->quantized());
    EXPECT_FALSE(q4->lm_head->quantized());
    EXPECT_LT(q4->weight_nbytes(), m->weight_nbytes() / 2);

    // What requantizing the Q4_1 weights to NF4 costs in loss on real text (the same tokens).
    const std::vector<int64_t> tokens = shakespeare_tokens(384);
    ASSERT_EQ(tokens.size(), 384u);
    torch::NoGradGuard no_grad;
    const EvalResult fp32 = evaluate_stream(m, tokens, 384, -1);
    const EvalResult requant = evaluate_stream(q4, tokens, 384, -1);
    std::printf(
        "[ measured ] SmolLM2 on %lld Shakespeare tokens: loss GGUF-dequantized fp32 %.4f, "
        "NF4 of it %.4f (%+.2f%%)\n",
        static_cast<long long>(fp32.tokens), fp32.loss, requant.loss,
        100.0 * (requant.loss - fp32.loss) / fp32.loss);
    EXPECT_EQ(fp32.tokens, 383);
    EXPECT_GT(fp32.loss, 1.0);  // a real model on real text: neither random (10.8) nor memorized
    EXPECT_LT(fp32.loss, 6.0);
    EXPECT_NE(requant.loss, fp32.loss);
    EXPECT_LT(std::abs(requant.loss - fp32.loss), 0.1 * fp32.loss);  // requantized, not broken
}

// stories260K -> our f16 GGUF (Q/K permuted as llama.cpp's converter does) -> load_llama: the
// same weights (F16-rounded) in Hugging Face order.
TEST(GgufModel, OurF16ExportLoadsBackToTheSameModel) {
    const std::string base = qlora::test::shared_data("stories260K/hf");
    const std::string out = qlora::test::scratch_dir("gguf_model_stories") + "/stories.gguf";
    io::SafetensorsFolder folder(base);
    exporting::GgufExportInputs in;
    in.config = LlamaConfig::load(base);
    in.tokenizer_model = base + "/tokenizer.model";
    in.tensor_names = folder.names();
    in.load_tensor = [&](const std::string& n) { return folder.load(n).to(at::kFloat); };
    in.type = exporting::GgufType::kF16;
    in.out_file = out;
    exporting::export_gguf(in);

    Llama ours = load_llama(out);
    Llama ref = load_llama(base);
    for (size_t l = 0; l < ref->layers.size(); ++l) {
        for (auto [a, b] :
             {std::pair{ours->layers[l]->self_attn->q_proj, ref->layers[l]->self_attn->q_proj},
              std::pair{ours->layers[l]->self_attn->k_proj, ref->layers[l]->self_attn->k_proj}}) {
            EXPECT_TRUE(at::equal(a->weight(), b->weight().to(at::kHalf).to(at::kFloat)))
                << "layer " << l;
        }
    }
    EXPECT_EQ(ours->config().num_key_value_heads, ref->config().num_key_value_heads);
    EXPECT_EQ(ours->config().rms_norm_eps, ref->config().rms_norm_eps);
}

TEST(GgufModel, RefusesWhatOurLlamaCannotRepresent) {
    const std::string dir = qlora::test::scratch_dir("gguf_model_refuse");
    auto make = [&](const std::string& name, const std::string& arch,
                    const std::string& extra_tensor) {
        const std::string path = dir + "/" + name + ".gguf";
        exporting::GgufWriter w(path);
        w.add_string("general.architecture", arch);
        w.add_uint32(arch + ".block_count", 1);
        w.add_uint32(arch + ".embedding_length", 32);
        w.add_uint32(arch + ".feed_forward_length", 64);
        w.add_uint32(arch + ".attention.head_count", 2);
        w.add_float32(arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
        w.add_uint32(arch + ".vocab_size", 8);
        w.add_tensor_info(extra_tensor, {32}, quant::GgmlType::kF32);
        w.write_tensor_data(extra_tensor, at::zeros({32 * 4}, at::kByte));
        w.finish();
        return path;
    };
    const std::string qwen = make("qwen", "qwen2", "output_norm.weight");
    EXPECT_EQ(
        error_of([&] { load_llama(qwen); }),
        qwen +
            ": key 'general.architecture': architecture 'qwen2' is not supported (expected llama)");
    const std::string extra = make("extra", "llama", "blk.0.ffn_gate_exps.weight");
    EXPECT_NE(error_of([&] {
                  load_llama(extra);
              }).find(extra + ": tensor 'blk.0.ffn_gate_exps.weight' has no place"),
              std::string::npos);
    const std::string beyond = make("beyond", "llama", "blk.7.attn_norm.weight");
    EXPECT_EQ(error_of([&] { load_llama(beyond); }),
              beyond + ": tensor 'blk.7.attn_norm.weight' is beyond llama.block_count (1)");
    const std::string missing = make("missing", "llama", "output_norm.weight");
    EXPECT_NE(error_of([&] {
                  load_llama(missing);
              }).find(missing + ": missing tensor 'model.embed_tokens.weight'"),
              std::string::npos);
    const std::string rope = make("rope", "llama", "rope_freqs.weight");
    EXPECT_NE(error_of([&] {
                  load_llama(rope);
              }).find("'rope_freqs.weight' (llama3 rope scaling) is not supported"),
              std::string::npos);
}

}  // namespace
}  // namespace qlora::model
