// The trainer's eval: the token-mean loss over the eval loader's batches (the protocol of
// train/loss.h, which qlora-eval shares) and greedy sample generations from the configured prompts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/loader.h"
#include "data/templates.h"
#include "dist/replicas.h"
#include "model/llama.h"

namespace qlora::tokenizer {
class Tokenizer;
}

namespace qlora::train {

struct EvalLoss {
    double loss = 0;     // sum of token losses / tokens (0 without tokens)
    int64_t tokens = 0;  // shifted label tokens scored
};

// Batches 0..limit-1 of epoch 0 (max_batches 0: all), no gradients; the model is left in eval mode.
// With replicas, the batches are dealt round-robin over the ranks and the sums reduced.
EvalLoss evaluate_loader(model::LlamaImpl& model, data::DataLoader& loader, int64_t max_batches,
                         const c10::Device& device, dist::Replicas* replicas = nullptr);

struct PromptSample {
    std::string prompt;
    std::string text;  // the generated continuation
};

// Greedy continuations of each prompt rendered in the training template, up to max_new_tokens,
// stopping at the tokenizer's EOS.
std::vector<PromptSample> sample_prompts(model::Llama& model, const tokenizer::Tokenizer& tok,
                                         const std::vector<std::string>& prompts,
                                         data::Template tmpl, int64_t max_new_tokens);

}  // namespace qlora::train
