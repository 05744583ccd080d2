// SentencePiece wrapper: load, encode/decode with int64 ids, piece metadata, and the special tokens
// that tokenizer_config.json names (HF writes them as strings or {"content": ...} objects).
#include "tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "core/parse_int.h"

namespace qlora::tokenizer {
namespace fs = std::filesystem;

Tokenizer::Tokenizer(const std::string& path) : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
    fs::path model = path;
    fs::path folder;
    if (fs::is_directory(model)) {
        folder = model;
        model = folder / "tokenizer.model";
    }
    path_ = model.string();
    QLORA_CHECK(fs::is_regular_file(model), "tokenizer not found: ", path_,
                " (expected a SentencePiece tokenizer.model)");
    auto status = sp_->Load(path_);
    QLORA_CHECK(status.ok(), "cannot load SentencePiece tokenizer ", path_, ": ", status.ToString());
    bos_id_ = sp_->bos_id();
    eos_id_ = sp_->eos_id();
    pad_id_ = sp_->pad_id();
    unk_id_ = sp_->unk_id();
    if (!folder.empty() && fs::exists(folder / "tokenizer_config.json")) {
        apply_tokenizer_config((folder / "tokenizer_config.json").string());
    }
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;

void Tokenizer::apply_tokenizer_config(const std::string& json_path) {
    std::ifstream in(json_path);
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        QLORA_FAIL(json_path, ": not valid JSON (", e.what(), ")");
    }
    // Tokens added on top of the SentencePiece vocabulary: {"32000": {"content": "<pad>"}, ...}.
    std::map<std::string, int64_t> added;
    if (j.contains("added_tokens_decoder") && j["added_tokens_decoder"].is_object()) {
        for (const auto& [id, tok] : j["added_tokens_decoder"].items()) {
            if (tok.is_object() && tok.contains("content") && tok["content"].is_string()) {
                added[tok["content"].get<std::string>()] =
                    parse_int64_or_fail(id, json_path + ": added_tokens_decoder key");
            }
        }
    }
    auto resolve = [&](const char* key, int64_t& out) {
        if (!j.contains(key) || j[key].is_null()) return;
        const auto& v = j[key];
        std::string text;
        if (v.is_string()) {
            text = v.get<std::string>();
        } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
            text = v["content"].get<std::string>();
        } else {
            QLORA_FAIL(json_path, ": '", key, "' expected a token string or {\"content\": ...}, found ",
                       v.dump());
        }
        if (auto it = added.find(text); it != added.end()) {
            out = it->second;
            return;
        }
        int id = sp_->PieceToId(text);
        if (id == sp_->unk_id() && text != sp_->IdToPiece(sp_->unk_id())) {
            log_warn(json_path, ": ", key, " '", text, "' is not in the vocabulary; keeping id ", out);
            return;
        }
        out = id;
    };
    resolve("bos_token", bos_id_);
    resolve("eos_token", eos_id_);
    resolve("pad_token", pad_id_);
    resolve("unk_token", unk_id_);
}

void Tokenizer::check_id(int64_t id) const {
    QLORA_CHECK(id >= 0 && id < vocab_size(), "token id ", id, " out of range for tokenizer ",
                path_, " (vocab size ", vocab_size(), ")");
}

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_bos, bool add_eos) const {
    std::vector<int> ids;
    auto status = sp_->Encode(text, &ids);
    QLORA_RUNTIME_CHECK(status.ok(), "SentencePiece encode failed: ", status.ToString());
    std::vector<int64_t> out;
    out.reserve(ids.size() + 2);
    if (add_bos) {
        QLORA_CHECK(bos_id_ >= 0, "tokenizer ", path_, " has no BOS token");
        out.push_back(bos_id_);
    }
    out.insert(out.end(), ids.begin(), ids.end());
    if (add_eos) {
        QLORA_CHECK(eos_id_ >= 0, "tokenizer ", path_, " has no EOS token");
        out.push_back(eos_id_);
    }
    return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
    std::vector<int> narrow;
    narrow.reserve(ids.size());
    for (int64_t id : ids) {
        // Ids of added tokens beyond the SentencePiece vocabulary (e.g. a <pad> at 32000) decode
        // to nothing, as control tokens do.
        if (id >= 0 && id < vocab_size()) narrow.push_back(static_cast<int>(id));
    }
    std::string text;
    auto status = sp_->Decode(narrow, &text);
    QLORA_RUNTIME_CHECK(status.ok(), "SentencePiece decode failed: ", status.ToString());
    return text;
}

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

std::string Tokenizer::piece(int64_t id) const {
    check_id(id);
    return sp_->IdToPiece(static_cast<int>(id));
}

float Tokenizer::score(int64_t id) const {
    check_id(id);
    return sp_->GetScore(static_cast<int>(id));
}

PieceType Tokenizer::piece_type(int64_t id) const {
    check_id(id);
    int i = static_cast<int>(id);
    if (sp_->IsUnknown(i)) return PieceType::kUnknown;
    if (sp_->IsControl(i)) return PieceType::kControl;
    if (sp_->IsUnused(i)) return PieceType::kUnused;
    if (sp_->IsByte(i)) return PieceType::kByte;
    return PieceType::kNormal;
}

int64_t Tokenizer::piece_to_id(const std::string& piece) const {
    int id = sp_->PieceToId(piece);
    if (id == sp_->unk_id() && piece != sp_->IdToPiece(id)) return -1;
    return id;
}

}  // namespace qlora::tokenizer
