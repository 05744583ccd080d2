// export_gguf: validates the config and the tensor list against each other, plans every tensor's
// GGUF name, shape and type, writes the llama.* and tokenizer.ggml.* metadata, then streams the
// tensors (load, check shape, permute Q/K, encode, write) one at a time.
#include "export/gguf_export.h"

#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/log.h"
#include "export/gguf_writer.h"
#include "io/finite_check.h"
#include "io/gguf_reader.h"
#include "io/path_guard.h"
#include "model/llama_layout.h"
#include "tokenizer/gguf_tokenizer_json.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace qlora::exporting {
namespace fs = std::filesystem;
namespace {

std::string shape_text(at::IntArrayRef shape) {
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

// The export types: CLI name and llama.cpp's LLAMA_FTYPE number for general.file_type.
struct GgufTypeRow {
    GgufType type;
    const char* name;
    uint32_t file_type;
};
constexpr GgufTypeRow kGgufTypes[] = {
    {GgufType::kF16, "f16", 1},    // LLAMA_FTYPE_MOSTLY_F16
    {GgufType::kQ8_0, "q8_0", 7},  // LLAMA_FTYPE_MOSTLY_Q8_0
    {GgufType::kQ4_0, "q4_0", 2},  // LLAMA_FTYPE_MOSTLY_Q4_0
};

const GgufTypeRow& gguf_type_row(GgufType t) {
    for (const auto& row : kGgufTypes) {
        if (row.type == t) return row;
    }
    TORCH_CHECK(false, "unknown GgufType ", static_cast<int>(t));
}

// Types we can write for the llama architecture; anything else is refused before any work.
void check_config(const model::LlamaConfig& c) {
    QLORA_CHECK(c.model_type == "llama" || c.model_type == "mistral", "GGUF export: model_type '",
                c.model_type,
                "' is not supported (expected llama or mistral, llama.cpp's llama architecture)");
    QLORA_CHECK(
        !c.qkv_bias && !c.o_bias && !c.mlp_bias,
        "GGUF export: attention/MLP bias tensors are not supported (expected a bias-free Llama)");
    QLORA_CHECK(
        c.hidden_size > 0 && c.intermediate_size > 0 && c.num_hidden_layers > 0 &&
            c.num_attention_heads > 0 && c.num_key_value_heads > 0 && c.vocab_size > 0,
        "GGUF export: config needs positive hidden_size, intermediate_size, num_hidden_layers, "
        "num_attention_heads, num_key_value_heads and vocab_size");
    QLORA_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0,
                "GGUF export: head_dim must be even and > 0, got ", c.head_dim);
    const std::string& rope = c.rope_scaling.type;
    QLORA_CHECK(rope == "default" || rope == "linear" || rope == "llama3",
                "GGUF export: rope scaling '", rope,
                "' is not supported (expected default, linear or llama3)");
}

// The GGUF type of one matrix under `type` (see the table in gguf_export.h).
GgmlType matrix_type(GgufType type, bool is_output, int64_t row) {
    GgmlType t = GgmlType::kF16;
    if (type == GgufType::kQ8_0) t = GgmlType::kQ8_0;
    if (type == GgufType::kQ4_0) t = is_output ? GgmlType::kQ8_0 : GgmlType::kQ4_0;
    if (row % ggml_block_size(t) != 0) t = GgmlType::kF16;
    return t;
}

void add_hparams(GgufWriter& w, const GgufExportInputs& in) {
    const model::LlamaConfig& c = in.config;
    w.add_string("general.architecture", "llama");
    w.add_string("general.type", "model");
    w.add_string("general.name", in.model_name);
    w.add_uint32("llama.block_count", static_cast<uint32_t>(c.num_hidden_layers));
    w.add_uint32("llama.context_length", static_cast<uint32_t>(c.max_position_embeddings));
    w.add_uint32("llama.embedding_length", static_cast<uint32_t>(c.hidden_size));
    w.add_uint32("llama.feed_forward_length", static_cast<uint32_t>(c.intermediate_size));
    w.add_uint32("llama.attention.head_count", static_cast<uint32_t>(c.num_attention_heads));
    w.add_uint32("llama.attention.head_count_kv", static_cast<uint32_t>(c.num_key_value_heads));
    w.add_float32("llama.rope.freq_base", static_cast<float>(c.rope_theta));
    w.add_float32("llama.attention.layer_norm_rms_epsilon", static_cast<float>(c.rms_norm_eps));
    w.add_uint32("llama.attention.key_length", static_cast<uint32_t>(c.head_dim));
    w.add_uint32("llama.attention.value_length", static_cast<uint32_t>(c.head_dim));
    w.add_uint32("general.file_type", gguf_file_type(in.type));
    w.add_uint32("llama.vocab_size", static_cast<uint32_t>(c.vocab_size));
    w.add_uint32("llama.rope.dimension_count", static_cast<uint32_t>(c.head_dim));
    if (c.rope_scaling.type == "linear") {
        w.add_string("llama.rope.scaling.type", "linear");
        w.add_float32("llama.rope.scaling.factor", static_cast<float>(c.rope_scaling.factor));
    }
}

void add_vocab(GgufWriter& w, const GgufVocab& v) {
    w.add_string("tokenizer.ggml.model", v.model);
    w.add_string("tokenizer.ggml.pre", v.pre);
    w.add_string_array("tokenizer.ggml.tokens", v.tokens);
    if (!v.scores.empty()) w.add_float32_array("tokenizer.ggml.scores", v.scores);
    w.add_int32_array("tokenizer.ggml.token_type", v.types);
    if (!v.merges.empty()) w.add_string_array("tokenizer.ggml.merges", v.merges);
    auto add_id = [&](const char* key, int64_t id) {
        if (id >= 0) w.add_uint32(key, static_cast<uint32_t>(id));
    };
    add_id("tokenizer.ggml.bos_token_id", v.bos_id);
    add_id("tokenizer.ggml.eos_token_id", v.eos_id);
    add_id("tokenizer.ggml.unknown_token_id", v.unk_id);
    add_id("tokenizer.ggml.padding_token_id", v.pad_id);
    w.add_bool("tokenizer.ggml.add_bos_token", v.add_bos);
    w.add_bool("tokenizer.ggml.add_eos_token", v.add_eos);
    // As gguf-py's add_chat_template: the default template, each named one under its name.
    std::vector<std::string> names;
    for (const auto& [name, text] : v.chat_templates) {
        if (name.empty()) {
            w.add_string("tokenizer.chat_template", text);
        } else {
            w.add_string("tokenizer.chat_template." + name, text);
            names.push_back(name);
        }
    }
    if (!names.empty()) w.add_string_array("tokenizer.chat_templates", names);
}

// Every planned HF name must be there; names with no place in the file are refused, except the
// ones llama.cpp's converter also drops (rotary inv_freq buffers, lm_head of a tied model).
void check_tensor_names(const GgufExportInputs& in, const std::vector<GgufTensorPlan>& plan) {
    std::set<std::string> given(in.tensor_names.begin(), in.tensor_names.end());
    std::set<std::string> wanted;
    for (const auto& p : plan) {
        if (p.hf_name.empty()) continue;
        wanted.insert(p.hf_name);
        QLORA_CHECK(given.count(p.hf_name) != 0, "GGUF export: missing tensor '", p.hf_name,
                    "' (needed for ", p.gguf_name, "; the model has ", given.size(), " tensors)");
    }
    for (const auto& name : given) {
        if (wanted.count(name) != 0) continue;
        if (name.ends_with("rotary_emb.inv_freq")) continue;
        if (name == "lm_head.weight" && in.config.tie_word_embeddings) {
            log_warn("GGUF export: skipping lm_head.weight: config.json ties it to the embeddings");
            continue;
        }
        QLORA_FAIL("GGUF export: tensor '", name,
                   "' has no place in a llama GGUF file (expected only ",
                   "embeddings, norms, attention/MLP weights and lm_head)");
    }
}

void check_out_file(const GgufExportInputs& in) {
    QLORA_CHECK(!in.out_file.empty(), "GGUF export: no output file given");
    QLORA_CHECK(!fs::is_directory(in.out_file), "GGUF export: output ", in.out_file,
                " is a folder; expected a file path such as model-q4_0.gguf");
    QLORA_CHECK(in.overwrite || !fs::exists(in.out_file), "GGUF export: ", in.out_file,
                " already exists; choose another output file or allow overwriting it");
}

// The output's parent folders, created for the writer and removed again if the export fails.
void check_parent_created(const GgufExportInputs& in) {
    fs::path parent = fs::path(in.out_file).parent_path();
    if (parent.empty()) parent = ".";
    QLORA_CHECK(fs::is_directory(parent), "GGUF export: cannot create output folder ",
                parent.string(), " for ", in.out_file);
}

at::Tensor load_checked(const GgufExportInputs& in, const GgufTensorPlan& p) {
    at::Tensor t = in.load_tensor(p.hf_name);
    QLORA_CHECK(t.defined(), "GGUF export: loading tensor '", p.hf_name, "' gave nothing");
    QLORA_CHECK(t.sizes() == at::IntArrayRef(p.shape), "GGUF export: tensor '", p.hf_name,
                "' has shape ", shape_text(t.sizes()), ", expected ", shape_text(p.shape),
                " from config.json (hidden_size ", in.config.hidden_size, ", intermediate_size ",
                in.config.intermediate_size, ", heads ", in.config.num_attention_heads, "/",
                in.config.num_key_value_heads, ", head_dim ", in.config.head_dim, ", vocab_size ",
                in.config.vocab_size, ")");
    t = t.to(at::kCPU, at::kFloat);
    io::check_finite(t, p.hf_name, in.out_file,
                     "refusing to export it (the base or the adapter holds NaN/Inf)");
    if (p.permute_heads > 0) t = permute_rope_rows(t, p.permute_heads);
    return t.contiguous();
}

// convert_hf_to_gguf's does_token_look_special: added tokens some models forget to mark special.
bool looks_special(const std::string& t) {
    return t == "<pad>" || t == "<mask>" || t == "<2mass>" || t == "[@BOS@]" ||
           (t.starts_with("<|") && t.ends_with("|>")) ||
           (t.starts_with("<\xEF\xBD\x9C") && t.ends_with("\xEF\xBD\x9C>")) ||  // <｜...｜>
           (t.starts_with("<unused") && t.ends_with(">"));
}

// tokenizer_config.json beside tokenizer.model: add_bos/add_eos_token and added_tokens_decoder
// (convert_hf_to_gguf's _create_vocab_sentencepiece: score -1000, CONTROL when special).
void apply_tokenizer_config(const fs::path& cfg_path, GgufVocab& v) {
    if (!fs::is_regular_file(cfg_path)) return;
    std::ifstream f(cfg_path);
    nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
    QLORA_CHECK(!j.is_discarded(), cfg_path.string(), ": not valid JSON");
    if (j.contains("add_bos_token") && j["add_bos_token"].is_boolean())
        v.add_bos = j["add_bos_token"].get<bool>();
    if (j.contains("add_eos_token") && j["add_eos_token"].is_boolean())
        v.add_eos = j["add_eos_token"].get<bool>();
    if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
        for (const auto& [key, tok_data] : j["added_tokens_decoder"].items()) {
            const bool numeric = !key.empty() && key.size() < 12 &&
                                 key.find_first_not_of("0123456789") == std::string::npos;
            QLORA_CHECK(numeric && tok_data.is_object() && tok_data.contains("content") &&
                            tok_data["content"].is_string(),
                        cfg_path.string(), ": added_tokens_decoder entry '", key,
                        "' expected an id with {\"content\": \"...\"}, found ", tok_data.dump());
            const int64_t id = std::stoll(key);
            if (id >= static_cast<int64_t>(v.tokens.size()))
                continue;  // beyond config.vocab_size: the converter skips it too
            std::string content = tok_data["content"].get<std::string>();
            const bool special = looks_special(content) || (tok_data.contains("special") &&
                                                            tok_data["special"].is_boolean() &&
                                                            tok_data["special"].get<bool>());
            if (!special) {  // pre-normalize user-defined spaces, as the converter does
                for (size_t pos = content.find("\xe2\x96\x81"); pos != std::string::npos;
                     pos = content.find("\xe2\x96\x81", pos + 1)) {
                    content.replace(pos, 3, " ");
                }
            }
            v.tokens[static_cast<size_t>(id)] = content;
            v.scores[static_cast<size_t>(id)] = -1000.0f;
            v.types[static_cast<size_t>(id)] = static_cast<int32_t>(
                special ? tokenizer::PieceType::kControl : tokenizer::PieceType::kUserDefined);
        }
    }
}

// The SentencePiece vocabulary: pieces with scores, then tokenizer_config.json's added tokens.
GgufVocab sentencepiece_vocab(const tokenizer::Tokenizer& tok, int64_t n, const fs::path& folder) {
    GgufVocab v;
    v.tokens.reserve(static_cast<size_t>(n));
    for (int64_t id = 0; id < n; ++id) {
        if (id < tok.vocab_size()) {
            v.tokens.push_back(tok.piece(id));
            v.scores.push_back(tok.score(id));
            v.types.push_back(static_cast<int32_t>(tok.piece_type(id)));
        } else {
            v.tokens.push_back("[PAD" + std::to_string(id) + "]");
            v.scores.push_back(-10000.0f);
            v.types.push_back(static_cast<int32_t>(tokenizer::PieceType::kUnused));
        }
    }
    apply_tokenizer_config(folder / "tokenizer_config.json", v);
    return v;
}

// The tokenizer.json vocabulary as _set_vocab_gpt2 writes it (see GgufVocab).
GgufVocab bpe_vocab(const tokenizer::Tokenizer& tok, int64_t n) {
    const tokenizer::HfTokenizer& hf = *tok.hf();
    QLORA_CHECK(hf.byte_level_decoder(), "GGUF export: ", tok.path(),
                " is not a byte-level BPE tokenizer (its decoder is not ByteLevel); llama.cpp's "
                "gpt2 vocabulary needs one");
    GgufVocab v;
    v.model = "gpt2";
    v.pre = llama_cpp_pre_tokenizer(hf.pre_tokenizer_config(), tok.path());
    v.tokens.reserve(static_cast<size_t>(n));
    for (int64_t id = 0; id < n; ++id) {
        const auto type =
            id < tok.vocab_size() ? tok.piece_type(id) : tokenizer::PieceType::kUnused;
        std::string token = type == tokenizer::PieceType::kUnused
                                ? "[PAD" + std::to_string(id) + "]"
                                : tok.piece(id);
        auto out_type = type;
        if (type == tokenizer::PieceType::kUserDefined && looks_special(token)) {
            out_type = tokenizer::PieceType::kControl;
        }
        v.tokens.push_back(std::move(token));
        v.types.push_back(static_cast<int32_t>(out_type));
    }
    v.merges = hf.model().merges();
    v.add_bos = tok.adds_bos();
    v.add_eos = tok.adds_eos();
    return v;
}

// tokenizer_config.json's chat_template (a string, or a list of {"name", "template"}), else a
// chat_template.jinja beside it.
std::vector<std::pair<std::string, std::string>> chat_templates(const nlohmann::json& config,
                                                                const fs::path& folder) {
    std::vector<std::pair<std::string, std::string>> out;
    if (config.contains("chat_template") && config["chat_template"].is_string()) {
        out.emplace_back("", config["chat_template"].get<std::string>());
    } else if (config.contains("chat_template") && config["chat_template"].is_array()) {
        for (const auto& t : config["chat_template"]) {
            if (!t.is_object() || !t.contains("template") || !t["template"].is_string()) continue;
            std::string name = t.value("name", "");
            // gguf-py keeps [A-Za-z0-9] of a name and writes '_' for the rest.
            for (char& c : name) {
                if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
            }
            if (name.empty()) continue;
            out.emplace_back(name == "default" ? "" : name, t["template"].get<std::string>());
        }
    } else if (fs::is_regular_file(folder / "chat_template.jinja")) {
        std::ifstream in(folder / "chat_template.jinja", std::ios::binary);
        out.emplace_back("", std::string(std::istreambuf_iterator<char>(in), {}));
    }
    return out;
}

}  // namespace

std::string llama_cpp_pre_tokenizer(const nlohmann::json& pre, const std::string& source) {
    // Llama 3's Split regex; Qwen2 has the same with \p{N} for \p{N}{1,3}.
    static const std::string kLlama3 =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    static const std::string kQwen2 =
        R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
    std::vector<nlohmann::json> steps;
    if (pre.is_object() && pre.value("type", "") == "Sequence" && pre.contains("pretokenizers")) {
        for (const auto& s : pre["pretokenizers"]) steps.push_back(s);
    } else if (pre.is_object()) {
        steps.push_back(pre);
    }
    auto is = [&](size_t i, const char* type) {
        return i < steps.size() && steps[i].value("type", "") == type;
    };
    auto split_regex = [&](size_t i) -> std::string {
        if (!is(i, "Split") || !steps[i].contains("pattern") || !steps[i]["pattern"].is_object()) {
            return "";
        }
        return steps[i]["pattern"].value("Regex", "");
    };
    const bool byte_level_last = !steps.empty() && is(steps.size() - 1, "ByteLevel");
    const bool byte_level_regex = byte_level_last && steps.back().value("use_regex", true);
    if (steps.size() == 2 && byte_level_last && !byte_level_regex) {
        if (split_regex(0) == kLlama3) return "llama-bpe";
        if (split_regex(0) == kQwen2) return "qwen2";
    }
    if (steps.size() == 2 && byte_level_regex && is(0, "Digits") &&
        steps[0].value("individual_digits", false)) {
        return "smollm";
    }
    if (steps.size() == 1 && byte_level_regex) return "gpt-2";
    const std::string found = pre.dump();
    QLORA_FAIL("GGUF export: the pre-tokenizer of ", source,
               " is not one llama.cpp knows by name (supported: Llama 3's llama-bpe, qwen2, "
               "smollm, gpt-2); found ",
               found.size() > 120 ? found.substr(0, 117) + "..." : found);
}

namespace {

// A GGUF base's vocabulary goes back out as it came: llama.cpp's own tokenizer.ggml.* keys, so a
// fine-tune of a GGUF tokenizes in llama.cpp exactly as its base did.
GgufVocab vocab_of_gguf(const std::string& path) {
    const io::GgufReader g(path);
    tokenizer::GgufVocabKeys k = tokenizer::read_gguf_vocab_keys(g);
    GgufVocab v;
    v.model = k.model;
    v.pre = k.pre;
    v.tokens = std::move(k.tokens);
    v.scores.assign(k.scores.begin(), k.scores.end());
    v.merges = std::move(k.merges);
    v.types.assign(k.types.begin(), k.types.end());
    v.bos_id = k.bos;
    v.eos_id = k.eos;
    v.unk_id = k.unk;
    v.pad_id = k.pad;
    v.add_bos = k.add_bos.value_or(v.add_bos);
    v.add_eos = k.add_eos.value_or(v.add_eos);
    for (const std::string& key : g.keys()) {
        if (key == "tokenizer.chat_template") v.chat_templates.emplace_back("", g.get_string(key));
        if (key.starts_with("tokenizer.chat_template."))  // named ones: .chat_template.tool_use
            v.chat_templates.emplace_back(key.substr(24), g.get_string(key));
    }
    return v;
}

}  // namespace

GgufVocab load_gguf_vocab(const std::string& tokenizer_model, const model::LlamaConfig& config) {
    if (tokenizer_model.ends_with(".gguf")) return vocab_of_gguf(tokenizer_model);
    const fs::path folder = fs::is_directory(tokenizer_model)
                                ? fs::path(tokenizer_model)
                                : fs::path(tokenizer_model).parent_path();
    // A file path reads tokenizer_config.json beside it too.
    const tokenizer::Tokenizer tok(tokenizer_model);
    const int64_t n = config.vocab_size;
    QLORA_CHECK(tok.vocab_size() <= n, "GGUF export: tokenizer ", tok.path(), " has ",
                tok.vocab_size(), " pieces but config.json vocab_size is ", n,
                " (expected at most that many)");
    GgufVocab v = tok.hf() != nullptr ? bpe_vocab(tok, n) : sentencepiece_vocab(tok, n, folder);
    v.chat_templates = chat_templates(tok.config(), folder);
    auto pick = [&](int64_t from_tokenizer, std::optional<int64_t> from_config) {
        int64_t id = from_tokenizer >= 0 ? from_tokenizer : from_config.value_or(-1);
        return id < n ? id : -1;
    };
    v.bos_id = pick(tok.bos_id(), config.bos_token_id);
    v.eos_id = pick(tok.eos_id(), config.eos_token_ids.empty()
                                      ? std::nullopt
                                      : std::optional<int64_t>(config.eos_token_ids[0]));
    v.unk_id = pick(tok.unk_id(), std::nullopt);
    v.pad_id = pick(tok.pad_id(), config.pad_token_id);
    return v;
}

GgufType parse_gguf_type(const std::string& s) {
    for (const auto& row : kGgufTypes) {
        if (s == row.name) return row.type;
    }
    QLORA_FAIL("GGUF type must be one of f16, q8_0, q4_0, got '", s, "'");
}

const char* gguf_type_name(GgufType t) { return gguf_type_row(t).name; }
uint32_t gguf_file_type(GgufType t) { return gguf_type_row(t).file_type; }

at::Tensor llama3_rope_freqs(const model::LlamaConfig& c) {
    // convert_hf_to_gguf's LlamaModel.generate_extra_tensors, with torch's float32 tensor ops
    // (python's `scalar / tensor` is reciprocal() * scalar).
    const model::RopeScaling& r = c.rope_scaling;
    const double old_ctx = r.original_max_position_embeddings > 0
                               ? static_cast<double>(r.original_max_position_embeddings)
                               : 8192.0;
    const double low_wavelen = old_ctx / r.low_freq_factor;
    const double high_wavelen = old_ctx / r.high_freq_factor;
    QLORA_CHECK(low_wavelen != high_wavelen,
                "GGUF export: llama3 rope scaling needs low_freq_factor != "
                "high_freq_factor");
    at::Tensor exponent = at::arange(0, c.head_dim, 2, at::kFloat) / c.head_dim;
    at::Tensor freqs = at::pow(c.rope_theta, exponent).reciprocal();
    at::Tensor wavelen = freqs.reciprocal() * (2.0 * M_PI);
    at::Tensor smooth = (wavelen.reciprocal() * old_ctx - r.low_freq_factor) /
                        (r.high_freq_factor - r.low_freq_factor);
    at::Tensor mid = ((1.0 - smooth) / r.factor + smooth).reciprocal();
    at::Tensor out = at::where(wavelen > low_wavelen, at::full_like(mid, r.factor), mid);
    return at::where(wavelen < high_wavelen, at::ones_like(mid), out).contiguous();
}

std::vector<GgufTensorPlan> plan_gguf_tensors(const model::LlamaConfig& c, GgufType type) {
    std::vector<GgufTensorPlan> plan;
    if (c.rope_scaling.type == "llama3") {
        plan.push_back({"rope_freqs.weight", "", {c.head_dim / 2}, GgmlType::kF32, 0});
    }
    for (const model::LlamaTensor& t : model::llama_tensors(c)) {
        const model::TensorRole& r = *t.role;
        if (r.kind == model::TensorKind::kNorm || r.kind == model::TensorKind::kBias) {
            plan.push_back({t.gguf_name, t.hf_name, t.shape, GgmlType::kF32, 0});
            continue;
        }
        // A tied embedding is also the output matrix, so it gets the output's type
        // (llama-quantize).
        const bool output = r.role == model::Role::kLmHead ||
                            (r.role == model::Role::kEmbedTokens && c.tie_word_embeddings);
        const int64_t heads = r.rope == model::RopePermute::kQueryHeads ? c.num_attention_heads
                              : r.rope == model::RopePermute::kKvHeads  ? c.num_key_value_heads
                                                                        : 0;
        plan.push_back(
            {t.gguf_name, t.hf_name, t.shape, matrix_type(type, output, t.shape[1]), heads});
    }
    return plan;
}

GgufExportSummary export_gguf(const GgufExportInputs& in) {
    check_config(in.config);
    QLORA_CHECK(static_cast<bool>(in.load_tensor), "GGUF export: no tensor loader given");
    const std::vector<GgufTensorPlan> plan = plan_gguf_tensors(in.config, in.type);
    check_tensor_names(in, plan);
    const GgufVocab vocab = load_gguf_vocab(in.tokenizer_model, in.config);
    check_out_file(in);
    io::CreatedParents parents(in.out_file);
    check_parent_created(in);

    GgufExportSummary summary;
    summary.out_file = in.out_file;
    GgufWriter w(in.out_file);
    add_hparams(w, in);
    add_vocab(w, vocab);
    w.add_uint32("general.quantization_version", 2);  // GGML_QUANT_VERSION
    w.add_uint32("general.alignment", kGgufDefaultAlignment);
    for (const auto& p : plan) {
        w.add_tensor_info(p.gguf_name, p.shape, p.type);
        ++summary.tensors_by_type[ggml_type_name(p.type)];
        const bool wanted_quant = in.type != GgufType::kF16 && p.shape.size() == 2;
        if (wanted_quant && p.type == GgmlType::kF16) {
            summary.fallbacks.push_back(p.gguf_name);
            log_warn("GGUF export: ", p.gguf_name, " rows of ", p.shape.back(),
                     " elements are not a multiple of 32; writing it as F16");
        }
    }
    for (const auto& p : plan) {
        at::Tensor values = p.hf_name.empty() ? llama3_rope_freqs(in.config) : load_checked(in, p);
        w.write_tensor_data(
            p.gguf_name, ggml_encode(values, p.type, p.hf_name.empty() ? p.gguf_name : p.hf_name));
    }
    summary.tensors = static_cast<int64_t>(plan.size());
    summary.bytes = static_cast<int64_t>(w.finish());
    parents.keep();
    log_info("wrote ", in.out_file, ": ", summary.tensors, " tensors, ", summary.bytes, " bytes (",
             gguf_type_name(in.type), ")");
    return summary;
}

}  // namespace qlora::exporting
