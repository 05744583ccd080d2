// LlamaConfig parsing: defaults as transformers has them, both rope key styles, and one-line
// errors that name the file, the key, what was expected and what was found.
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/llama_config.h"
#include "support/test_support.h"

namespace qlora::model {
namespace {

using nlohmann::json;

json minimal() {
    return json{{"hidden_size", 64},
                {"intermediate_size", 172},
                {"num_hidden_layers", 5},
                {"num_attention_heads", 8},
                {"vocab_size", 512}};
}

std::string error_of(const json& j) {
    try {
        LlamaConfig::from_json(j, "dir/config.json");
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

TEST(LlamaConfig, Stories260K) {
    LlamaConfig c = LlamaConfig::load(test::shared_data("stories260K/hf"));
    EXPECT_EQ(c.model_type, "llama");
    EXPECT_EQ(c.hidden_size, 64);
    EXPECT_EQ(c.intermediate_size, 172);
    EXPECT_EQ(c.num_hidden_layers, 5);
    EXPECT_EQ(c.num_attention_heads, 8);
    EXPECT_EQ(c.num_key_value_heads, 4);
    EXPECT_EQ(c.head_dim, 8);
    EXPECT_EQ(c.vocab_size, 512);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-5);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_TRUE(c.tie_word_embeddings);
    EXPECT_EQ(c.bos_token_id, 1);
    EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
    EXPECT_EQ(c.torch_dtype, "float32");
    EXPECT_FALSE(c.quantization_config.has_value());
    EXPECT_EQ(c.num_parameters(), 260032);  // llama2.c's count for stories260K
}

TEST(LlamaConfig, DefaultsFollowTransformers) {
    LlamaConfig c = LlamaConfig::from_json(minimal());
    EXPECT_EQ(c.num_key_value_heads, 8);  // MHA
    EXPECT_EQ(c.head_dim, 8);
    EXPECT_DOUBLE_EQ(c.rms_norm_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
    EXPECT_EQ(c.rope_scaling.type, "default");
    EXPECT_FALSE(c.tie_word_embeddings);
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_FALSE(c.o_bias);
}

TEST(LlamaConfig, BiasesPerFamily) {
    json j = minimal();
    j["model_type"] = "qwen2";
    LlamaConfig q = LlamaConfig::from_json(j);
    EXPECT_TRUE(q.qkv_bias);
    EXPECT_FALSE(q.o_bias);
    j = minimal();
    j["attention_bias"] = true;
    LlamaConfig l = LlamaConfig::from_json(j);
    EXPECT_TRUE(l.qkv_bias);
    EXPECT_TRUE(l.o_bias);
}

TEST(LlamaConfig, RopeScalingBothStyles) {
    json j = minimal();
    j["rope_theta"] = 500000.0;
    j["rope_scaling"] = {{"rope_type", "llama3"},
                         {"factor", 8.0},
                         {"low_freq_factor", 1.0},
                         {"high_freq_factor", 4.0},
                         {"original_max_position_embeddings", 8192}};
    LlamaConfig a = LlamaConfig::from_json(j);
    EXPECT_EQ(a.rope_scaling.type, "llama3");
    EXPECT_DOUBLE_EQ(a.rope_theta, 500000.0);
    EXPECT_EQ(a.rope_scaling.original_max_position_embeddings, 8192);

    json k = minimal();  // transformers 5: theta inside rope_parameters
    k["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2.0}, {"rope_theta", 1e6}};
    LlamaConfig b = LlamaConfig::from_json(k);
    EXPECT_EQ(b.rope_scaling.type, "linear");
    EXPECT_DOUBLE_EQ(b.rope_scaling.factor, 2.0);
    EXPECT_DOUBLE_EQ(b.rope_theta, 1e6);

    json legacy = minimal();  // old checkpoints say "type"
    legacy["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
    EXPECT_EQ(LlamaConfig::from_json(legacy).rope_scaling.type, "linear");
}

TEST(LlamaConfig, EosList) {
    json j = minimal();
    j["eos_token_id"] = {2, 7};
    LlamaConfig c = LlamaConfig::from_json(j);
    EXPECT_TRUE(c.is_eos(7));
    EXPECT_FALSE(c.is_eos(1));
}

TEST(LlamaConfig, ErrorsNameFileKeyExpectedAndFound) {
    json j = minimal();
    j["hidden_size"] = "64";
    std::string e = error_of(j);
    EXPECT_NE(e.find("dir/config.json"), std::string::npos) << e;
    EXPECT_NE(e.find("'hidden_size' expected an integer, found \"64\""), std::string::npos) << e;

    j = minimal();
    j.erase("vocab_size");
    EXPECT_NE(error_of(j).find("'vocab_size' expected a required integer, found nothing"),
              std::string::npos);

    j = minimal();
    j["num_key_value_heads"] = 3;
    EXPECT_NE(error_of(j).find("num_key_value_heads"), std::string::npos);

    j = minimal();
    j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
    EXPECT_NE(
        error_of(j).find(
            "'rope_scaling.rope_type' expected one of default, linear, llama3, found \"yarn\""),
        std::string::npos)
        << error_of(j);

    j = minimal();
    j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
    EXPECT_NE(error_of(j).find("'rope_scaling.low_freq_factor'"), std::string::npos) << error_of(j);

    // Every problem is reported at once, on one line.
    j = minimal();
    j["hidden_act"] = "gelu";
    j["rms_norm_eps"] = -1;
    e = error_of(j);
    EXPECT_NE(e.find("hidden_act"), std::string::npos) << e;
    EXPECT_NE(e.find("rms_norm_eps"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);

    EXPECT_THROW(LlamaConfig::load(test::scratch_dir("no_config")), Error);
}

}  // namespace
}  // namespace qlora::model
