// Batch: what one micro-batch feeds the model, and the two ways to build one from samples:
// padded (one sample a row) or packed (several samples a row, attention kept within each).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

#include "data/sample.h"

namespace qlora::data {

struct Batch {
    at::Tensor tokens;  // int64 [B, T]
    at::Tensor labels;  // int64 [B, T], -100 where no loss (prompt, padding); unshifted
    // bool [B, 1, T, T], true = query i may attend to key j; block-diagonal over the samples of a
    // row (the model ANDs it with the causal mask). A padding position attends only to itself, so
    // no softmax row is empty (an empty row would be NaN and leak through 0 * NaN).
    at::Tensor attention_mask;
    at::Tensor position_ids;       // int64 [B, T], restarting at 0 for each sample; 0 on padding
    at::Tensor document_ids;       // int64 [B, T], sample number within its row, -1 on padding
    int64_t num_label_tokens = 0;  // labels != -100 (before the shift; the trainer owns the loss)
    int64_t num_tokens = 0;        // non-padding tokens
};

// Rows of samples (one per row when padding) -> a batch padded on the right to the longest row.
// Every row must fit `max_len` tokens when packed; pad_id fills tokens on padding.
Batch collate(const std::vector<std::vector<const Sample*>>& rows, int64_t pad_id);

// Greedy packing in order: a row takes samples until the next would exceed `row_len`; each entry of
// the result lists sample indices of one row.
std::vector<std::vector<int64_t>> pack_rows(const std::vector<int64_t>& order,
                                            const std::vector<Sample>& samples, int64_t row_len);

}  // namespace qlora::data
