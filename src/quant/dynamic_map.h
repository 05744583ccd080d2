// The signed 8-bit "dynamic" map that double quantization encodes absmax values with
// (bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)).
#pragma once

#include <ATen/ATen.h>

namespace qlora::quant {

// [256] float32, sorted ascending, from -0.99297 to 1.0 (built with the same torch float32
// arithmetic as bitsandbytes, so the bits match: tests compare against bitsandbytes' map).
at::Tensor dynamic_map_signed();

// [size-1] float32 midpoints (a + b) / 2 of neighbouring entries of a sorted map: the nearest-code
// thresholds (an input exactly on a midpoint takes the lower code, as torch.bucketize does).
at::Tensor map_midpoints(const at::Tensor& sorted_map);

}  // namespace qlora::quant
