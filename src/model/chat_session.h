// A multi-turn conversation with a model through its chat template (qlora-generate --chat). Each
// turn renders the whole conversation with add_generation_prompt and encodes it whole, with no
// special tokens added (the template writes them), as apply_chat_template(tokenize=True) does; the
// reply is generated until a stop id (the template's end-of-turn token is one of the EOS ids) and
// joins the conversation as the assistant's message.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "chat/chat_template.h"
#include "model/generate.h"

namespace qlora::tokenizer {
class Tokenizer;
}

namespace qlora::model {

class ChatSession {
  public:
    // `system`: an opening system message (none when empty).
    ChatSession(Llama& model, const tokenizer::Tokenizer& tok, chat::ChatTemplate chat_template,
                GenerateOptions options, const std::string& system = "");

    // Adds the user's turn, generates the reply (on_text gets each piece of text as soon as it is
    // final), adds the reply to the conversation and returns it.
    std::string reply(const std::string& user,
                      const std::function<void(const std::string&)>& on_text = {});

    const nlohmann::ordered_json& messages() const { return messages_; }

  private:
    Llama& model_;
    const tokenizer::Tokenizer& tok_;
    chat::ChatTemplate template_;
    GenerateOptions options_;
    nlohmann::ordered_json messages_ = nlohmann::ordered_json::array();
};

}  // namespace qlora::model
