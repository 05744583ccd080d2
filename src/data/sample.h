// A tokenized training sample: tokens and labels of equal length, labels -100 where no loss is
// taken. Labels are aligned with tokens (the Hugging Face convention); the loss shifts them by one.
#pragma once

#include <cstdint>
#include <vector>

#include "data/templates.h"

namespace qlora::tokenizer {
class Tokenizer;
}

namespace qlora::data {

constexpr int64_t kIgnoreIndex = -100;

struct Sample {
    std::vector<int64_t> tokens;
    std::vector<int64_t> labels;
    int64_t num_label_tokens() const;
};

struct TokenizeOptions {
    bool train_on_inputs = false;  // true: prompt tokens get labels too (BOS never does)
    int64_t max_seq_len = 512;     // longer samples are cut at the end (their EOS may be lost)
};

// BOS, then each segment encoded on its own (no BOS/EOS of its own), a BOS before segments that ask
// for one and EOS after every completion; then truncation to max_seq_len.
Sample tokenize_segments(const std::vector<Segment>& segments, const tokenizer::Tokenizer& tok,
                         const TokenizeOptions& options);

}  // namespace qlora::data
