// Readers: .jsonl/.json/.txt, and malformed records reported with file:line, fatal or skipped.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "data/records.h"
#include "support/test_support.h"

namespace qlora::data {
namespace {

using qlora::test::error_of;
using qlora::test::scratch_dir;

std::string write_text(const std::string& dir, const std::string& name, const std::string& text) {
    const std::string path = dir + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

const char* kAlpacaJsonl =
    "{\"instruction\": \"a\", \"output\": \"b\"}\n"
    "\n"
    "{\"instruction\": \"c\", \"input\": \"d\", \"output\": \"e\", \"text\": \"ignored\"}\n"
    "{\"instruction\": \"f\", \"output\": 3}\n"
    "{not json\n"
    "{\"instruction\": \"g\", \"output\": \"h\"}\n";

TEST(Records, JsonlFatalBadRecordNamesFileAndLine) {
    const std::string path = write_text(scratch_dir("records_fatal"), "a.jsonl", kAlpacaJsonl);
    EXPECT_EQ(error_of([&] { read_records(path, Format::kAlpaca, false); }),
              path +
                  ":4: field 'output' must be a string, found number (set data.on_bad_record: skip "
                  "to drop "
                  "such records)");
}

TEST(Records, JsonlSkipKeepsTheGoodOnes) {
    const std::string path = write_text(scratch_dir("records_skip"), "a.jsonl", kAlpacaJsonl);
    const ReadResult r = read_records(path, Format::kAlpaca, true);
    ASSERT_EQ(r.records.size(), 3u);
    EXPECT_EQ(r.records[1].instruction, "c");
    EXPECT_EQ(r.records[1].input, "d");
    EXPECT_EQ(r.records[1].origin, path + ":3");
    EXPECT_EQ(r.records[2].output, "h");
    ASSERT_EQ(r.skipped.size(), 2u);
    EXPECT_EQ(r.skipped[0], path + ":4: field 'output' must be a string, found number");
    EXPECT_EQ(r.skipped[1].rfind(path + ":5: not valid JSON (", 0), 0u) << r.skipped[1];
}

TEST(Records, JsonArrayReportsRecordIndex) {
    const std::string dir = scratch_dir("records_json");
    const std::string path =
        write_text(dir, "a.json",
                   "[{\"instruction\": \"a\", \"input\": \"\", \"output\": \"b\"},\n"
                   " {\"instruction\": \"c\"}]\n");
    EXPECT_EQ(error_of([&] { read_records(path, Format::kAlpaca, false); }),
              path +
                  ": record 1: missing field 'output' (set data.on_bad_record: skip to drop such "
                  "records)");
    EXPECT_EQ(read_records(path, Format::kAlpaca, true).records.size(), 1u);
    const std::string broken = write_text(dir, "b.json", "[\n{\"a\": 1},\n{\"a\" 2}]\n");
    EXPECT_EQ(error_of([&] {
                  read_records(broken, Format::kText, false);
              }).rfind(broken + ":3: not valid JSON", 0),
              0u);
    const std::string obj = write_text(dir, "c.json", "{\"text\": \"x\"}");
    EXPECT_EQ(error_of([&] { read_records(obj, Format::kText, false); }),
              obj + ": expected a JSON array of records (or use .jsonl), found object");
}

TEST(Records, ChatValidation) {
    const std::string path =
        write_text(scratch_dir("records_chat"), "c.jsonl",
                   "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": "
                   "\"user\", \"content\": \"u\"}, "
                   "{\"role\": \"assistant\", \"content\": \"a\"}]}\n"
                   "{\"messages\": [{\"role\": \"user\", \"content\": \"u\"}]}\n"
                   "{\"messages\": [{\"role\": \"bot\", \"content\": \"u\"}]}\n");
    const ReadResult r = read_records(path, Format::kChat, true);
    ASSERT_EQ(r.records.size(), 1u);
    EXPECT_EQ(r.records[0].messages.size(), 3u);
    EXPECT_EQ(r.skipped,
              (std::vector<std::string>{
                  path + ":2: no assistant message: nothing to learn from",
                  path + ":3: messages[0]: role must be system, user or assistant, found 'bot'"}));
}

TEST(Records, TxtSplitsOnEndOfTextOrBlankLines) {
    const std::string dir = scratch_dir("records_txt");
    const std::string eot =
        write_text(dir, "a.txt", "One.\n\nStill one.\n<|endoftext|>\nTwo.<|endoftext|>Three.\n");
    const ReadResult a = read_records(eot, Format::kText, false);
    ASSERT_EQ(a.records.size(), 3u);
    EXPECT_EQ(a.records[0].text, "One.\n\nStill one.");
    EXPECT_EQ(a.records[1].text, "Two.");
    EXPECT_EQ(a.records[2].text, "Three.");
    const std::string blank = write_text(dir, "b.txt", "\nFirst doc\nline 2\n\n  \n\nSecond doc\n");
    const ReadResult b = read_records(blank, Format::kText, false);
    ASSERT_EQ(b.records.size(), 2u);
    EXPECT_EQ(b.records[0].text, "First doc\nline 2");
    EXPECT_EQ(b.records[0].origin, blank + ":2");
    EXPECT_EQ(b.records[1].text, "Second doc");
    EXPECT_EQ(b.records[1].origin, blank + ":7");
    EXPECT_EQ(
        error_of([&] { read_records(blank, Format::kAlpaca, false); }),
        blank + ": plain .txt files hold only `text` records; use .jsonl or .json for alpaca/chat");
}

TEST(Records, SharedAlpacaFilesRead) {
    const ReadResult r = read_records(qlora::test::shared_data("instruct/alpaca_tiny_100.json"),
                                      Format::kAlpaca, false);
    EXPECT_EQ(r.records.size(), 100u);
    EXPECT_EQ(r.records[0].instruction, "Give three tips for staying healthy.");
    const ReadResult ours = read_records(
        std::string(QLORA_SOURCE_DIR) + "/datasets/sample_alpaca.jsonl", Format::kAlpaca, false);
    EXPECT_EQ(ours.records.size(), 32u);
}

}  // namespace
}  // namespace qlora::data
