// Loss and perplexity of a model over a document stream (the stream protocol; the training
// protocol is train/eval_protocol.h). Every document is BOS + ids (data/documents.h); the documents
// are concatenated and scored in windows of max_seq_len inputs, each predicting the next token;
// targets equal to BOS are excluded (they are not predictable).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/llama.h"

namespace qlora::model {

struct EvalResult {
    double loss = 0.0;        // mean cross-entropy in nats per scored target
    double perplexity = 0.0;  // exp(loss)
    int64_t tokens = 0;       // scored targets
};

// stream: the concatenated token ids; targets equal to skip_target (e.g. BOS; -1: none) not scored.
EvalResult evaluate_stream(Llama& model, const std::vector<int64_t>& stream, int64_t max_seq_len,
                           int64_t skip_target);

}  // namespace qlora::model
