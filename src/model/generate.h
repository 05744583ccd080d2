// Autoregressive generation with a KV cache: one prefill of the prompt, then one token per step,
// stopping at a stop id (EOS) or after max_new_tokens. TextStreamer turns ids into printable text.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "model/llama.h"
#include "model/sampler.h"
#include "tokenizer/tokenizer.h"

namespace qlora::model {

struct GenerateOptions {
    int64_t max_new_tokens = 256;
    SamplingOptions sampling;
    std::vector<int64_t> stop_ids;  // usually the EOS ids of config.json / the tokenizer
};

struct GenerateResult {
    std::vector<int64_t> tokens;  // prompt followed by the generated ids
    int64_t prompt_tokens = 0;
    int64_t new_tokens = 0;
    bool stopped_at_eos = false;
    double prefill_seconds = 0.0;
    double decode_seconds = 0.0;  // steps after the first new token
    // Decode speed: tokens generated after the first, per second of decoding.
    double decode_tokens_per_second() const;
};

// on_token(id) is called for every generated id as soon as it is chosen (the stop id included).
GenerateResult generate(Llama& model, const std::vector<int64_t>& prompt,
                        const GenerateOptions& options,
                        const std::function<void(int64_t)>& on_token = {});

// Incremental detokenisation: decodes the whole sequence each time and hands out what is new, so
// SentencePiece's leading-space rule and multi-byte characters split over byte tokens come out
// right.
class TextStreamer {
  public:
    explicit TextStreamer(const tokenizer::Tokenizer& tokenizer) : tokenizer_(tokenizer) {}
    // Appends ids; returns the text that became final (empty while a character is incomplete).
    std::string push(const std::vector<int64_t>& ids);
    // Whatever is left (an incomplete character shows as U+FFFD).
    std::string finish();

  private:
    const tokenizer::Tokenizer& tokenizer_;
    std::vector<int64_t> ids_;
    size_t emitted_ = 0;  // bytes of the decoded text already handed out
};

}  // namespace qlora::model
