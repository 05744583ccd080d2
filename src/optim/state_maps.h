// The two 8-bit quantization maps of blockwise optimizer states (m: signed dynamic map, v: unsigned
// dynamic map, as bitsandbytes' 8-bit optimizers use) with their nearest-code midpoints.
#pragma once

#include <ATen/ATen.h>

namespace qlora::optim {

// [256] float32 ascending from 0 to 1: bitsandbytes create_dynamic_map(signed=False). For i in
// 0..6, 2^(i+1) + 1 points evenly spaced on [0.1, 1] (torch.linspace, float32), their neighbour
// means scaled by 10^(i-6); then 0 and 1. Built with the same float32 ops, so the bits match.
at::Tensor dynamic_map_unsigned();

// Maps and midpoints on one device, for the update ops.
struct StateMaps {
    at::Tensor signed_map;          // [256] fp32
    at::Tensor signed_midpoints;    // [255] fp32
    at::Tensor unsigned_map;        // [256] fp32
    at::Tensor unsigned_midpoints;  // [255] fp32
};

// Built once per device and cached (the tensors are never written).
const StateMaps& state_maps(const c10::Device& device);

}  // namespace qlora::optim
