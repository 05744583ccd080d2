// One eval protocol for qlora-train and qlora-eval: the samples of a file rendered, tokenized,
// masked and batched exactly as the trainer's eval loader does, and the token-mean loss over them
// (train/loss.h). qlora-eval --run replays a run's own eval (its config, eval split, final adapter,
// quantization and QAT state) and prints the loss of the run's last eval line.
#pragma once

#include <cstdint>
#include <string>

#include "data/dataset.h"
#include "data/loader.h"
#include "model/llama.h"
#include "train/eval_loop.h"

namespace qlora::tokenizer {
class Tokenizer;
}

namespace qlora::train {

struct SampleEvalOptions {
    data::DatasetOptions dataset;  // format, template, max_seq_len, train_on_inputs
    data::LoaderOptions loader;    // micro_batch, packing; shuffle and group_by_length are ignored
    int64_t max_batches = 0;       // 0: every batch
};

// The token-mean loss of `model` over the samples of `file`.
EvalLoss evaluate_samples(model::LlamaImpl& model, const tokenizer::Tokenizer& tok,
                          const std::string& file, SampleEvalOptions options,
                          const c10::Device& device);

struct RunEval {
    EvalLoss loss;
    std::string adapter_dir;  // the adapter that was scored
    int64_t samples = 0;      // eval samples
};

// The run in `run_dir` (its config.resolved.yaml and adapter/): the eval split the trainer used,
// the base quantized as it trained, the final adapter attached, fake quantization on when the run
// ended with it on. `device` "" = the run's hardware.device.
RunEval evaluate_run(const std::string& run_dir, const std::string& device = "");

}  // namespace qlora::train
