// qlora-tokenize --model DIR [--no-special-tokens] (--text T | --file F | --jsonl F)
// qlora-tokenize --model DIR --decode [--skip-special-tokens] (--text '[ids]' | --file F)
// qlora-tokenize --model DIR --chat F.jsonl [--template FILE.jinja] [--add-generation-prompt]
// Shows what the model sees: one JSON array of ids per document (--jsonl: per line's "text"),
// or with --decode one JSON string per JSON array of ids (one array per line of --file).
// --no-special-tokens is transformers' add_special_tokens=False; --bench (with --jsonl) prints
// encode throughput instead. --chat prints one JSON string per {"messages": [...]} line (optional
// "tools"): the conversation rendered by the model's chat template (or FILE.jinja, with the
// model's special tokens) as transformers' apply_chat_template(tokenize=False) renders it. Bad
// input, a template error included (it names the template, line and column), exits 2.
#include <CLI/CLI.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "chat/chat_template.h"
#include "cli/cli_checks.h"
#include "cli/run_tool.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace {

using nlohmann::json;
using qlora::tokenizer::Tokenizer;

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    QLORA_CHECK(in.good(), path, ": cannot open");
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void print_ids(const std::vector<int64_t>& ids) { std::cout << json(ids).dump() << '\n'; }

// The "text" of every line; every line is checked before anything is printed, so bad input
// leaves only the error.
std::vector<std::string> read_jsonl_texts(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    QLORA_CHECK(in.good(), path, ": cannot open");
    std::vector<std::string> texts;
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        json record;
        try {
            record = json::parse(line);
        } catch (const json::parse_error& e) {
            QLORA_FAIL(path, ":", n, ": not valid JSON (", e.what(), ")");
        }
        QLORA_CHECK(record.is_object() && record.contains("text") && record["text"].is_string(),
                    path, ":", n, ": expected an object with a string \"text\"");
        texts.push_back(record["text"].get<std::string>());
    }
    return texts;
}

void encode_jsonl(const Tokenizer& tok, const std::string& path, bool special) {
    const std::vector<std::string> texts = read_jsonl_texts(path);
    std::string out;
    for (size_t i = 0; i < texts.size(); ++i) {
        try {
            out += json(tok.encode_with_offsets(texts[i], special).ids).dump() + "\n";
        } catch (const qlora::Error& e) {
            QLORA_FAIL(path, ": record ", i + 1, ": ", e.what());
        }
    }
    std::cout << out;
}

std::vector<int64_t> parse_ids(const std::string& text, const std::string& where) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        QLORA_FAIL(where, ": expected a JSON array of token ids (", e.what(), ")");
    }
    QLORA_CHECK(j.is_array(), where, ": expected a JSON array of token ids, found ",
                j.dump().substr(0, 60));
    std::vector<int64_t> ids;
    for (const json& id : j) {
        QLORA_CHECK(id.is_number_integer(), where, ": token ids must be integers, found ",
                    id.dump().substr(0, 60));
        ids.push_back(id.get<int64_t>());
    }
    return ids;
}

// --bench: encode throughput on this thread, load and JSON parsing excluded.
void bench_jsonl(const Tokenizer& tok, const std::string& path, bool special) {
    const std::vector<std::string> texts = read_jsonl_texts(path);
    size_t bytes = 0, tokens = 0;
    // CPU time of this process (one thread) as well as wall time: on a busy machine the former
    // is what one core does.
    const std::clock_t cpu_start = std::clock();
    const auto start = std::chrono::steady_clock::now();
    for (const std::string& t : texts) {
        tokens += tok.encode_with_offsets(t, special).ids.size();
        bytes += t.size();
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu_seconds = static_cast<double>(std::clock() - cpu_start) / CLOCKS_PER_SEC;
    std::cout << json{{"documents", texts.size()},
                      {"bytes", bytes},
                      {"tokens", tokens},
                      {"seconds", seconds},
                      {"cpu_seconds", cpu_seconds},
                      {"tokens_per_s", static_cast<double>(tokens) / seconds},
                      {"tokens_per_cpu_s", static_cast<double>(tokens) / cpu_seconds},
                      {"mb_per_cpu_s", static_cast<double>(bytes) / 1e6 / cpu_seconds}}
                     .dump()
              << '\n';
}

void print_text(const Tokenizer& tok, const std::vector<int64_t>& ids, bool skip_special) {
    std::cout << json(tok.decode(ids, skip_special)).dump(-1, ' ', false) << '\n';
}

void decode_ids(const Tokenizer& tok, const std::string* text, const std::string& file,
                bool skip_special) {
    if (text != nullptr) {
        print_text(tok, parse_ids(*text, "--text"), skip_special);
        return;
    }
    std::ifstream in(file, std::ios::binary);
    std::vector<std::vector<int64_t>> arrays;
    std::string line;
    for (size_t n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        arrays.push_back(parse_ids(line, file + ":" + std::to_string(n)));
    }
    std::string out;
    for (const auto& ids : arrays) {
        out += json(tok.decode(ids, skip_special)).dump(-1, ' ', false) + "\n";
    }
    std::cout << out;
}

// The model's own template, or a .jinja file given the model's special tokens.
qlora::chat::ChatTemplate chat_template_for(const Tokenizer& tok,
                                            const std::string& template_file) {
    if (template_file.empty()) return qlora::chat::ChatTemplate::of_tokenizer(tok);
    const auto config = nlohmann::ordered_json::parse(tok.config().dump());
    return qlora::chat::ChatTemplate::from_file(template_file,
                                                qlora::chat::special_tokens_of(config, tok.path()));
}

// --chat: every line is rendered before anything is printed, so bad input leaves only the error.
void render_chats(const qlora::chat::ChatTemplate& tmpl, const std::string& path,
                  bool add_generation_prompt) {
    std::ifstream in(path, std::ios::binary);
    QLORA_CHECK(in.good(), path, ": cannot open");
    std::string out, line;
    for (size_t n = 1; std::getline(in, line); ++n) {
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        const std::string where = path + ":" + std::to_string(n);
        nlohmann::ordered_json record;
        try {
            record = nlohmann::ordered_json::parse(line);
        } catch (const json::parse_error& e) {
            QLORA_FAIL(where, ": not valid JSON (", e.what(), ")");
        }
        QLORA_CHECK(
            record.is_object() && record.contains("messages") && record["messages"].is_array(),
            where, ": expected an object with a \"messages\" array");
        const nlohmann::ordered_json tools = record.value("tools", nlohmann::ordered_json());
        try {
            out += json(tmpl.render(record["messages"], add_generation_prompt, tools))
                       .dump(-1, ' ', false) +
                   "\n";
        } catch (const qlora::Error& e) {
            QLORA_FAIL(where, ": ", e.what());
        }
    }
    std::cout << out;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace qlora;
    CLI::App app{"qlora-tokenize: the token ids a model's tokenizer gives a text, and back"};
    app.set_version_flag("--version", QLORA_VERSION);
    std::string model_dir, text, file, jsonl;
    bool no_special = false, decode = false, skip_special = false, bench = false;
    app.add_option("--model", model_dir,
                   "model folder, or one holding only tokenizer files (tokenizer.json or "
                   "tokenizer.model, tokenizer_config.json), or a .gguf file")
        ->required()
        ->check(cli::ModelPath());
    auto* text_opt = app.add_option("--text", text, "one document (with --decode: a JSON array)");
    auto* file_opt = app.add_option("--file", file,
                                    "a file holding one document (with --decode: one JSON array "
                                    "per line)")
                         ->check(CLI::ExistingFile);
    auto* jsonl_opt = app.add_option("--jsonl", jsonl, "one document per line's \"text\"")
                          ->check(CLI::ExistingFile);
    text_opt->excludes(file_opt)->excludes(jsonl_opt);
    file_opt->excludes(jsonl_opt);
    app.add_flag("--no-special-tokens", no_special,
                 "do not add the tokenizer's special tokens (add_special_tokens=False)");
    app.add_flag("--decode", decode, "decode JSON arrays of ids to text")->excludes(jsonl_opt);
    app.add_flag("--skip-special-tokens", skip_special, "with --decode: drop special tokens");
    app.add_flag("--bench", bench,
                 "with --jsonl: print encode throughput (one thread) as JSON instead of ids")
        ->needs(jsonl_opt);
    std::string chat, template_file;
    bool generation_prompt = false;
    auto* chat_opt = app.add_option("--chat", chat,
                                    "render each line's {\"messages\": [...]} through the chat "
                                    "template; one JSON string per line")
                         ->check(CLI::ExistingFile)
                         ->excludes(text_opt)
                         ->excludes(file_opt)
                         ->excludes(jsonl_opt);
    app.add_option("--template", template_file,
                   "with --chat: a .jinja file instead of the model's own template")
        ->check(CLI::ExistingFile)
        ->needs(chat_opt);
    app.add_flag("--add-generation-prompt", generation_prompt,
                 "with --chat: end with the assistant turn's opening (add_generation_prompt)")
        ->needs(chat_opt);
    return cli::run_tool("qlora-tokenize", app, argc, argv, [&] {
        if (chat_opt->count()) {
            QLORA_CHECK(!decode && !bench, "--chat renders text: it takes no --decode or --bench");
            render_chats(chat_template_for(Tokenizer(model_dir), template_file), chat,
                         generation_prompt);
            return;
        }
        QLORA_CHECK(text_opt->count() + file_opt->count() + jsonl_opt->count() == 1,
                    "give one of --text, --file, --jsonl or --chat");
        const Tokenizer tok(model_dir);
        if (decode) {
            decode_ids(tok, text_opt->count() ? &text : nullptr, file, skip_special);
            return;
        }
        if (bench) {
            bench_jsonl(tok, jsonl, !no_special);
        } else if (jsonl_opt->count()) {
            encode_jsonl(tok, jsonl, !no_special);
        } else {
            print_ids(
                tok.encode_with_offsets(text_opt->count() ? text : read_file(file), !no_special)
                    .ids);
        }
    });
}
