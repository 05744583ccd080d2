// SentencePiece backend: a thin adapter from SentencePieceProcessor to int64 ids and byte offsets.
#include "tokenizer/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>

#include "core/error.h"

namespace qlora::tokenizer {

SentencePieceBackend::SentencePieceBackend(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()), path_(model_path) {
    auto status = sp_->Load(path_);
    QLORA_CHECK(status.ok(), "cannot load SentencePiece tokenizer ", path_, ": ",
                status.ToString());
}

SentencePieceBackend::~SentencePieceBackend() = default;

Encoding SentencePieceBackend::encode(std::string_view text, bool) const {
    sentencepiece::ImmutableSentencePieceText spt;
    auto status = sp_->Encode(absl::string_view(text.data(), text.size()), spt.mutable_proto());
    QLORA_RUNTIME_CHECK(status.ok(), "SentencePiece encode failed: ", status.ToString());
    Encoding e;
    e.ids.reserve(spt.pieces_size());
    e.offsets.reserve(spt.pieces_size());
    for (const auto& p : spt.pieces()) {
        e.ids.push_back(p.id());
        e.offsets.emplace_back(p.begin(), p.end());
    }
    return e;
}

std::string SentencePieceBackend::decode_bytes(const std::vector<int64_t>& ids, bool) const {
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

int64_t SentencePieceBackend::vocab_size() const { return sp_->GetPieceSize(); }

std::string SentencePieceBackend::piece(int64_t id) const {
    return sp_->IdToPiece(static_cast<int>(id));
}

float SentencePieceBackend::score(int64_t id) const { return sp_->GetScore(static_cast<int>(id)); }

PieceType SentencePieceBackend::piece_type(int64_t id) const {
    const int i = static_cast<int>(id);
    if (sp_->IsUnknown(i)) return PieceType::kUnknown;
    if (sp_->IsControl(i)) return PieceType::kControl;
    if (sp_->IsUnused(i)) return PieceType::kUnused;
    if (sp_->IsByte(i)) return PieceType::kByte;
    return PieceType::kNormal;
}

int64_t SentencePieceBackend::piece_to_id(std::string_view piece) const {
    const int id = sp_->PieceToId(absl::string_view(piece.data(), piece.size()));
    if (id == sp_->unk_id() && piece != sp_->IdToPiece(id)) return -1;
    return id;
}

SpecialIds SentencePieceBackend::own_special_ids() const {
    return {sp_->bos_id(), sp_->eos_id(), sp_->pad_id(), sp_->unk_id()};
}

}  // namespace qlora::tokenizer
