// Dataset records and their readers: `text`, `alpaca` and `chat` records from .jsonl (one a line),
// .json (one array, as the original Alpaca release) and, for text, plain .txt files.
#pragma once

#include <string>
#include <vector>

#include "core/enum_names.h"

namespace qlora::data {

enum class Format { kText, kAlpaca, kChat };
// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kFormatNames = enum_names<Format>(
    "data.format", {{Format::kText, "text"}, {Format::kAlpaca, "alpaca"}, {Format::kChat, "chat"}});
Format parse_format(std::string_view name);
std::string format_name(Format value);

// What a malformed record does (the config's data.on_bad_record).
enum class OnBadRecord { kFatal, kSkip };
// Its names, the one list (core/enum_names.h); parse throws qlora::Error naming them all.
inline constexpr auto kOnBadRecordNames = enum_names<OnBadRecord>(
    "data.on_bad_record", {{OnBadRecord::kFatal, "fatal"}, {OnBadRecord::kSkip, "skip"}});
OnBadRecord parse_on_bad_record(std::string_view name);
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
