// Document files for the stream protocol: reading documents and tokenizing them into one stream.
#include "data/documents.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace qlora::data {
namespace {

std::string strip(const std::string& s) {
    const char* ws = " \t\r\n";
    size_t b = s.find_first_not_of(ws);
    if (b == std::string::npos) return {};
    return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

std::string document_of(const nlohmann::json& j, const std::string& where) {
    QLORA_CHECK(j.is_object(), where, ": expected a JSON object, found ", j.type_name());
    auto str = [&](const char* key) {
        return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
    };
    if (j.contains("text")) {
        QLORA_CHECK(j["text"].is_string(), where, ": 'text' expected a string, found ",
                    j["text"].dump());
        return str("text");
    }
    if (j.contains("prompt") || j.contains("completion")) return str("prompt") + str("completion");
    if (j.contains("instruction") || j.contains("output")) {
        std::string doc = str("instruction");
        for (const char* key : {"input", "output"}) {
            if (!str(key).empty()) doc += (doc.empty() ? "" : "\n\n") + str(key);
        }
        return doc;
    }
    QLORA_FAIL(where,
               ": expected a 'text' field (or prompt/completion, or instruction/input/output)");
}

}  // namespace

std::vector<std::string> read_documents(const std::string& path, const std::string& format) {
    std::ifstream in(path);
    QLORA_CHECK(in.good(), "cannot read data file ", path);
    std::vector<std::string> docs;
    std::string line;
    if (format == "text") {
        std::string current;
        while (std::getline(in, line)) {
            if (strip(line) == "<|endoftext|>") {
                docs.push_back(strip(current));
                current.clear();
            } else {
                current += line + "\n";
            }
        }
        docs.push_back(strip(current));
    } else if (format == "jsonl") {
        int64_t number = 0;
        while (std::getline(in, line)) {
            ++number;
            if (strip(line).empty()) continue;
            const std::string where = path + ":" + std::to_string(number);
            nlohmann::json j;
            try {
                j = nlohmann::json::parse(line);
            } catch (const nlohmann::json::parse_error& e) {
                QLORA_FAIL(where, ": not valid JSON (", e.what(), ")");
            }
            docs.push_back(strip(document_of(j, where)));
        }
    } else {
        QLORA_FAIL("data format must be text or jsonl, got '", format, "'");
    }
    std::erase_if(docs, [](const std::string& d) { return d.empty(); });
    QLORA_CHECK(!docs.empty(), path, ": no documents found");
    return docs;
}

std::vector<int64_t> tokenize_documents(const tokenizer::Tokenizer& tokenizer,
                                        const std::vector<std::string>& documents) {
    std::vector<int64_t> stream;
    for (const auto& doc : documents) {
        std::vector<int64_t> ids = tokenizer.encode(doc, /*add_bos=*/true);
        stream.insert(stream.end(), ids.begin(), ids.end());
    }
    return stream;
}

}  // namespace qlora::data
