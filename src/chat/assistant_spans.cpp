// Assistant-turn spans by prefix rendering (see assistant_spans.h for the derivation).
#include "chat/assistant_spans.h"

#include "core/error.h"

using ojson = nlohmann::ordered_json;

namespace qlora::chat {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

ojson first_messages(const ojson& messages, size_t n) {
    ojson out = ojson::array();
    for (size_t i = 0; i < n; ++i) out.push_back(messages[i]);
    return out;
}

}  // namespace

RenderedChat render_with_assistant_spans(const ChatTemplate& chat_template, const ojson& messages,
                                         const ojson& tools, const ojson& extra) {
    RenderedChat out;
    out.text = chat_template.render(messages, false, tools, extra);
    for (size_t i = 0; i < messages.size(); ++i) {
        const ojson& m = messages[i];
        if (!m.is_object() || m.value("role", std::string()) != "assistant") continue;
        QLORA_CHECK(i > 0, chat_template.name(),
                    ": message 0 is an assistant turn; no prompt precedes it to mask");
        const std::string prompt =
            chat_template.render(first_messages(messages, i), true, tools, extra);
        std::string through =
            chat_template.render(first_messages(messages, i + 1), false, tools, extra);
        QLORA_CHECK(
            starts_with(through, prompt), chat_template.name(), ": assistant message ", i,
            ": the conversation rendered through it does not start with its prompt (with "
            "add_generation_prompt); the template cannot be split into turns by prefix rendering");
        size_t end = through.size();
        while (end > prompt.size() && is_space(through[end - 1])) --end;
        through.resize(end);
        QLORA_CHECK(
            starts_with(out.text, through), chat_template.name(), ": assistant message ", i,
            ": the whole conversation renders it differently than the conversation ending at it ",
            "(the template rewrites earlier turns); spans would be misplaced");
        QLORA_CHECK(end > prompt.size(), chat_template.name(), ": assistant message ", i,
                    " renders to no text at all, nothing to learn");
        out.assistant_spans.push_back({prompt.size(), end});
    }
    return out;
}

}  // namespace qlora::chat
