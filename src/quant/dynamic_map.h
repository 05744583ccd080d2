// bitsandbytes' 8-bit "dynamic" maps: the signed one encodes double quantization's absmax values
// and AdamW's first moment, the unsigned one the second moment
// (create_dynamic_map(signed, max_exponent_bits=7, total_bits=8)).
#pragma once

#include <ATen/ATen.h>

namespace qlora::quant {

// [256] float32, sorted ascending: signed from -0.99297 to 1.0, unsigned from 0 to 1 (built with
// the same torch float32 arithmetic as bitsandbytes, so the bits match: tests compare against
// bitsandbytes' maps).
at::Tensor dynamic_map(bool is_signed);

// [size-1] float32 midpoints (a + b) / 2 of neighbouring entries of a sorted map: the nearest-code
// thresholds (an input exactly on a midpoint takes the lower code, as torch.bucketize does).
at::Tensor map_midpoints(const at::Tensor& sorted_map);

}  // namespace qlora::quant
