// The loss protocol shared by training, the trainer's eval and qlora-eval: the sum of token
// cross-entropies where labels != -100, predicting token t+1 from position t, divided by the label
// tokens of the whole window (not a mean of per-batch means).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "data/batch.h"
#include "model/llama.h"

namespace qlora::train {

// logits [B, T, V]; labels [B, T] (unshifted) -> scalar float32 sum over the shifted label tokens.
at::Tensor summed_loss(const at::Tensor& logits, const at::Tensor& labels);
// Label tokens the shifted loss counts: labels[:, 1:] != -100.
int64_t shifted_label_count(const data::Batch& batch);
// Moves the batch's tensors to `device`.
void batch_to(data::Batch& batch, const c10::Device& device);
// summed_loss of the model's forward over `batch` (already on the model's device).
at::Tensor batch_loss_sum(model::LlamaImpl& model, const data::Batch& batch);

}  // namespace qlora::train
