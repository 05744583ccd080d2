// The summed token cross-entropy the loss protocol (train/loss.h) and the step benchmark use. On
// the CPU, float32 and bf16 logits go through the fused kernels (kernels/cross_entropy_cpu.h):
// the loss and, in backward, the logits' gradient, each in one pass over the logits, with no
// float32 copy of them (the composite form holds four [rows, vocab] float32 tensors). Elsewhere it
// is at::cross_entropy_loss on the logits in float32, as before.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

namespace qlora::train {

// logits [N, V] (rows may be strided, columns contiguous), labels [N] int64 -> float32 scalar:
// Σ over rows whose label is not ignore_index of logsumexp(row) - row[label], computed in float32.
// A label outside [0, V) that is not ignore_index is a qlora::Error naming it.
at::Tensor summed_cross_entropy(const at::Tensor& logits, const at::Tensor& labels,
                                int64_t ignore_index = -100);

// Whether summed_cross_entropy takes the fused CPU kernels for these logits.
bool fused_cross_entropy(const at::Tensor& logits);

}  // namespace qlora::train
