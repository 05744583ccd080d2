// export_gguf on a tiny synthetic Llama: the tensor plan (names, shapes, types per file type,
// untied output, llama3 rope_freqs), the Q/K row permutation, metadata read back, and bad input
// (type string, shapes, missing or extra tensors, existing or unwritable output) refused with
// nothing left behind.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <numeric>

#include "export/gguf_export.h"
#include "export/gguf_test_reader.h"
#include "io/atomic_file.h"
#include "support/test_support.h"

namespace qlora::exporting {
namespace {

namespace fs = std::filesystem;
using qlora::test::error_of;

model::LlamaConfig tiny_config() {
    // 520 ids: the 512 SentencePiece pieces of stories260K's tokenizer + 8 padding ids
    return model::LlamaConfig::from_json(nlohmann::json::parse(R"({
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 520,
        "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "bos_token_id": 1, "eos_token_id": 2
    })"));
}

// Deterministic weights for every planned tensor; `override_shape` bends one of them.
GgufExportInputs tiny_inputs(const std::string& out, GgufType type = GgufType::kQ4_0) {
    GgufExportInputs in;
    in.config = tiny_config();
    in.tokenizer_model = qlora::test::shared_data("stories260K/hf/tokenizer.model");
    for (const auto& p : plan_gguf_tensors(in.config, type)) {
        if (!p.hf_name.empty()) in.tensor_names.push_back(p.hf_name);
    }
    auto config = in.config;
    in.load_tensor = [config, type](const std::string& name) {
        for (const auto& p : plan_gguf_tensors(config, type)) {
            if (p.hf_name == name) {
                const int64_t n = std::accumulate(p.shape.begin(), p.shape.end(), int64_t{1},
                                                  std::multiplies<>());
                return at::sin(at::arange(n, at::kFloat) * 0.37f + static_cast<float>(name.size()))
                    .reshape(p.shape);
            }
        }
        return at::Tensor();
    };
    in.type = type;
    in.out_file = out;
    in.model_name = "tiny";
    return in;
}

TEST(GgufExport, ParsesTypeStrings) {
    EXPECT_EQ(parse_gguf_type("f16"), GgufType::kF16);
    EXPECT_EQ(parse_gguf_type("q8_0"), GgufType::kQ8_0);
    EXPECT_EQ(parse_gguf_type("q4_0"), GgufType::kQ4_0);
    EXPECT_EQ(error_of([] { parse_gguf_type("q4_k_m"); }),
              "GGUF type must be one of f16, q8_0, q4_0, got 'q4_k_m'");
    EXPECT_EQ(gguf_file_type(GgufType::kF16), 1u);
    EXPECT_EQ(gguf_file_type(GgufType::kQ4_0), 2u);
    EXPECT_EQ(gguf_file_type(GgufType::kQ8_0), 7u);
}

TEST(GgufExport, PlanNamesShapesAndTypes) {
    model::LlamaConfig c = tiny_config();
    auto plan = plan_gguf_tensors(c, GgufType::kQ4_0);
    ASSERT_EQ(plan.size(), 3u + 2 * 9);
    EXPECT_EQ(plan[0].gguf_name, "token_embd.weight");
    EXPECT_EQ(plan[0].type, GgmlType::kQ4_0);  // untied: a plain matrix
    EXPECT_EQ(plan.back().gguf_name, "output.weight");
    EXPECT_EQ(plan.back().hf_name, "lm_head.weight");
    EXPECT_EQ(plan.back().type, GgmlType::kQ8_0);  // llama-quantize keeps the output at more bits
    EXPECT_EQ(plan[2].gguf_name, "blk.0.attn_q.weight");
    EXPECT_EQ(plan[2].permute_heads, 4);
    EXPECT_EQ(plan[3].gguf_name, "blk.0.attn_k.weight");
    EXPECT_EQ(plan[3].shape, (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(plan[3].permute_heads, 2);
    EXPECT_EQ(plan[4].permute_heads, 0);  // v is not rotated
    EXPECT_EQ(plan[9].gguf_name, "blk.0.ffn_down.weight");
    EXPECT_EQ(plan[9].shape, (std::vector<int64_t>{64, 96}));
    EXPECT_EQ(plan[1].type, GgmlType::kF32);  // attn_norm
    for (const auto& p : plan_gguf_tensors(c, GgufType::kQ8_0)) {
        EXPECT_EQ(p.type, p.shape.size() == 1 ? GgmlType::kF32 : GgmlType::kQ8_0) << p.gguf_name;
    }
    c.intermediate_size = 100;  // ffn_down rows of 100: F16 fallback
    c.tie_word_embeddings = true;
    c.rope_scaling.type = "llama3";
    plan = plan_gguf_tensors(c, GgufType::kQ4_0);
    EXPECT_EQ(plan[0].gguf_name, "rope_freqs.weight");
    EXPECT_EQ(plan[0].shape, (std::vector<int64_t>{8}));
    EXPECT_EQ(plan[1].type, GgmlType::kQ8_0);  // tied embedding = output
    EXPECT_EQ(plan[10].gguf_name, "blk.0.ffn_down.weight");
    EXPECT_EQ(plan[10].type, GgmlType::kF16);
    EXPECT_EQ(plan.back().gguf_name, "output_norm.weight");
}

TEST(GgufExport, RopePermutationInterleavesHalves) {
    // One head of 4 rows [r0 r1 | r2 r3] (rotate-half pairs r0-r2, r1-r3) -> [r0 r2 r1 r3].
    at::Tensor w = at::arange(8, at::kFloat).reshape({4, 2});
    at::Tensor p = permute_rope_rows(w, 1);
    EXPECT_TRUE(at::equal(p.select(1, 0), at::tensor({0.0f, 4.0f, 2.0f, 6.0f})));
    at::Tensor big = at::randn({32, 8});
    EXPECT_TRUE(at::equal(unpermute_rope_rows(permute_rope_rows(big, 4), 4), big));
    EXPECT_FALSE(at::equal(permute_rope_rows(big, 4), big));
}

TEST(GgufExport, Llama3RopeFreqs) {
    model::LlamaConfig c = tiny_config();
    c.rope_theta = 500000.0;
    c.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 64};
    at::Tensor f = llama3_rope_freqs(c);
    ASSERT_EQ(f.numel(), 8);
    for (int64_t i = 0; i < 8; ++i) {  // the formula of transformers' llama3 rope, in double
        const double freq = 1.0 / std::pow(500000.0, 2.0 * static_cast<double>(i) / 16.0);
        const double wavelen = 2 * M_PI / freq;
        double want = 8.0;
        if (wavelen < 64.0 / 4.0) {
            want = 1.0;
        } else if (wavelen <= 64.0) {
            const double smooth = (64.0 / wavelen - 1.0) / 3.0;
            want = 1.0 / ((1 - smooth) / 8.0 + smooth);
        }
        EXPECT_NEAR(f[i].item<double>(), want, 1e-5 * want) << i;
    }
    EXPECT_EQ(f[0].item<float>(), 1.0f);
    EXPECT_EQ(f[7].item<float>(), 8.0f);
}

TEST(GgufExport, TinyModelMetadataAndTensorsReadBack) {
    const std::string dir = qlora::test::scratch_dir("gguf_tiny");
    const std::string out = dir + "/tiny.gguf";
    GgufExportSummary s = export_gguf(tiny_inputs(out));
    EXPECT_EQ(s.tensors, 21);
    EXPECT_TRUE(s.fallbacks.empty());
    const auto f = qlora::test::read_gguf(out);
    EXPECT_EQ(f.version, 3u);
    EXPECT_EQ(f.key_order.front(), "general.architecture");
    EXPECT_EQ(f.kv.at("general.architecture").s, "llama");
    EXPECT_EQ(f.kv.at("general.name").s, "tiny");
    EXPECT_EQ(f.kv.at("general.file_type").u, 2u);
    EXPECT_EQ(f.kv.at("llama.attention.head_count_kv").u, 2u);
    EXPECT_EQ(f.kv.at("llama.rope.dimension_count").u, 16u);
    EXPECT_EQ(f.kv.at("llama.feed_forward_length").u, 96u);
    EXPECT_EQ(static_cast<float>(f.kv.at("llama.attention.layer_norm_rms_epsilon").f), 1e-5f);
    const auto& tokens = f.kv.at("tokenizer.ggml.tokens").strings;
    ASSERT_EQ(tokens.size(), 520u);
    EXPECT_EQ(tokens[515], "[PAD515]");
    EXPECT_EQ(f.kv.at("tokenizer.ggml.token_type").numbers[515], 5.0);
    EXPECT_EQ(f.kv.at("tokenizer.ggml.scores").numbers[515], -10000.0);
    EXPECT_EQ(f.kv.at("tokenizer.ggml.bos_token_id").u, 1u);
    EXPECT_EQ(f.kv.count("tokenizer.ggml.padding_token_id"), 0u);
    EXPECT_EQ(f.tensor("output.weight").type, 8u);
    EXPECT_EQ(f.tensor("blk.1.ffn_down.weight").ne, (std::vector<uint64_t>{96, 64}));
    EXPECT_EQ(f.tensor("blk.1.ffn_down.weight").type, 2u);
    EXPECT_EQ(f.bytes.size(), static_cast<size_t>(s.bytes));
}

TEST(GgufExport, BadInputIsRefusedAndLeavesNothing) {
    const std::string dir = qlora::test::scratch_dir("gguf_bad");
    const std::string out = dir + "/bad.gguf";
    auto in = tiny_inputs(out);
    auto load = in.load_tensor;
    in.load_tensor = [load](const std::string& name) {
        at::Tensor t = load(name);
        return name == "model.layers.1.mlp.up_proj.weight" ? t.reshape({64, 96}) : t;
    };
    EXPECT_EQ(error_of([&] { export_gguf(in); }),
              "GGUF export: tensor 'model.layers.1.mlp.up_proj.weight' has shape [64, 96], "
              "expected [96, 64] "
              "from config.json (hidden_size 64, intermediate_size 96, heads 4/2, head_dim 16, "
              "vocab_size 520)");
    EXPECT_TRUE(fs::is_empty(dir)) << "a failed export left files behind";

    in = tiny_inputs(out);
    in.tensor_names.erase(in.tensor_names.begin() + 3);
    EXPECT_EQ(error_of([&] { export_gguf(in); }),
              "GGUF export: missing tensor 'model.layers.0.self_attn.k_proj.weight' (needed for "
              "blk.0.attn_k.weight; the model has 20 tensors)");
    in = tiny_inputs(out);
    in.tensor_names.push_back("model.layers.0.self_attn.q_proj.bias");
    EXPECT_NE(error_of([&] {
                  export_gguf(in);
              }).find("tensor 'model.layers.0.self_attn.q_proj.bias' has no place"),
              std::string::npos);
    in = tiny_inputs(out);
    in.config.vocab_size = 500;
    EXPECT_NE(
        error_of([&] { export_gguf(in); }).find("has 512 pieces but config.json vocab_size is 500"),
        std::string::npos);
    in = tiny_inputs(out);
    in.config.qkv_bias = true;
    EXPECT_NE(error_of([&] { export_gguf(in); }).find("bias tensors are not supported"),
              std::string::npos);
    EXPECT_TRUE(fs::is_empty(dir));

    io::write_file_atomic(out, "old");
    in = tiny_inputs(out);
    EXPECT_EQ(error_of([&] { export_gguf(in); }),
              "GGUF export: " + out +
                  " already exists; choose another output file or allow overwriting it");
    in.overwrite = true;
    export_gguf(in);
    EXPECT_GT(fs::file_size(out), 3u);

    const std::string blocked = dir + "/bad.gguf/sub/x.gguf";  // a file where a folder should be
    in = tiny_inputs(blocked);
    EXPECT_NE(error_of([&] {
                  export_gguf(in);
              }).find("GGUF export: cannot create output folder " + out + "/sub"),
              std::string::npos);
}

}  // namespace
}  // namespace qlora::exporting
