// Assistant-turn spans by prefix rendering (see assistant_spans.h for the derivation).
#include "chat/assistant_spans.h"

#include <optional>

#include "core/error.h"

using ojson = nlohmann::ordered_json;

namespace qlora::chat {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
    return s.compare(0, prefix.size(), prefix) == 0;
}

// Replaces an assistant reply to find where the template puts it; no real text contains it.
const std::string kSentinel = "qlora-assistant-span-sentinel-8c1f3e";

bool is_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }

ojson first_messages(const ojson& messages, size_t n) {
    ojson out = ojson::array();
    for (size_t i = 0; i < n; ++i) out.push_back(messages[i]);
    return out;
}

// The text after a probe reply in [user, assistant] rendered without a generation prompt, less
// trailing whitespace: the template's end-of-turn marker ("<|im_end|>", "<|eot_id|>", "</s>").
std::string end_of_turn_marker(const ChatTemplate& t, const ojson& tools, const ojson& extra) {
    const ojson probe = {{{"role", "user"}, {"content", "U"}},
                         {{"role", "assistant"}, {"content", kSentinel}}};
    const std::string text = t.render(probe, false, tools, extra);
    const size_t at = text.find(kSentinel);
    if (at == std::string::npos) return {};
    std::string marker = text.substr(at + kSentinel.size());
    while (!marker.empty() && is_space(marker.back())) marker.pop_back();
    return marker;
}

// Fallback for templates that render a turn differently once later turns follow (Qwen3 drops the
// reasoning of turns before the last user message): find message i's content in the whole render
// by rendering it once more with the content replaced by a sentinel. Every assumption is checked:
// the render must be the same outside the content, the content must appear verbatim, and the
// end-of-turn marker must follow it. Returns nothing when any check fails.
std::optional<ByteSpan> span_by_sentinel(const ChatTemplate& t, const ojson& messages, size_t i,
                                         const std::string& full, size_t begin, const ojson& tools,
                                         const ojson& extra) {
    if (!messages[i].contains("content") || !messages[i]["content"].is_string())
        return std::nullopt;
    const std::string content = messages[i]["content"].get<std::string>();
    ojson with_sentinel = messages;
    with_sentinel[i]["content"] = kSentinel;
    const std::string marked = t.render(with_sentinel, false, tools, extra);
    const size_t at = marked.find(kSentinel);
    if (at == std::string::npos || marked.find(kSentinel, at + 1) != std::string::npos)
        return std::nullopt;
    if (at < begin || full.compare(0, at, marked, 0, at) != 0) return std::nullopt;
    if (full.compare(at, content.size(), content) != 0) return std::nullopt;
    const std::string tail = marked.substr(at + kSentinel.size());
    if (full.size() != at + content.size() + tail.size() ||
        full.compare(at + content.size(), tail.size(), tail) != 0) {
        return std::nullopt;
    }
    const std::string marker = end_of_turn_marker(t, tools, extra);
    if (marker.empty() || !starts_with(tail, marker)) return std::nullopt;
    return ByteSpan{begin, at + content.size() + marker.size()};
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
            starts_with(through, prompt) && starts_with(out.text, prompt), chat_template.name(),
            ": assistant message ", i,
            ": the conversation rendered through it does not start with its prompt (with "
            "add_generation_prompt); the template cannot be split into turns by prefix rendering");
        size_t end = through.size();
        while (end > prompt.size() && is_space(through[end - 1])) --end;
        through.resize(end);
        if (!starts_with(out.text, through)) {
            const auto span =
                span_by_sentinel(chat_template, messages, i, out.text, prompt.size(), tools, extra);
            QLORA_CHECK(
                span, chat_template.name(), ": assistant message ", i,
                ": the whole conversation renders it differently than the conversation ending at "
                "it ",
                "(the template rewrites earlier turns) and its content cannot be located verbatim; "
                "spans would be misplaced");
            out.assistant_spans.push_back(*span);
            continue;
        }
        QLORA_CHECK(end > prompt.size(), chat_template.name(), ": assistant message ", i,
                    " renders to no text at all, nothing to learn");
        out.assistant_spans.push_back({prompt.size(), end});
    }
    return out;
}

}  // namespace qlora::chat
