// The key table follows llama.cpp's llama_model_loader (LLM_KV_* for LLM_ARCH_LLAMA) and
// convert_hf_to_gguf's LlamaModel.set_gguf_parameters, read backwards.
#include "model/gguf_config.h"

#include <charconv>
#include <cstdlib>

#include "core/error.h"

namespace qlora::model {
namespace {

using nlohmann::json;

// A float32 from the file as the shortest decimal that reads back to it (1e-05, not
// 9.999999747378752e-06), so config.json looks like the one the GGUF was made from.
double shortest_decimal(double value) {
    const float f = static_cast<float>(value);
    char buf[64];
    auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), f);
    if (ec != std::errc()) return value;
    *end = '\0';
    return std::strtod(buf, nullptr);
}

struct KeyTable {
    const io::GgufReader& gguf;
    std::string arch;
    std::string key(const std::string& suffix) const { return arch + "." + suffix; }
    bool has(const std::string& suffix) const { return gguf.contains(key(suffix)); }
    int64_t count(const std::string& suffix) const {
        const uint64_t v = gguf.get_uint(key(suffix));
        QLORA_CHECK(v >= 1 && v <= (1ULL << 31), gguf.key_context(key(suffix)), " = ", v,
                    " is out of range (expected 1 .. 2^31)");
        return static_cast<int64_t>(v);
    }
};

void check_supported(const KeyTable& k) {
    const io::GgufReader& g = k.gguf;
    QLORA_CHECK(!k.has("expert_count") || g.get_uint(k.key("expert_count")) == 0, g.path(),
                ": mixture-of-experts GGUFs (", k.key("expert_count"), ") are not supported");
    QLORA_CHECK(!g.has_tensor("rope_freqs.weight"), g.path(),
                ": tensor 'rope_freqs.weight' (llama3 rope scaling) is not supported: the GGUF "
                "does not record the scaling parameters transformers needs");
    if (k.has("rope.scaling.type")) {
        const std::string type = g.get_string(k.key("rope.scaling.type"));
        QLORA_CHECK(type == "none" || type == "linear", g.key_context(k.key("rope.scaling.type")),
                    ": rope scaling '", type, "' is not supported (expected none or linear)");
    }
    const bool q_bias = g.has_tensor("blk.0.attn_q.bias");
    const bool o_bias = g.has_tensor("blk.0.attn_output.bias");
    QLORA_CHECK(q_bias == o_bias, g.path(),
                ": a llama GGUF with attention biases on q/k/v but not on the output (or the "
                "reverse) has no Hugging Face LlamaConfig; expected both or neither");
}

int64_t vocab_size(const KeyTable& k) {
    const io::GgufReader& g = k.gguf;
    if (k.has("vocab_size")) return k.count("vocab_size");
    if (const io::GgufValue* tokens = g.find("tokenizer.ggml.tokens")) {
        return static_cast<int64_t>(tokens->size());
    }
    QLORA_CHECK(g.has_tensor("token_embd.weight"), g.path(),
                ": cannot tell the vocabulary size: no ", k.key("vocab_size"),
                ", no tokenizer.ggml.tokens and no token_embd.weight");
    return g.tensor("token_embd.weight").ne.at(1);
}

void add_rope(const KeyTable& k, json& c, int64_t head_dim) {
    const io::GgufReader& g = k.gguf;
    c["rope_theta"] =
        k.has("rope.freq_base") ? shortest_decimal(g.get_float(k.key("rope.freq_base"))) : 10000.0;
    if (k.has("rope.dimension_count")) {
        const int64_t rot = k.count("rope.dimension_count");
        QLORA_CHECK(rot == head_dim, g.key_context(k.key("rope.dimension_count")), " = ", rot,
                    ": partial rotary embeddings are not supported (expected the head size ",
                    head_dim, ")");
    }
    c["rope_scaling"] = nullptr;
    if (k.has("rope.scaling.type") && g.get_string(k.key("rope.scaling.type")) == "linear") {
        c["rope_scaling"] = {
            {"rope_type", "linear"},
            {"factor", shortest_decimal(g.get_float(k.key("rope.scaling.factor")))}};
    }
}

void add_special_ids(const io::GgufReader& g, json& c) {
    auto id = [&](const char* key, const char* hf_key) {
        if (g.contains(key)) c[hf_key] = static_cast<int64_t>(g.get_uint(key));
    };
    id("tokenizer.ggml.bos_token_id", "bos_token_id");
    id("tokenizer.ggml.eos_token_id", "eos_token_id");
    id("tokenizer.ggml.padding_token_id", "pad_token_id");
}

}  // namespace

json gguf_hf_config(const io::GgufReader& g) {
    const KeyTable k{g, g.get_string("general.architecture")};
    QLORA_CHECK(k.arch == "llama", g.key_context("general.architecture"), ": architecture '",
                k.arch, "' is not supported (expected llama)");
    check_supported(k);
    const int64_t hidden = k.count("embedding_length");
    const int64_t heads = k.count("attention.head_count");
    const int64_t kv_heads =
        k.has("attention.head_count_kv") ? k.count("attention.head_count_kv") : heads;
    const int64_t head_dim =
        k.has("attention.key_length") ? k.count("attention.key_length") : hidden / heads;
    json c;
    c["architectures"] = {"LlamaForCausalLM"};
    c["model_type"] = "llama";
    c["hidden_act"] = "silu";
    c["hidden_size"] = hidden;
    c["intermediate_size"] = k.count("feed_forward_length");
    c["num_hidden_layers"] = k.count("block_count");
    c["num_attention_heads"] = heads;
    c["num_key_value_heads"] = kv_heads;
    c["head_dim"] = head_dim;
    c["vocab_size"] = vocab_size(k);
    c["max_position_embeddings"] =
        k.has("context_length") ? k.count("context_length") : static_cast<int64_t>(2048);
    c["rms_norm_eps"] = shortest_decimal(g.get_float(k.key("attention.layer_norm_rms_epsilon")));
    add_rope(k, c, head_dim);
    c["attention_bias"] = g.has_tensor("blk.0.attn_q.bias");
    c["attention_dropout"] = 0.0;
    c["mlp_bias"] = false;
    c["tie_word_embeddings"] = !g.has_tensor("output.weight");
    c["initializer_range"] = 0.02;
    c["pretraining_tp"] = 1;
    c["use_cache"] = true;
    c["torch_dtype"] = "float32";  // every tensor is dequantized to float32
    add_special_ids(g, c);
    return c;
}

LlamaConfig gguf_llama_config(const io::GgufReader& gguf) {
    return LlamaConfig::from_json(gguf_hf_config(gguf), gguf.path());
}

}  // namespace qlora::model
