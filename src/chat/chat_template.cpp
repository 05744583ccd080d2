// Loading chat templates from model folders, strings and files, and rendering a conversation with
// the inputs transformers gives a template: messages with None-valued keys dropped and reasoning
// aliased (reasoning_content <-> thinking), tools (or None), documents=None,
// add_generation_prompt, the special tokens, then the caller's extra variables.
#include "chat/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

namespace qlora::chat {
namespace {

constexpr size_t kMaxTemplateBytes = size_t{4} << 20;  // real templates are a few KiB

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    QLORA_CHECK(in, path, ": cannot open the file");
    in.seekg(0, std::ios::end);
    const auto size = static_cast<size_t>(in.tellg());
    QLORA_CHECK(size <= kMaxTemplateBytes, path, ": ", size,
                " bytes, more than a chat template's limit of ", kMaxTemplateBytes);
    in.seekg(0);
    std::string text(size, '\0');
    in.read(text.data(), static_cast<std::streamsize>(size));
    return text;
}

ojson read_json(const std::string& path) {
    try {
        return ojson::parse(read_text(path));
    } catch (const nlohmann::json::exception& e) {
        QLORA_FAIL(path, ": not valid JSON (", e.what(), ")");
    }
}

// tokenizer_config's chat_template: a string, or [{name, template}, ...].
std::string pick_template(const ojson& value, const std::string& which, const std::string& where) {
    if (value.is_string()) {
        QLORA_CHECK(which == "default", where, ": has a single chat_template, no template named '",
                    which, "'");
        return value.get<std::string>();
    }
    QLORA_CHECK(value.is_array(), where,
                ": chat_template must be a string or a list of {name, template}, got ",
                value.type_name());
    std::string names;
    for (const auto& entry : value) {
        QLORA_CHECK(entry.is_object() && entry.contains("name") && entry["name"].is_string() &&
                        entry.contains("template") && entry["template"].is_string(),
                    where, ": each chat_template entry must be {\"name\": str, \"template\": str}");
        const std::string name = entry["name"].get<std::string>();
        if (name == which) return entry["template"].get<std::string>();
        names += (names.empty() ? "" : ", ") + name;
    }
    QLORA_FAIL(where, ": no chat template named '", which, "' (it has: ", names, ")");
}

// transformers' _normalize_chat_messages and _alias_reasoning_fields.
ojson normalize_messages(const ojson& messages, const std::string& where) {
    QLORA_CHECK(messages.is_array(), where, ": messages must be a JSON array, got ",
                messages.type_name());
    QLORA_CHECK(
        !messages.empty(), where,
        ": Cannot apply chat template to an empty conversation. Provide at least one message.");
    ojson out = ojson::array();
    for (size_t i = 0; i < messages.size(); ++i) {
        const ojson& m = messages[i];
        QLORA_CHECK(m.is_object(), where, ": message ", i, " must be a JSON object, got ",
                    m.type_name());
        ojson kept = ojson::object();
        for (const auto& [k, v] : m.items()) {
            if (!v.is_null()) kept[k] = v;
        }
        for (const char* field : {"reasoning_content", "thinking", "reasoning"}) {
            if (!kept.contains(field)) continue;
            const ojson reasoning = kept[field];
            ojson aliased = ojson::object();
            aliased["thinking"] =
                reasoning;  // first, unless the message has its own (then kept in place)
            for (const auto& [k, v] : kept.items()) aliased[k] = v;
            aliased["reasoning_content"] = reasoning;
            kept = std::move(aliased);
            break;
        }
        out.push_back(std::move(kept));
    }
    return out;
}

}  // namespace

SpecialTokens special_tokens_of(const ojson& config, const std::string& where) {
    SpecialTokens tokens;
    for (const char* key : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token",
                            "cls_token", "mask_token"}) {
        if (!config.contains(key) || config[key].is_null()) continue;
        const ojson& v = config[key];
        if (v.is_string()) {
            tokens[key] = v.get<std::string>();
        } else {
            QLORA_CHECK(v.is_object() && v.contains("content") && v["content"].is_string(), where,
                        ": ", key, " must be a string or an AddedToken {\"content\": ...}, got ",
                        v.dump().substr(0, 80));
            tokens[key] = v["content"].get<std::string>();
        }
    }
    return tokens;
}

ChatTemplate::ChatTemplate(const std::string& source, std::string name, SpecialTokens tokens)
    : source_(source),
      template_(jinja::Template::parse(source, std::move(name))),
      tokens_(std::move(tokens)) {}

ChatTemplate ChatTemplate::from_model_folder(const std::string& dir, const std::string& which) {
    const std::string config_path = (fs::path(dir) / "tokenizer_config.json").string();
    const std::string jinja_path = (fs::path(dir) / "chat_template.jinja").string();
    ojson config = ojson::object();
    if (fs::exists(config_path)) config = read_json(config_path);
    QLORA_CHECK(config.is_object(), config_path, ": must hold a JSON object");
    if (fs::exists(jinja_path) && which == "default")
        return ChatTemplate(read_text(jinja_path), jinja_path,
                            special_tokens_of(config, config_path));
    return from_config(config, config_path, dir, which);
}

ChatTemplate ChatTemplate::from_config(const ojson& config, const std::string& where,
                                       const std::string& model, const std::string& which) {
    SpecialTokens tokens = special_tokens_of(config, where);
    QLORA_CHECK(
        config.contains("chat_template") && !config["chat_template"].is_null(), model,
        ": the tokenizer has no chat template (neither chat_template.jinja nor a chat_template in ",
        "tokenizer_config.json)");
    std::string name = where + ":chat_template";
    if (which != "default" || config["chat_template"].is_array()) name += "[" + which + "]";
    return ChatTemplate(pick_template(config["chat_template"], which, where), name, tokens);
}

ChatTemplate ChatTemplate::of_tokenizer(const tokenizer::Tokenizer& tok, const std::string& which) {
    if (!tok.folder().empty()) return from_model_folder(tok.folder(), which);
    // A GGUF's tokenizer: tokenizer.chat_template travels in the rebuilt tokenizer_config.
    return from_config(ojson::parse(tok.config().dump()), tok.path(), tok.path(), which);
}

bool has_chat_template(const tokenizer::Tokenizer& tok) {
    const nlohmann::json& config = tok.config();
    if (config.contains("chat_template") && !config["chat_template"].is_null()) return true;
    return !tok.folder().empty() && fs::exists(fs::path(tok.folder()) / "chat_template.jinja");
}

ChatTemplate ChatTemplate::from_string(const std::string& source, std::string name,
                                       SpecialTokens tokens) {
    return ChatTemplate(source, std::move(name), std::move(tokens));
}

ChatTemplate ChatTemplate::from_file(const std::string& path, SpecialTokens tokens) {
    return ChatTemplate(read_text(path), path, std::move(tokens));
}

std::string ChatTemplate::render(const ojson& messages, bool add_generation_prompt,
                                 const ojson& tools, const ojson& extra) const {
    QLORA_CHECK(tools.is_null() || tools.is_array(), name(),
                ": tools must be a JSON array or null, got ", tools.type_name());
    QLORA_CHECK(extra.is_object(), name(), ": extra template variables must be a JSON object");
    ojson vars = ojson::object();
    for (const auto& [k, v] : tokens_) vars[k] = v;
    for (const auto& [k, v] : extra.items()) vars[k] = v;
    vars["messages"] = normalize_messages(messages, name());
    vars["tools"] = tools;
    vars["documents"] = nullptr;
    vars["add_generation_prompt"] = add_generation_prompt;
    return template_.render(vars);
}

std::string ChatTemplate::render(const nlohmann::json& messages, bool add_generation_prompt,
                                 const nlohmann::json& tools, const nlohmann::json& extra) const {
    return render(ojson::parse(messages.dump()), add_generation_prompt, ojson::parse(tools.dump()),
                  ojson::parse(extra.dump()));
}

}  // namespace qlora::chat
