// Prompt templates: a record becomes segments of text, each either prompt (no loss unless
// train_on_inputs) or completion (loss, and EOS after it). Segments are tokenized one by one so
// the prompt/completion boundary is exact (as Meta's llama2-chat encodes each turn on its own).
#pragma once

#include <string>
#include <vector>

#include "core/enum_names.h"
#include "data/records.h"

namespace qlora::data {

// kModel: the tokenizer's own Jinja chat template (data/chat_format.h); kAuto: kModel when the
// tokenizer has one, else kAlpaca (data/chat_format.h resolves it once the tokenizer is known).
enum class Template { kAlpaca, kLlama2Chat, kChatml, kPlain, kModel, kAuto };
// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kTemplateNames =
    enum_names<Template>("data.template", {{Template::kAuto, "auto"},
                                           {Template::kModel, "model"},
                                           {Template::kAlpaca, "alpaca"},
                                           {Template::kLlama2Chat, "llama2-chat"},
                                           {Template::kChatml, "chatml"},
                                           {Template::kPlain, "plain"}});
Template parse_template(std::string_view name);
std::string template_name(Template value);

struct Segment {
    std::string text;
    bool completion = false;  // a completion gets labels and is followed by EOS
    bool bos = false;         // a BOS token goes before it (llama2-chat turns after the first)
};

// Text records are one completion segment (the template does not apply). Alpaca records under a
// chat template are one user turn (instruction, then a blank line and the input if any) and one
// assistant turn; chat records under the alpaca template are turns of "### Instruction:" /
// "### Response:", the system message (if any) replacing Alpaca's opening sentence.
//
//   alpaca       Stanford Alpaca's prompt (with/without input), completion = output
//   llama2-chat  "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]" then " {assistant}"; every
//                later turn starts with BOS "[INST] {user} [/INST]"
//   chatml       "<|im_start|>{role}\n{content}<|im_end|>\n" per message, prompts ending with
//                "<|im_start|>assistant\n", completions "{content}<|im_end|>"
//   plain        "{system}\n\n" (if any), then "{user}\n" prompts and "{assistant}" completions
// tmpl is one of the four named templates (model and auto go through data/chat_format.h).
std::vector<Segment> render(const Record& record, Format format, Template tmpl);

// The conversation of an alpaca or chat record: a chat record's messages; an alpaca record's user
// turn (instruction, then a blank line and the input if any) and assistant turn (the output).
std::vector<Message> as_messages(const Record& record, Format format);

// The prompt a model fine-tuned with `tmpl` (one of the four named) expects for one user message
// (generation, eval prompts).
std::string render_prompt(const std::string& user, Template tmpl);

}  // namespace qlora::data
