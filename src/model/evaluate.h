// Loss and perplexity of a model over documents. Protocol (PROVENANCE.md, the cs336 sample): every
// document is BOS + ids; the documents are concatenated and scored in windows of max_seq_len inputs,
// each predicting the next token; targets equal to BOS are excluded (they are not predictable).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama.h"
#include "tokenizer/tokenizer.h"

namespace qlora::model {

struct EvalResult {
    double loss = 0.0;        // mean cross-entropy in nats per scored target
    double perplexity = 0.0;  // exp(loss)
    int64_t tokens = 0;       // scored targets
};

// stream: the concatenated token ids; targets equal to skip_target (e.g. BOS; -1: none) not scored.
EvalResult evaluate_stream(Llama& model, const std::vector<int64_t>& stream, int64_t max_seq_len,
                           int64_t skip_target);

// "text": documents separated by lines that read <|endoftext|> (the whole file when there are
// none); "jsonl": one object per line, its "text" field (or prompt+completion, or
// instruction/input/output joined by blank lines). Documents are stripped; empty ones dropped.
std::vector<std::string> read_documents(const std::string& path, const std::string& format);

// BOS + ids of every document, concatenated.
std::vector<int64_t> tokenize_documents(const tokenizer::Tokenizer& tokenizer,
                                        const std::vector<std::string>& documents);

}  // namespace qlora::model
