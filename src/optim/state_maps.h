// The two 8-bit quantization maps of blockwise optimizer states (m: signed dynamic map, v: unsigned
// dynamic map, as bitsandbytes' 8-bit optimizers use) with their nearest-code midpoints.
#pragma once

#include <ATen/ATen.h>

namespace qlora::optim {

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
