// Records through the model's own chat template (data/chat_format.h).
#include "data/chat_format.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "chat/assistant_spans.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace qlora::data {
namespace {

namespace fs = std::filesystem;

nlohmann::ordered_json messages_json(const std::vector<Message>& messages) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const Message& m : messages) out.push_back({{"role", m.role}, {"content", m.content}});
    return out;
}

bool overlaps(const std::pair<size_t, size_t>& token, const chat::ByteSpan& span) {
    return token.first < span.end && token.second > span.begin;
}

}  // namespace

std::optional<chat::ChatTemplate> model_chat_template(const tokenizer::Tokenizer& tok) {
    if (!chat::has_chat_template(tok)) return std::nullopt;
    return chat::ChatTemplate::of_tokenizer(tok);
}

ResolvedTemplate resolve_template(Template configured, const tokenizer::Tokenizer& tok) {
    if (configured != Template::kAuto && configured != Template::kModel) return {configured, {}};
    std::optional<chat::ChatTemplate> chat = model_chat_template(tok);
    if (chat) return {Template::kModel, std::move(chat)};
    QLORA_CHECK(configured == Template::kAuto, "data.template: model needs the tokenizer's chat ",
                "template, but ", tok.folder().empty() ? tok.path() : tok.folder(),
                " has none (no chat_template.jinja, no chat_template in tokenizer_config.json); ",
                "pick alpaca, llama2-chat, chatml or plain");
    return {Template::kAlpaca, {}};
}

Sample tokenize_with_chat_template(const Record& record, Format format,
                                   const chat::ChatTemplate& chat_template,
                                   const tokenizer::Tokenizer& tok,
                                   const TokenizeOptions& options) {
    const chat::RenderedChat rendered = [&] {
        try {
            return chat::render_with_assistant_spans(chat_template,
                                                     messages_json(as_messages(record, format)));
        } catch (const std::exception& e) {
            QLORA_FAIL(record.origin, ": ", e.what());
        }
    }();
    const tokenizer::Encoding enc =
        tok.encode_with_offsets(rendered.text, /*add_special_tokens=*/false);
    Sample s;
    s.tokens = enc.ids;
    s.labels.assign(enc.ids.size(), kIgnoreIndex);
    for (size_t i = 0; i < enc.ids.size(); ++i) {
        const bool leading_bos = i == 0 && enc.ids[0] == tok.bos_id();
        bool label = options.train_on_inputs && !leading_bos;
        for (const chat::ByteSpan& span : rendered.assistant_spans) {
            label = label || overlaps(enc.offsets[i], span);
        }
        if (label) s.labels[i] = enc.ids[i];
    }
    return s;
}

std::string render_model_prompt(const std::string& user, const chat::ChatTemplate& chat_template) {
    return chat_template.render(messages_json({{"user", user}}), /*add_generation_prompt=*/true);
}

}  // namespace qlora::data
