// ggml Q4_0's arithmetic, once: the 4-bit codes and scales of int4 groups along the rows of a
// weight. Fake quant (QAT's int4 scheme), the hf-int4 layout and the GGUF Q4_0 encoder all call
// it, so their tests compare it against independent references (the scalar fake_quant_ref, and
// gguf-py's Q4_0 quantizer), not against another copy of the same steps.
#pragma once

#include <ATen/ATen.h>

namespace qlora::quant {

// For w [rows, cols] float32 (any device) in groups of `group` consecutive elements of a row, the
// last group of a row zero-padded (a zero never wins the largest magnitude over a real element):
//   m = the group's element of largest magnitude (the first on ties), d = m / -8,
//   id = 1/d (0 for an all-zero group), code = min(15, trunc(x * id + 8.5)),
// so x ~ (code - 8) * d with d stored in float16.
struct Int4Groups {
    at::Tensor codes;     // [rows, groups, group] float32 0..15 (padding included)
    at::Tensor scale;     // [rows, groups, 1] float32 d = m / -8, before its float16 rounding
    at::Tensor in_range;  // [rows, groups, group] bool: x * id + 8.5 < 16 (not clamped: the STE)
};
Int4Groups int4_groups(const at::Tensor& w, int64_t group);

}  // namespace qlora::quant
