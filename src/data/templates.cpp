// Rendering of records through the four prompt templates (the strings are the contract: tests
// pin each one exactly).
#include "data/templates.h"

#include "core/error.h"

namespace qlora::data {
namespace {

// Stanford Alpaca (tatsu-lab/stanford_alpaca, train.py PROMPT_DICT), verbatim.
const char* kAlpacaIntro =
    "Below is an instruction that describes a task. Write a response that appropriately completes "
    "the request.";
const char* kAlpacaIntroInput =
    "Below is an instruction that describes a task, paired with an input that provides further "
    "context. Write a response that appropriately completes the request.";

std::string alpaca_prompt(const std::string& intro, const std::string& instruction,
                          const std::string& input) {
    std::string s = intro + "\n\n### Instruction:\n" + instruction + "\n\n";
    if (!input.empty()) s += "### Input:\n" + input + "\n\n";
    return s + "### Response:\n";
}

// Consecutive prompt pieces are merged so each turn's prompt is one segment.
void add(std::vector<Segment>& out, std::string text, bool completion, bool bos = false) {
    if (!completion && !bos && !out.empty() && !out.back().completion) {
        out.back().text += text;
        return;
    }
    out.push_back({std::move(text), completion, bos});
}

std::vector<Segment> render_alpaca_chat(const std::vector<Message>& msgs) {
    std::vector<Segment> out;
    std::string intro = kAlpacaIntro;
    size_t i = 0;
    if (!msgs.empty() && msgs[0].role == "system") intro = msgs[i++].content;
    bool first = true;
    for (; i < msgs.size(); ++i) {
        const Message& m = msgs[i];
        if (m.role == "user") {
            add(out,
                first ? alpaca_prompt(intro, m.content, "")
                      : "\n\n### Instruction:\n" + m.content + "\n\n### Response:\n",
                false);
            first = false;
        } else {
            add(out, m.content, true);
        }
    }
    return out;
}

std::vector<Segment> render_llama2(const std::vector<Message>& msgs) {
    std::vector<Segment> out;
    std::string system;
    size_t i = 0;
    if (!msgs.empty() && msgs[0].role == "system") system = msgs[i++].content;
    bool first = true;
    for (; i < msgs.size(); ++i) {
        const Message& m = msgs[i];
        if (m.role == "user") {
            std::string s = "[INST] ";
            if (first && !system.empty()) s += "<<SYS>>\n" + system + "\n<</SYS>>\n\n";
            add(out, s + m.content + " [/INST]", false, !first);
            first = false;
        } else {
            add(out, m.content, true);
        }
    }
    return out;
}

std::vector<Segment> render_chatml(const std::vector<Message>& msgs) {
    std::vector<Segment> out;
    for (size_t i = 0; i < msgs.size(); ++i) {
        const Message& m = msgs[i];
        // After a completion (its EOS), the newline that separates messages opens the next prompt.
        const std::string sep = (i > 0 && msgs[i - 1].role == "assistant") ? "\n" : "";
        if (m.role == "assistant") {
            add(out, sep + "<|im_start|>assistant\n", false);
            add(out, m.content + "<|im_end|>", true);
        } else {
            add(out, sep + "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n", false);
        }
    }
    return out;
}

std::vector<Segment> render_plain(const std::vector<Message>& msgs) {
    std::vector<Segment> out;
    for (const Message& m : msgs) {
        if (m.role == "system") add(out, m.content + "\n\n", false);
        if (m.role == "user") add(out, m.content + "\n", false);
        if (m.role == "assistant") add(out, m.content, true);
    }
    return out;
}

}  // namespace

std::vector<Message> as_messages(const Record& r, Format format) {
    if (format == Format::kChat) return r.messages;
    std::string user = r.instruction;
    if (!r.input.empty()) user += "\n\n" + r.input;
    return {{"user", user}, {"assistant", r.output}};
}

Template parse_template(std::string_view name) { return kTemplateNames.parse(name); }

std::string template_name(Template value) { return kTemplateNames.name(value); }

std::vector<Segment> render(const Record& record, Format format, Template tmpl) {
    if (format == Format::kText) return {{record.text, true, false}};
    if (format == Format::kAlpaca && tmpl == Template::kAlpaca) {
        const char* intro = record.input.empty() ? kAlpacaIntro : kAlpacaIntroInput;
        return {{alpaca_prompt(intro, record.instruction, record.input), false, false},
                {record.output, true, false}};
    }
    const std::vector<Message> msgs = as_messages(record, format);
    switch (tmpl) {
        case Template::kAlpaca:
            return render_alpaca_chat(msgs);
        case Template::kLlama2Chat:
            return render_llama2(msgs);
        case Template::kChatml:
            return render_chatml(msgs);
        case Template::kPlain:
            return render_plain(msgs);
        case Template::kModel:
        case Template::kAuto:
            break;
    }
    QLORA_FAIL("data::render: the ", template_name(tmpl),
               " template renders through data/chat_format.h, not as segments");
}

std::string render_prompt(const std::string& user, Template tmpl) {
    Record r;
    r.messages = {{"user", user}, {"assistant", ""}};
    return render(r, Format::kChat, tmpl).front().text;
}

}  // namespace qlora::data
