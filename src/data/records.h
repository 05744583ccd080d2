// Dataset records and their readers: `text`, `alpaca` and `chat` records from .jsonl (one a line),
// .json (one array, as the original Alpaca release) and, for text, plain .txt files.
#pragma once

#include <string>
#include <vector>

namespace qlora::data {

enum class Format { kText, kAlpaca, kChat };
// "text" | "alpaca" | "chat"; throws qlora::Error otherwise.
Format parse_format(const std::string& name);
std::string format_name(Format format);

// What a malformed record does (the config's data.on_bad_record).
enum class OnBadRecord { kFatal, kSkip };
// "fatal" | "skip"; throws qlora::Error otherwise.
OnBadRecord parse_on_bad_record(const std::string& name);
std::string on_bad_record_name(OnBadRecord value);

struct Message {
    std::string role;  // system | user | assistant
    std::string content;
};

struct Record {
    std::string text;                        // text
    std::string instruction, input, output;  // alpaca (input may be empty)
    std::vector<Message> messages;  // chat: optional system first, then user/assistant turns
    std::string origin;             // "data/x.jsonl:12", for messages about this record
};

struct ReadResult {
    std::vector<Record> records;
    std::vector<std::string> skipped;  // one "FILE:LINE: why" per bad record skipped
};

// Reads every record of `path` in file order. A malformed record throws qlora::Error
// "FILE:LINE: why" (for .json arrays: "FILE: record K: why", K from 0), unless `skip_bad`, which
// records the message in `skipped` and goes on. Unknown extra fields of a record are ignored.
//
// Plain .txt (format text only): when the file contains the marker <|endoftext|> (TinyStories'
// separator), documents are the text between markers; otherwise documents are separated by one
// or more blank lines. Leading/trailing whitespace of each document is trimmed; empty ones dropped.
ReadResult read_records(const std::string& path, Format format, bool skip_bad);

}  // namespace qlora::data
