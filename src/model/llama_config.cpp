// Parsing of Hugging Face config.json into LlamaConfig: defaults as transformers has them, every
// problem collected and reported in one line ("config.json: 'hidden_size' expected ..., found
// ...").
#include "model/llama_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/limits.h"

namespace qlora::model {
namespace {

using nlohmann::json;

// Reads typed keys from one JSON object, remembering every problem instead of stopping at the
// first.
class KeyReader {
  public:
    KeyReader(const json& obj, std::string prefix) : obj_(obj), prefix_(std::move(prefix)) {}

    bool has(const std::string& key) const { return obj_.contains(key) && !obj_.at(key).is_null(); }

    void integer(const std::string& key, int64_t& out, bool required, int64_t min = 1,
                 int64_t max = std::numeric_limits<int64_t>::max()) {
        if (!has(key)) {
            if (required) problem(key, "a required integer", "nothing");
            return;
        }
        const json& v = obj_.at(key);
        // A number beyond int64 parses as unsigned (or float): is_number_integer() holds but
        // get<int64_t>() would wrap it negative.
        if (!v.is_number_integer() ||
            (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(max))) {
            return v.is_number_integer()
                       ? problem(key, "an integer <= " + std::to_string(max), v.dump())
                       : problem(key, "an integer", v.dump());
        }
        int64_t x = v.get<int64_t>();
        if (x < min) return problem(key, "an integer >= " + std::to_string(min), v.dump());
        if (x > max)
            return problem(key, "an integer <= " + std::to_string(max) + " (limits.h)", v.dump());
        out = x;
    }
    void optional_id(const std::string& key, std::optional<int64_t>& out) {
        if (!has(key)) return;
        const json& v = obj_.at(key);
        if (!v.is_number_integer()) return problem(key, "a token id", v.dump());
        out = v.get<int64_t>();
    }
    void number(const std::string& key, double& out, bool positive = true) {
        if (!has(key)) return;
        const json& v = obj_.at(key);
        if (!v.is_number()) return problem(key, "a number", v.dump());
        double x = v.get<double>();
        if (!std::isfinite(x)) return problem(key, "a finite number", v.dump());
        if (positive && !(x > 0.0)) return problem(key, "a number > 0", v.dump());
        out = x;
    }
    void boolean(const std::string& key, bool& out) {
        if (!has(key)) return;
        const json& v = obj_.at(key);
        if (!v.is_boolean()) return problem(key, "true or false", v.dump());
        out = v.get<bool>();
    }
    void string(const std::string& key, std::string& out) {
        if (!has(key)) return;
        const json& v = obj_.at(key);
        if (!v.is_string()) return problem(key, "a string", v.dump());
        out = v.get<std::string>();
    }
    void problem(const std::string& key, const std::string& expected, const std::string& found) {
        std::string shown = found.size() > 60 ? found.substr(0, 57) + "..." : found;
        problems_.push_back("'" + prefix_ + key + "' expected " + expected + ", found " + shown);
    }
    void problem(const std::string& text) { problems_.push_back(text); }
    std::vector<std::string>& problems() { return problems_; }

  private:
    const json& obj_;
    std::string prefix_;
    std::vector<std::string> problems_;
};

void read_rope(const json& j, LlamaConfig& c, KeyReader& top) {
    // transformers 4.x writes rope_theta + rope_scaling; 5.x writes rope_parameters holding both.
    const json* rope = nullptr;
    std::string rope_key;
    for (const char* key : {"rope_parameters", "rope_scaling"}) {
        if (j.contains(key) && !j.at(key).is_null()) {
            rope = &j.at(key);
            rope_key = key;
            break;
        }
    }
    if (rope == nullptr) return;
    if (!rope->is_object()) return top.problem(rope_key, "an object", rope->dump());
    KeyReader r(*rope, rope_key + ".");
    r.number("rope_theta", c.rope_theta);
    std::string type = "default";
    r.string("type", type);  // older checkpoints say "type"
    r.string("rope_type", type);
    c.rope_scaling.type = type;
    if (type == "linear") {
        if (!r.has("factor")) r.problem("factor", "a number (linear scaling)", "nothing");
        r.number("factor", c.rope_scaling.factor);
    } else if (type == "llama3") {
        for (const char* key : {"factor", "low_freq_factor", "high_freq_factor"}) {
            if (!r.has(key)) r.problem(key, "a number (llama3 scaling)", "nothing");
        }
        r.number("factor", c.rope_scaling.factor);
        r.number("low_freq_factor", c.rope_scaling.low_freq_factor);
        r.number("high_freq_factor", c.rope_scaling.high_freq_factor);
        c.rope_scaling.original_max_position_embeddings = c.max_position_embeddings;
        r.integer("original_max_position_embeddings",
                  c.rope_scaling.original_max_position_embeddings,
                  /*required=*/true);
        if (c.rope_scaling.high_freq_factor == c.rope_scaling.low_freq_factor) {
            r.problem("high_freq_factor", "a value different from low_freq_factor",
                      std::to_string(c.rope_scaling.high_freq_factor));
        }
    } else if (type != "default") {
        r.problem("rope_type", "one of default, linear, llama3", "\"" + type + "\"");
    }
    for (auto& p : r.problems()) top.problem(p);
}

// quantization_config.quant_method: only the layouts this project reads (bitsandbytes 4-bit,
// written by qlora-quantize, and our hf-int4) load; AWQ, GPTQ, EETQ, HQQ, FP8 ... hold packed
// weights we would misread, so they are refused by name.
std::optional<std::string> foreign_quant_method(const json& q) {
    if (!q.contains("quant_method")) return std::nullopt;  // our hf-int4 and old bnb configs
    const json& m = q.at("quant_method");
    const std::string method = m.is_string() ? m.get<std::string>() : m.dump();
    if (method == "bitsandbytes" || method == "qlora_int4") return std::nullopt;
    return "'quantization_config.quant_method' expected bitsandbytes (4-bit) or qlora_int4, found "
           "\"" +
           method.substr(0, 40) + "\": " + method.substr(0, 40) +
           "-quantized checkpoints are not supported; use the original 16-bit model";
}

}  // namespace

bool LlamaConfig::is_eos(int64_t id) const {
    for (int64_t e : eos_token_ids) {
        if (e == id) return true;
    }
    return false;
}

int64_t LlamaConfig::num_parameters() const {
    int64_t attn = hidden_size * q_dim() * 2 + hidden_size * kv_dim() * 2;
    int64_t mlp = 3 * hidden_size * intermediate_size;
    int64_t per_layer = attn + mlp + 2 * hidden_size;
    int64_t embed = vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2);
    return embed + num_hidden_layers * per_layer + hidden_size;
}

LlamaConfig LlamaConfig::from_json(const nlohmann::json& j, const std::string& source) {
    QLORA_CHECK(j.is_object(), source, ": expected a JSON object, found ", j.type_name());
    LlamaConfig c;
    KeyReader r(j, "");
    r.string("model_type", c.model_type);
    if (c.model_type != "llama" && c.model_type != "mistral" && c.model_type != "qwen2") {
        r.problem("model_type", "one of llama, mistral, qwen2", "\"" + c.model_type + "\"");
    }
    std::string act = "silu";
    r.string("hidden_act", act);
    if (act != "silu") r.problem("hidden_act", "\"silu\" (SwiGLU MLP)", "\"" + act + "\"");

    // Every size is bounded (core/limits.h) before anything is sized from it.
    r.integer("hidden_size", c.hidden_size, true, 1, limits::kMaxHiddenSize);
    r.integer("intermediate_size", c.intermediate_size, true, 1, limits::kMaxIntermediateSize);
    r.integer("num_hidden_layers", c.num_hidden_layers, true, 1, limits::kMaxLayers);
    r.integer("num_attention_heads", c.num_attention_heads, true, 1, limits::kMaxHeads);
    r.integer("vocab_size", c.vocab_size, true, 1, limits::kMaxVocabSize);
    c.num_key_value_heads = c.num_attention_heads;
    r.integer("num_key_value_heads", c.num_key_value_heads, false, 1, limits::kMaxHeads);
    if (c.num_attention_heads > 0) c.head_dim = c.hidden_size / c.num_attention_heads;
    r.integer("head_dim", c.head_dim, false, 1, limits::kMaxHeadDim);
    r.integer("max_position_embeddings", c.max_position_embeddings, false, 1,
              limits::kMaxPositionEmbeddings);
    r.number("rms_norm_eps", c.rms_norm_eps);
    r.number("rope_theta", c.rope_theta);
    read_rope(j, c, r);

    // transformers' defaults differ by family: Qwen2 always has q/k/v bias and no o bias.
    if (c.model_type == "qwen2") {
        c.qkv_bias = true;
    } else {
        bool attention_bias = false;
        r.boolean("attention_bias", attention_bias);
        c.qkv_bias = c.o_bias = attention_bias;
    }
    r.boolean("mlp_bias", c.mlp_bias);
    r.boolean("tie_word_embeddings", c.tie_word_embeddings);

    r.optional_id("bos_token_id", c.bos_token_id);
    r.optional_id("pad_token_id", c.pad_token_id);
    if (r.has("eos_token_id")) {
        const json& e = j.at("eos_token_id");
        if (e.is_number_integer()) {
            c.eos_token_ids.push_back(e.get<int64_t>());
        } else if (e.is_array() && std::all_of(e.begin(), e.end(), [](const json& x) {
                       return x.is_number_integer();
                   })) {
            for (const json& x : e) c.eos_token_ids.push_back(x.get<int64_t>());
        } else {
            r.problem("eos_token_id", "a token id or a list of them", e.dump());
        }
    }
    r.string("torch_dtype", c.torch_dtype);
    r.string("dtype", c.torch_dtype);  // transformers 5 renamed the key
    if (r.has("quantization_config")) {
        if (j.at("quantization_config").is_object()) {
            c.quantization_config = j.at("quantization_config");
            if (auto foreign = foreign_quant_method(*c.quantization_config)) r.problem(*foreign);
        } else {
            r.problem("quantization_config", "an object", j.at("quantization_config").dump());
        }
    }

    // Relations between keys, checked only when the keys themselves were fine.
    if (r.problems().empty()) {
        if (c.num_attention_heads % c.num_key_value_heads != 0) {
            r.problem("'num_key_value_heads' expected a divisor of num_attention_heads (" +
                      std::to_string(c.num_attention_heads) + "), found " +
                      std::to_string(c.num_key_value_heads));
        }
        if (c.head_dim % 2 != 0) {
            r.problem("'head_dim' expected an even number (RoPE rotates pairs), found " +
                      std::to_string(c.head_dim));
        }
        if (c.head_dim == 0) {
            r.problem("'head_dim' expected >= 1 (hidden_size / num_attention_heads), found 0");
        }
        auto check_id = [&](const char* key, int64_t id) {
            if (id < 0 || id >= c.vocab_size) {
                r.problem(std::string("'") + key + "' expected an id below vocab_size (" +
                          std::to_string(c.vocab_size) + "), found " + std::to_string(id));
            }
        };
        if (c.bos_token_id) check_id("bos_token_id", *c.bos_token_id);
        for (int64_t e : c.eos_token_ids) check_id("eos_token_id", e);
    }
    if (!r.problems().empty()) {
        std::string all;
        for (const auto& p : r.problems()) all += (all.empty() ? "" : "; ") + p;
        QLORA_FAIL(source, ": ", all);
    }
    return c;
}

LlamaConfig LlamaConfig::load(const std::string& path) {
    namespace fs = std::filesystem;
    fs::path file = fs::is_directory(path) ? fs::path(path) / "config.json" : fs::path(path);
    QLORA_CHECK(fs::exists(file), "model config not found: ", file.string(),
                " (a model folder needs a Hugging Face config.json)");
    std::ifstream in(file);
    QLORA_RUNTIME_CHECK(in.good(), "cannot read ", file.string());
    json j;
    try {
        j = json::parse(in);
    } catch (const json::exception& e) {  // parse errors and number overflow (1e999999)
        QLORA_FAIL(file.string(), ": not valid JSON (", e.what(), ")");
    }
    return from_json(j, file.string());
}

}  // namespace qlora::model
