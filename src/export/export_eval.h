// qlora-export --eval-data: what merging and requantizing cost, as eval loss on the same
// documents (model/evaluate.h protocol) for the base, the base with the adapter as trained
// (unmerged), the merged 16-bit model and the merged model requantized to 4 bits.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "export/merge.h"
#include "model/evaluate.h"
#include "model/llama.h"

namespace qlora::exporting {

struct ExportEvalOptions {
    std::string data;         // .txt (documents split on <|endoftext|>) or .jsonl
    std::string format;       // text | jsonl; empty: from the extension
    int64_t max_seq_len = 0;  // 0: max_position_embeddings
    c10::ScalarType merged_dtype = at::kBFloat16;  // what "merged 16-bit" is rounded to
    c10::Device device = c10::kCPU;                // computes in fp32 on CPU, bf16 on CUDA
};

struct ExportEvalRow {
    std::string label;
    model::EvalResult result;
};

struct ExportEval {
    std::vector<ExportEvalRow> rows;  // base, base + adapter, merged 16-bit, merged 4-bit
    // (loss(base) - loss(merged 4-bit)) / (loss(base) - loss(base + adapter)); NaN when the
    // adapter did not change the loss.
    double retained = 0.0;
};

// Builds each model in turn (one in memory at a time) and scores it.
ExportEval evaluate_export(const MergedView& merged, const ExportEvalOptions& options);

// The merged checkpoint as a model: every tensor from merged.tensor(), rounded to `dtype16`;
// with quantize, the decoder linears requantized with merged.quant() (what hf-nf4 writes).
model::Llama build_merged_model(const MergedView& merged, c10::ScalarType dtype16, bool quantize,
                                const c10::Device& device, c10::ScalarType compute_dtype);

// A fixed-width table, one row per model, then the retained fraction.
std::string format_export_eval(const ExportEval& eval);

}  // namespace qlora::exporting
