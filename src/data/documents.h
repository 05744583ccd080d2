// Document files for the stream protocol (qlora-eval --stream, qlora-export --eval-data).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qlora::tokenizer {
class Tokenizer;
}

namespace qlora::data {

// "text": documents separated by lines that read <|endoftext|> (the whole file when there are
// none); "jsonl": one object per line, its "text" field (or prompt+completion, or
// instruction/input/output joined by blank lines). Documents are stripped; empty ones dropped.
std::vector<std::string> read_documents(const std::string& path, const std::string& format);

// BOS + ids of every document, concatenated.
std::vector<int64_t> tokenize_documents(const tokenizer::Tokenizer& tokenizer,
                                        const std::vector<std::string>& documents);

}  // namespace qlora::data
