// A model's chat template: the Jinja program that turns a conversation into the text the model
// was trained on, rendered as transformers' apply_chat_template(..., tokenize=False) renders it.
//
// Sources, as transformers reads them: a model folder's chat_template.jinja, else the
// "chat_template" of tokenizer_config.json (a string, or a list of {name, template} from which
// "default" or a named one such as "tool_use" is picked); a string (a GGUF's
// tokenizer.chat_template); a .jinja file. The special-token strings (bos_token, eos_token, ...)
// come from tokenizer_config.json, where they may be strings or AddedToken dicts.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "jinja/template.h"
#include "tokenizer/tokenizer.h"

namespace qlora::chat {

// bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: only those the
// tokenizer defines (a template sees an undefined bos_token when the tokenizer has none).
using SpecialTokens = std::map<std::string, std::string>;

class ChatTemplate {
  public:
    // `which`: "default" (or the only template) unless a named one is asked for.
    static ChatTemplate from_model_folder(const std::string& dir,
                                          const std::string& which = "default");
    // The template of the model `tok` was read from: its folder's, or a GGUF's
    // tokenizer.chat_template (carried in tok.config()).
    static ChatTemplate of_tokenizer(const tokenizer::Tokenizer& tok,
                                     const std::string& which = "default");
    // tokenizer_config.json's chat_template; `where` names the config in errors and in the
    // template's name, `model` the model that lacks one.
    static ChatTemplate from_config(const nlohmann::ordered_json& config, const std::string& where,
                                    const std::string& model, const std::string& which = "default");
    static ChatTemplate from_string(const std::string& source, std::string name,
                                    SpecialTokens tokens = {});
    static ChatTemplate from_file(const std::string& path, SpecialTokens tokens = {});

    // messages: a JSON array of message objects. tools: null for none (the template then sees
    // tools=None, as with transformers). extra: further template variables (enable_thinking,
    // reasoning_effort, date_string, ...), which override the special tokens.
    std::string render(
        const nlohmann::ordered_json& messages, bool add_generation_prompt,
        const nlohmann::ordered_json& tools = nullptr,
        const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;
    // The same from nlohmann::json, whose objects keep keys sorted: a template that prints a dict
    // (tojson of tools or arguments) then shows sorted keys where Python keeps the caller's order.
    std::string render(const nlohmann::json& messages, bool add_generation_prompt,
                       const nlohmann::json& tools = nullptr,
                       const nlohmann::json& extra = nlohmann::json::object()) const;

    const std::string& name() const { return template_.name(); }
    const std::string& source() const { return source_; }
    const SpecialTokens& special_tokens() const { return tokens_; }

  private:
    ChatTemplate(const std::string& source, std::string name, SpecialTokens tokens);

    std::string source_;
    jinja::Template template_;
    SpecialTokens tokens_;
};

// Whether ChatTemplate::of_tokenizer finds a template.
bool has_chat_template(const tokenizer::Tokenizer& tok);

// The special tokens of a tokenizer_config.json object (strings or {"content": ...} dicts).
SpecialTokens special_tokens_of(const nlohmann::ordered_json& tokenizer_config,
                                const std::string& where);

}  // namespace qlora::chat
