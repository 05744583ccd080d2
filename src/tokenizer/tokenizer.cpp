// The Tokenizer facade: picks the backend, reads tokenizer_config.json / generation_config.json,
// resolves special tokens, and bounds-checks ids.
#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "core/parse_int.h"
#include "io/gguf_reader.h"
#include "tokenizer/gguf_tokenizer_json.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uintmax_t kMaxJsonBytes = 1u << 30;

json read_json(const fs::path& path) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(path, ec);
    QLORA_CHECK(!ec && size <= kMaxJsonBytes, path.string(), ": cannot read (",
                ec ? ec.message() : "larger than 1 GiB", ")");
    std::ifstream in(path, std::ios::binary);
    QLORA_CHECK(in.good(), path.string(), ": cannot open");
    try {
        return json::parse(in);
    } catch (const json::exception& e) {  // parse errors and number overflow (1e999999)
        QLORA_FAIL(path.string(), ": not valid JSON (", e.what(), ")");
    }
}

// tokenizer_config.json's add_bos_token / add_eos_token: true, false, or absent (the default).
bool config_flag(const json& j, const char* key, bool fallback, const std::string& where) {
    if (!j.contains(key) || j[key].is_null()) return fallback;
    QLORA_CHECK(j[key].is_boolean(), where, ": ", key, " must be true or false, found ",
                j[key].dump().substr(0, 40));
    return j[key].get<bool>();
}

// A special token as tokenizer_config.json writes it: "text", {"content": "text"} or null.
std::optional<std::string> token_text(const json& j, const char* key, const std::string& where) {
    if (!j.contains(key) || j[key].is_null()) return std::nullopt;
    const json& v = j[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) {
        return v["content"].get<std::string>();
    }
    QLORA_FAIL(where, ": '", key, "' expected a token string or {\"content\": ...}, found ",
               v.dump().substr(0, 80));
}

}  // namespace

Tokenizer::Tokenizer(const std::string& path) : config_(std::make_unique<json>(json::object())) {
    fs::path file = path;
    if (file.extension() == ".gguf" && fs::is_regular_file(file)) {
        const HfTokenizerJson hf = gguf_hf_tokenizer(io::GgufReader(path));
        *this = from_hf_json(hf.tokenizer, hf.tokenizer_config, path);
        return;
    }
    fs::path folder;
    if (fs::is_directory(file)) {
        folder = file;
        file = fs::exists(folder / "tokenizer.json") ? folder / "tokenizer.json"
                                                     : folder / "tokenizer.model";
    }
    path_ = file.string();
    QLORA_CHECK(fs::is_regular_file(file), "tokenizer not found: ", path_,
                " (expected a tokenizer.json or a SentencePiece tokenizer.model)");
    if (file.extension() == ".json") {
        kind_ = BackendKind::kHfJson;
        backend_ = std::make_unique<HfTokenizer>(read_json(file), path_);
    } else {
        backend_ = std::make_unique<SentencePieceBackend>(path_);
    }
    special_ = backend_->own_special_ids();
    if (folder.empty()) folder = file.parent_path();
    folder_ = folder.string();
    if (fs::exists(folder / "tokenizer_config.json")) {
        *config_ = read_json(folder / "tokenizer_config.json");
        QLORA_CHECK(config_->is_object(), (folder / "tokenizer_config.json").string(),
                    ": must hold a JSON object, found ", config_->type_name());
    }
    apply_config((folder / "tokenizer_config.json").string());
    const fs::path generation = folder / "generation_config.json";
    if (fs::exists(generation)) {
        const json g = read_json(generation);
        if (g.contains("eos_token_id")) {
            const json& e = g["eos_token_id"];
            for (const json& id : e.is_array() ? e : json::array({e})) {
                QLORA_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 &&
                                id.get<int64_t>() < vocab_size(),
                            generation.string(), ": eos_token_id must be ids below ", vocab_size(),
                            ", found ", e.dump().substr(0, 80));
                if (std::find(eos_ids_.begin(), eos_ids_.end(), id.get<int64_t>()) ==
                    eos_ids_.end()) {
                    eos_ids_.push_back(id.get<int64_t>());
                }
            }
        }
    }
}

Tokenizer Tokenizer::from_hf_json(const json& tokenizer_json, const json& tokenizer_config,
                                  const std::string& source) {
    Tokenizer t;
    t.kind_ = BackendKind::kHfJson;
    t.path_ = source;
    t.backend_ = std::make_unique<HfTokenizer>(tokenizer_json, source);
    t.special_ = t.backend_->own_special_ids();
    QLORA_CHECK(tokenizer_config.is_null() || tokenizer_config.is_object(), source,
                ": tokenizer_config must be an object, found ",
                tokenizer_config.dump().substr(0, 80));
    t.config_ =
        std::make_unique<json>(tokenizer_config.is_object() ? tokenizer_config : json::object());
    t.apply_config(source + " (tokenizer_config)");
    return t;
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

// Special tokens named by tokenizer_config.json override the backend's own ids; the tokens of
// added_tokens_decoder resolve first (SentencePiece models add <pad> and the like there).
void Tokenizer::apply_config(const std::string& where) {
    const json& j = *config_;
    std::map<std::string, int64_t> added;
    if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
        for (const auto& [id, tok] : j["added_tokens_decoder"].items()) {
            if (tok.is_object() && tok.contains("content") && tok["content"].is_string()) {
                added[tok["content"].get<std::string>()] =
                    parse_int64_or_fail(id, where + ": added_tokens_decoder key");
            }
        }
    }
    auto resolve = [&](const char* key, int64_t& out) {
        const std::optional<std::string> text = token_text(j, key, where);
        if (!text) return;
        if (auto it = added.find(*text); it != added.end()) {
            out = it->second;
            return;
        }
        const int64_t id = backend_->piece_to_id(*text);
        if (id < 0) {
            log_warn(where, ": ", key, " '", *text, "' is not in the vocabulary; keeping id ", out);
            return;
        }
        out = id;
    };
    resolve("bos_token", special_.bos);
    resolve("eos_token", special_.eos);
    resolve("pad_token", special_.pad);
    resolve("unk_token", special_.unk);
    if (kind_ == BackendKind::kSentencePiece) {
        sp_add_bos_ = config_flag(j, "add_bos_token", true, where) && special_.bos >= 0;
        sp_add_eos_ = config_flag(j, "add_eos_token", false, where) && special_.eos >= 0;
    }
    eos_ids_.clear();
    if (special_.eos >= 0) eos_ids_.push_back(special_.eos);
}

void Tokenizer::check_id(int64_t id) const {
    QLORA_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " out of range for tokenizer ",
                path_, " (vocab size ", vocab_size(), ")");
}

Encoding Tokenizer::encode_with_offsets(std::string_view text, bool add_special_tokens) const {
    Encoding e = backend_->encode(text, add_special_tokens);
    if (kind_ == BackendKind::kSentencePiece && add_special_tokens) {
        if (sp_add_bos_) {
            e.ids.insert(e.ids.begin(), special_.bos);
            e.offsets.insert(e.offsets.begin(), {0, 0});
        }
        if (sp_add_eos_) {
            e.ids.push_back(special_.eos);
            e.offsets.emplace_back(0, 0);
        }
    }
    return e;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
    std::vector<int64_t> out;
    if (kind_ == BackendKind::kSentencePiece) {
        out = backend_->encode(text, false).ids;
        if (add_bos) {
            QLORA_CHECK(special_.bos >= 0, "tokenizer ", path_, " has no BOS token");
            out.insert(out.begin(), special_.bos);
        }
    } else {
        out = backend_->encode(text, add_bos).ids;
    }
    if (add_eos) {
        QLORA_CHECK(special_.eos >= 0, "tokenizer ", path_, " has no EOS token");
        out.push_back(special_.eos);
    }
    return out;
}

std::string Tokenizer::decode_bytes(const std::vector<int64_t>& ids,
                                    bool skip_special_tokens) const {
    return backend_->decode_bytes(ids, skip_special_tokens);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
    return utf8::lossy(backend_->decode_bytes(ids, skip_special_tokens));
}

int64_t Tokenizer::vocab_size() const { return backend_->vocab_size(); }

std::string Tokenizer::piece(int64_t id) const {
    check_id(id);
    return backend_->piece(id);
}

float Tokenizer::score(int64_t id) const {
    check_id(id);
    return backend_->score(id);
}

PieceType Tokenizer::piece_type(int64_t id) const {
    check_id(id);
    return backend_->piece_type(id);
}

int64_t Tokenizer::piece_to_id(const std::string& piece) const {
    return backend_->piece_to_id(piece);
}

std::vector<AddedTokenInfo> Tokenizer::added_tokens() const {
    std::vector<AddedTokenInfo> out;
    if (const HfTokenizer* h = hf()) {
        for (const AddedToken& t : h->added().tokens()) out.push_back({t.id, t.content, t.special});
    } else if (config_->contains("added_tokens_decoder") &&
               (*config_)["added_tokens_decoder"].is_object()) {
        for (const auto& [id, tok] : (*config_)["added_tokens_decoder"].items()) {
            if (!tok.is_object() || !tok.contains("content") || !tok["content"].is_string())
                continue;
            out.push_back(
                {parse_int64_or_fail(id, "tokenizer_config.json added_tokens_decoder key"),
                 tok["content"].get<std::string>(),
                 tok.contains("special") && tok["special"].is_boolean() &&
                     tok["special"].get<bool>()});
        }
    }
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

bool Tokenizer::is_special(int64_t id) const {
    if (const HfTokenizer* h = hf()) {
        const AddedToken* a = h->added().by_id(static_cast<uint32_t>(id));
        return id >= 0 && a != nullptr && a->special;
    }
    return id >= 0 && id < vocab_size() && backend_->piece_type(id) == PieceType::kControl;
}

const HfTokenizer* Tokenizer::hf() const {
    return kind_ == BackendKind::kHfJson ? static_cast<const HfTokenizer*>(backend_.get())
                                         : nullptr;
}

bool Tokenizer::adds_bos() const {
    if (const HfTokenizer* h = hf()) {
        const auto prefix = h->template_prefix_ids();
        return special_.bos >= 0 && !prefix.empty() && prefix.front() == special_.bos;
    }
    return sp_add_bos_;
}

bool Tokenizer::adds_eos() const {
    if (const HfTokenizer* h = hf()) {
        const auto suffix = h->template_suffix_ids();
        return special_.eos >= 0 && !suffix.empty() && suffix.back() == special_.eos;
    }
    return sp_add_eos_;
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string StreamDecoder::decode_window() const {
    return tokenizer_.decode_bytes(ids_, skip_special_);
}

// As HF's DecodeStream: decode the window, emit what extends the already-emitted prefix once it
// ends on a whole character, then slide the window so it starts at the previous prefix point
// (one step of context keeps decoders that look at neighbours, like Metaspace, consistent).
std::string StreamDecoder::step(int64_t id) {
    ids_.push_back(id);
    const std::string text = decode_window();
    // Hold back while the text ends inside a character: raw incomplete UTF-8 (ByteLevel) or the
    // U+FFFD that ByteFallback writes for bytes still waiting for the rest of their character.
    if (text.size() <= prefix_.size() || utf8::incomplete_tail(text) > 0) return {};
    const std::string repaired = utf8::lossy(text);
    if (repaired.ends_with("\xEF\xBF\xBD")) return {};
    QLORA_RUNTIME_CHECK(text.compare(0, prefix_.size(), prefix_) == 0,
                        "streaming decode: the tokenizer's decoder rewrote earlier text");
    std::string fresh = utf8::lossy(std::string_view(text).substr(prefix_.size()));
    ids_.erase(ids_.begin(), ids_.begin() + static_cast<std::ptrdiff_t>(prefix_count_));
    prefix_ = decode_window();
    prefix_count_ = ids_.size();
    return fresh;
}

std::string StreamDecoder::finish() {
    const std::string text = decode_window();
    std::string rest = text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0
                           ? utf8::lossy(std::string_view(text).substr(prefix_.size()))
                           : std::string();
    ids_.clear();
    prefix_.clear();
    prefix_count_ = 0;
    return rest;
}

}  // namespace qlora::tokenizer
