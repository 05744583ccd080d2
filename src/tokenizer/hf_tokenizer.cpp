// tokenizer.json loading and the encode/decode pipelines.
#include "tokenizer/hf_tokenizer.h"

#include "core/error.h"
#include "tokenizer/hf_json.h"
#include "tokenizer/utf8.h"

namespace qlora::tokenizer {
namespace {

using nlohmann::json;

constexpr uint64_t kMaxAddedId = 16u << 20;

std::vector<AddedToken> parse_added_tokens(const json& j, const std::string& where) {
    std::vector<AddedToken> out;
    if (!j.contains("added_tokens") || j["added_tokens"].is_null()) return out;
    const json& list = hf_json::get_array(j, "added_tokens", where);
    for (size_t i = 0; i < list.size(); ++i) {
        const std::string at = where + ": added_tokens[" + std::to_string(i) + "]";
        const json& t = list[i];
        QLORA_CHECK(
            t.is_object() && t.contains("id") && hf_json::is_index_below(t["id"], kMaxAddedId), at,
            ": expected an object with an integer id in [0, ", kMaxAddedId, "), found ",
            hf_json::excerpt(t));
        AddedToken a;
        a.id = t["id"].get<uint32_t>();
        a.content = hf_json::get_string(t, "content", at);
        QLORA_CHECK(!a.content.empty(), at, ": content is empty");
        QLORA_CHECK(utf8::first_invalid(a.content) == std::string::npos, at,
                    ": content is not valid UTF-8");
        a.special = hf_json::get_bool_or(t, "special", false, at);
        a.lstrip = hf_json::get_bool_or(t, "lstrip", false, at);
        a.rstrip = hf_json::get_bool_or(t, "rstrip", false, at);
        a.single_word = hf_json::get_bool_or(t, "single_word", false, at);
        a.normalized = hf_json::get_bool_or(t, "normalized", !a.special, at);
        out.push_back(std::move(a));
    }
    return out;
}

const json& member_or_null(const json& j, const char* key) {
    static const json null_value;
    return j.contains(key) ? j[key] : null_value;
}

}  // namespace

HfTokenizer::HfTokenizer(const json& j, const std::string& source) : source_(source) {
    QLORA_CHECK(j.is_object(), source, ": expected a tokenizer.json object, found ",
                hf_json::excerpt(j));
    QLORA_CHECK(j.contains("model") && j["model"].is_object(), source,
                ": expected a 'model' object (the tokenizer.json model section)");
    model_ = std::make_unique<BpeModel>(j["model"], source + ": model");
    normalizer_ = make_normalizer(member_or_null(j, "normalizer"), source + ": normalizer");
    pre_tokenizer_config_ = member_or_null(j, "pre_tokenizer");
    pre_tokenizer_ = make_pre_tokenizer(pre_tokenizer_config_, source + ": pre_tokenizer");
    post_processor_ =
        make_post_processor(member_or_null(j, "post_processor"), source + ": post_processor");
    decoder_ = make_decoder(member_or_null(j, "decoder"), source + ": decoder");
    const json& dec = member_or_null(j, "decoder");
    byte_level_decoder_ = dec.is_object() && dec.value("type", "") == "ByteLevel";

    std::vector<AddedToken> tokens = parse_added_tokens(j, source);
    id_limit_ = static_cast<int64_t>(model_->id_limit());
    for (const AddedToken& t : tokens) id_limit_ = std::max<int64_t>(id_limit_, t.id + 1);
    added_ = AddedVocabulary(std::move(tokens), [this](const std::string& content) {
        if (!normalizer_) return content;
        NormalizedText t = NormalizedText::original(content, 0, content.size());
        normalizer_->normalize(t);
        return t.text;
    });
    for (const AddedToken& t : added_.tokens()) {
        // An added token that is also a model entry must agree on its id.
        if (auto id = model_->token_to_id(t.content)) {
            QLORA_CHECK(*id == t.id, source, ": added token '", t.content, "' has id ", t.id,
                        " but the model vocab gives it id ", *id);
        }
    }
}

std::optional<std::string_view> HfTokenizer::token_of(int64_t id) const {
    if (id < 0 || id >= id_limit_) return std::nullopt;
    if (const AddedToken* a = added_.by_id(static_cast<uint32_t>(id))) return a->content;
    if (const std::string* t = model_->id_to_token(static_cast<uint32_t>(id))) return *t;
    return std::nullopt;
}

std::optional<int64_t> HfTokenizer::id_of(std::string_view token) const {
    if (auto id = added_.by_content(token)) return *id;
    if (auto id = model_->token_to_id(token)) return *id;
    return std::nullopt;
}

void HfTokenizer::append_pieces(NormalizedText segment, Encoding& e) const {
    std::vector<NormalizedText> pieces;
    pieces.push_back(std::move(segment));
    if (pre_tokenizer_) pre_tokenizer_->pre_tokenize(pieces);
    std::vector<WordToken> word;
    for (const NormalizedText& piece : pieces) {
        word.clear();
        model_->tokenize(piece.text, word);
        for (const WordToken& w : word) {
            const Span s = piece.original_span(w.begin, w.end);
            e.ids.push_back(w.id);
            e.offsets.emplace_back(s.begin, s.end);
        }
    }
}

Encoding HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
    const size_t bad = utf8::first_invalid(text);
    QLORA_CHECK(bad == std::string_view::npos, source_,
                ": cannot encode text that is not valid UTF-8 (ill-formed byte at offset ", bad,
                " of ", text.size(), ")");
    Encoding e;
    for (const AddedSegment& raw : added_.split(text, /*normalized_set=*/false)) {
        if (raw.id) {
            e.ids.push_back(*raw.id);
            e.offsets.emplace_back(raw.begin, raw.end);
            continue;
        }
        NormalizedText segment = NormalizedText::original(text, raw.begin, raw.end);
        if (normalizer_) normalizer_->normalize(segment);
        const std::vector<AddedSegment> parts = added_.split(segment.text, /*normalized_set=*/true);
        for (const AddedSegment& part : parts) {
            if (part.id) {
                const Span s = segment.original_span(part.begin, part.end);
                e.ids.push_back(*part.id);
                e.offsets.emplace_back(s.begin, s.end);
            } else if (part.end > part.begin) {
                append_pieces(
                    parts.size() == 1 ? std::move(segment) : segment.slice(part.begin, part.end),
                    e);
            }
        }
    }
    if (post_processor_) {
        post_processor_->process(e, add_special_tokens, [this](int64_t id) {
            return token_of(id).value_or(std::string_view());
        });
    }
    return e;
}

std::string HfTokenizer::decode_bytes(const std::vector<int64_t>& ids, bool skip_special) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int64_t id : ids) {
        QLORA_CHECK(id >= 0 && id < id_limit_, "token id ", id, " is outside the vocabulary of ",
                    source_, " (", id_limit_, " ids)");
        if (const AddedToken* a = added_.by_id(static_cast<uint32_t>(id))) {
            if (!(skip_special && a->special)) tokens.push_back(a->content);
        } else if (const std::string* t = model_->id_to_token(static_cast<uint32_t>(id))) {
            tokens.push_back(*t);
        }
    }
    if (!decoder_) {
        std::string joined;
        for (size_t i = 0; i < tokens.size(); ++i) joined += (i ? " " : "") + tokens[i];
        return joined;
    }
    decoder_->decode_chain(tokens);
    std::string out;
    for (const std::string& t : tokens) out += t;
    return out;
}

std::string HfTokenizer::piece(int64_t id) const {
    return std::string(token_of(id).value_or(std::string_view()));
}

PieceType HfTokenizer::piece_type(int64_t id) const {
    if (id < 0 || id >= id_limit_) return PieceType::kUnused;
    if (const AddedToken* a = added_.by_id(static_cast<uint32_t>(id))) {
        return a->special ? PieceType::kControl : PieceType::kUserDefined;
    }
    const std::string* t = model_->id_to_token(static_cast<uint32_t>(id));
    if (t == nullptr) return PieceType::kUnused;
    if (model_->unk_id() && *model_->unk_id() == id) return PieceType::kUnknown;
    if (model_->byte_fallback() && t->size() == 6 && t->compare(0, 3, "<0x") == 0) {
        return PieceType::kByte;
    }
    return PieceType::kNormal;
}

SpecialIds HfTokenizer::own_special_ids() const {
    SpecialIds s;
    if (model_->unk_id()) s.unk = *model_->unk_id();
    return s;
}

std::string HfTokenizer::pre_tokenizer_regex() const {
    return pre_tokenizer_ ? pre_tokenizer_->main_regex() : "";
}

std::vector<int64_t> HfTokenizer::template_prefix_ids() const {
    return post_processor_ ? post_processor_->prefix_ids() : std::vector<int64_t>{};
}

std::vector<int64_t> HfTokenizer::template_suffix_ids() const {
    return post_processor_ ? post_processor_->suffix_ids() : std::vector<int64_t>{};
}

}  // namespace qlora::tokenizer
