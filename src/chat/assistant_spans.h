// Where the assistant turns are in a rendered conversation: the bytes a model must learn to
// produce (the turn's text and the template's end-of-turn marker, e.g. "Hi!<|eot_id|>" for
// Llama 3, "Hi!<|im_end|>" for ChatML), found by rendering prefixes of the conversation:
//   begin = length of render(messages[0..i), add_generation_prompt=true)
//   end   = length of render(messages[0..i], add_generation_prompt=false), less trailing
//           whitespace (the newline ChatML writes after <|im_end|> belongs to no turn)
// so it works for any template, with or without {% generation %} tags. Each prefix render must be
// a prefix of the whole conversation's. A template that renders an earlier turn differently once
// later turns follow (Qwen3 drops old reasoning) falls back to locating the turn's content in the
// whole render with a sentinel (checked to change nothing else), followed by the end-of-turn
// marker; when that fails too, it is an error naming the message, never a misplaced mask.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "chat/chat_template.h"

namespace qlora::chat {

struct ByteSpan {
    size_t begin = 0;
    size_t end = 0;  // exclusive
};

struct RenderedChat {
    std::string text;                       // render(messages, add_generation_prompt=false)
    std::vector<ByteSpan> assistant_spans;  // one per assistant message, in order
};

RenderedChat render_with_assistant_spans(
    const ChatTemplate& chat_template, const nlohmann::ordered_json& messages,
    const nlohmann::ordered_json& tools = nullptr,
    const nlohmann::ordered_json& extra = nlohmann::ordered_json::object());

}  // namespace qlora::chat
