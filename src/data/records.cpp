// Readers for .jsonl/.json/.txt records, validating each record against its format.
#include "data/records.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "core/error_text.h"
#include "core/limits.h"
#include "data/text_check.h"

namespace qlora::data {
namespace {

using nlohmann::json;

void must_be_text(const std::string& path, Format format) {
    QLORA_CHECK(format == Format::kText, path,
                ": plain .txt files hold only `text` records; use .jsonl or .json for alpaca/chat");
}

std::optional<std::string> string_field(const json& j, const char* key, bool required,
                                        std::string& out) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
        if (required) return std::string("missing field '") + key + "'";
        out.clear();
        return std::nullopt;
    }
    if (!it->is_string())
        return std::string("field '") + key + "' must be a string, found " + it->type_name();
    out = it->get<std::string>();
    return std::nullopt;
}

std::optional<std::string> parse_messages(const json& j, Record& r) {
    auto it = j.find("messages");
    if (it == j.end() || !it->is_array()) return std::string("expected a 'messages' array");
    bool has_assistant = false;
    for (size_t i = 0; i < it->size(); ++i) {
        const json& m = (*it)[i];
        const std::string at = "messages[" + std::to_string(i) + "]: ";
        if (!m.is_object()) return at + "expected an object {role, content}";
        Message msg;
        if (auto p = string_field(m, "role", true, msg.role)) return at + *p;
        if (auto p = string_field(m, "content", true, msg.content)) return at + *p;
        if (msg.role != "system" && msg.role != "user" && msg.role != "assistant") {
            return at + "role must be system, user or assistant, found '" + msg.role + "'";
        }
        if (msg.role == "system" && i != 0) return at + "a system message may only come first";
        has_assistant = has_assistant || msg.role == "assistant";
        r.messages.push_back(std::move(msg));
    }
    if (!has_assistant) return std::string("no assistant message: nothing to learn from");
    return std::nullopt;
}

// The problem with `j` as a record of `format`, or nullopt with `r` filled.
std::optional<std::string> parse_record(const json& j, Format format, Record& r) {
    if (!j.is_object()) return std::string("expected a JSON object, found ") + j.type_name();
    switch (format) {
        case Format::kText:
            if (auto p = string_field(j, "text", true, r.text)) return p;
            if (r.text.empty()) return std::string("field 'text' is empty");
            return std::nullopt;
        case Format::kAlpaca:
            if (auto p = string_field(j, "instruction", true, r.instruction)) return p;
            if (auto p = string_field(j, "input", false, r.input)) return p;
            if (auto p = string_field(j, "output", true, r.output)) return p;
            if (r.instruction.empty()) return std::string("field 'instruction' is empty");
            return std::nullopt;
        case Format::kChat:
            return parse_messages(j, r);
    }
    return std::string("unknown format");
}

void report(const std::string& message, bool skip_bad, ReadResult& result) {
    QLORA_CHECK(skip_bad, message, " (set data.on_bad_record: skip to drop such records)");
    result.skipped.push_back(
        cut_middle(message, limits::kMaxErrorChars));  // not a 51 MB line per skip
}

int64_t line_at(const std::string& text, size_t byte);

// A whole file read as text: binary, UTF-16 or invalid UTF-8 content is refused naming its line.
void check_text_file(const std::string& path, const std::string& text) {
    if (auto problem = binary_problem(text, /*at_file_start=*/true)) {
        const size_t nul = text.find('\0');
        QLORA_FAIL(path, ":", line_at(text, nul == std::string::npos ? 0 : nul),
                   ": not UTF-8 text: ", problem->substr(0, problem->find(" at byte")),
                   " (a binary or UTF-16 file?)");
    }
    if (auto at = invalid_utf8_at(text)) {
        const size_t newline = *at == 0 ? std::string::npos : text.rfind('\n', *at - 1);
        const size_t column = newline == std::string::npos ? *at : *at - newline - 1;
        QLORA_FAIL(path, ":", line_at(text, *at), ": not UTF-8 text: invalid UTF-8 byte ",
                   static_cast<int>(static_cast<unsigned char>(text[*at])), " at byte ", column,
                   " of the line");
    }
}

std::string read_all(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    QLORA_CHECK(in.good(), "data file not found or unreadable: ", path);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

void read_jsonl(const std::string& path, Format format, bool skip_bad, ReadResult& result) {
    std::ifstream in(path, std::ios::binary);
    QLORA_CHECK(in.good(), "data file not found or unreadable: ", path);
    std::string line;
    for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (std::all_of(line.begin(), line.end(), [](unsigned char c) { return std::isspace(c); }))
            continue;
        const std::string origin = path + ":" + std::to_string(line_no);
        if (auto problem = binary_problem(line, line_no == 1))
            QLORA_FAIL(origin, ": not UTF-8 text: ", *problem);
        if (auto at = invalid_utf8_at(line)) {
            report(origin + ": not UTF-8 text: invalid UTF-8 at byte " + std::to_string(*at),
                   skip_bad, result);
            continue;
        }
        json j;
        try {
            j = json::parse(line);
        } catch (const json::exception& e) {  // parse errors and number overflow
            report(origin + ": not valid JSON (" + e.what() + ")", skip_bad, result);
            continue;
        }
        Record r;
        r.origin = origin;
        if (auto p = parse_record(j, format, r)) {
            report(origin + ": " + *p, skip_bad, result);
            continue;
        }
        result.records.push_back(std::move(r));
    }
}

int64_t line_at(const std::string& text, size_t byte) {
    byte = std::min(byte, text.size());
    return 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(byte), '\n');
}

// nlohmann::json keeps no positions for parsed values, so a bad element of an array is named by
// its index (0-based, as jq and Python would index it); syntax errors still get their line.
void read_json_array(const std::string& path, Format format, bool skip_bad, ReadResult& result) {
    const std::string text = read_all(path);
    check_text_file(path, text);
    json j;
    try {
        j = json::parse(text);
    } catch (const json::parse_error& e) {
        QLORA_FAIL(path, ":", line_at(text, e.byte), ": not valid JSON (", e.what(), ")");
    } catch (const json::exception& e) {  // number overflow (1e999999): no byte offset
        QLORA_FAIL(path, ": not valid JSON (", e.what(), ")");
    }
    QLORA_CHECK(j.is_array(), path, ": expected a JSON array of records (or use .jsonl), found ",
                j.type_name());
    for (size_t i = 0; i < j.size(); ++i) {
        const std::string origin = path + ": record " + std::to_string(i);
        Record r;
        r.origin = origin;
        if (auto p = parse_record(j[i], format, r)) {
            report(origin + ": " + *p, skip_bad, result);
            continue;
        }
        result.records.push_back(std::move(r));
    }
}

std::string trim(const std::string& s) {
    const auto first = s.find_first_not_of(" \t\r\n");
    if (first == std::string::npos) return {};
    const auto last = s.find_last_not_of(" \t\r\n");
    return s.substr(first, last - first + 1);
}

void read_txt(const std::string& path, ReadResult& result) {
    const std::string text = read_all(path);
    check_text_file(path, text);
    const std::string marker = "<|endoftext|>";
    std::vector<std::pair<size_t, size_t>> spans;  // [begin, end) of each document
    if (text.find(marker) != std::string::npos) {
        size_t begin = 0;
        for (size_t at; (at = text.find(marker, begin)) != std::string::npos;
             begin = at + marker.size()) {
            spans.emplace_back(begin, at);
        }
        spans.emplace_back(begin, text.size());
    } else {
        // Blank line = a line holding only whitespace; split at every run of them.
        std::istringstream in(text);
        std::string line;
        size_t pos = 0, begin = 0;
        bool in_doc = false;
        while (std::getline(in, line)) {
            const bool blank = trim(line).empty();
            if (!blank && !in_doc) begin = pos, in_doc = true;
            if (blank && in_doc) spans.emplace_back(begin, pos), in_doc = false;
            pos += line.size() + 1;
        }
        if (in_doc) spans.emplace_back(begin, text.size());
    }
    for (const auto& [b, e] : spans) {
        Record r;
        r.text = trim(text.substr(b, e - b));
        if (r.text.empty()) continue;
        r.origin = path + ":" + std::to_string(line_at(text, b));
        result.records.push_back(std::move(r));
    }
}

}  // namespace

Format parse_format(std::string_view name) { return kFormatNames.parse(name); }

std::string format_name(Format value) { return kFormatNames.name(value); }

OnBadRecord parse_on_bad_record(std::string_view name) { return kOnBadRecordNames.parse(name); }

std::string on_bad_record_name(OnBadRecord value) { return kOnBadRecordNames.name(value); }

ReadResult read_records(const std::string& path, Format format, bool skip_bad) {
    QLORA_CHECK(std::filesystem::is_regular_file(path), "data file not found: ", path);
    const std::string ext = std::filesystem::path(path).extension().string();
    ReadResult result;
    if (ext == ".jsonl") {
        read_jsonl(path, format, skip_bad, result);
    } else if (ext == ".json") {
        read_json_array(path, format, skip_bad, result);
    } else if (ext == ".txt") {
        must_be_text(path, format);
        read_txt(path, result);
    } else {
        QLORA_FAIL(path, ": unknown data file type '", ext, "'; expected .jsonl, .json or .txt");
    }
    QLORA_CHECK(!result.records.empty(), path, ": no usable records",
                result.skipped.empty() ? "" : " (every record was malformed and skipped)");
    return result;
}

}  // namespace qlora::data
