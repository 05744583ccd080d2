// data.template model / auto: records rendered by the tokenizer's own Jinja chat template, as
// transformers' apply_chat_template renders them, so a fine-tune trains on the ids the model sees
// at inference. The sample's ids are the tokenizer's encoding of the whole rendered conversation
// (no special tokens added: the template writes BOS itself), never of separately tokenized pieces,
// which differ at BPE boundaries; the labels are the tokens that overlap an assistant turn's bytes
// (chat/assistant_spans.h: the turn's text and its end-of-turn marker).
#pragma once

#include <optional>

#include "chat/chat_template.h"
#include "data/records.h"
#include "data/sample.h"
#include "data/templates.h"

namespace qlora::tokenizer {
class Tokenizer;
}

namespace qlora::data {

// The chat template of the folder `tok` was read from (chat_template.jinja, else
// tokenizer_config.json's chat_template); nullopt when it has none.
std::optional<chat::ChatTemplate> model_chat_template(const tokenizer::Tokenizer& tok);

// What a configured template means for `tok`: auto is the model's template when the tokenizer has
// one, else alpaca; model without one is a qlora::Error naming data.template and the folder.
struct ResolvedTemplate {
    Template tmpl = Template::kAlpaca;       // never kAuto
    std::optional<chat::ChatTemplate> chat;  // set when tmpl is kModel
};
ResolvedTemplate resolve_template(Template configured, const tokenizer::Tokenizer& tok);

// An alpaca or chat record through the model's template (train_on_inputs: every token but a
// leading BOS gets a label). Not truncated: the caller cuts to max_seq_len.
Sample tokenize_with_chat_template(const Record& record, Format format,
                                   const chat::ChatTemplate& chat_template,
                                   const tokenizer::Tokenizer& tok, const TokenizeOptions& options);

// The model's prompt for one user message: the template with add_generation_prompt.
std::string render_model_prompt(const std::string& user, const chat::ChatTemplate& chat_template);

}  // namespace qlora::data
