// AdamW's shared facts for the CPU reference (src/optim/adamw_ref.h) and the CUDA kernels
// (adamw.cu): the per-step scalars and the 8-bit blockwise state layout. Plain structs, no
// LibTorch, so kernels/ includes nothing from src/.
#pragma once

#include <cstdint>

namespace qlora::adamw {

// The per-step scalars are computed once on the host in double and rounded to float, so the CPU
// reference and the CUDA kernel see the same bits.
struct AdamwScalars {
    float beta1 = 0.9f;
    float one_minus_beta1 = 0.1f;
    float beta2 = 0.999f;
    float one_minus_beta2 = 0.001f;
    float eps = 1e-8f;
    float decay = 1.0f;      // 1 - lr * wd
    float step_size = 0.0f;  // lr / (1 - b1^t)
    float bc2_sqrt = 1.0f;   // sqrt(1 - b2^t)
};

// 8-bit blockwise states (bitsandbytes' "blockwise dynamic" optimizer, blocksize 256): element i
// of m is signed_map[m_codes[i]] * m_absmax[i / 256], of v unsigned_map[v_codes[i]] * v_absmax[..].
// Per block: dequantize, update every element as adamw_element, take the new absmax of |m| and |v|,
// then requantize each to the nearest map entry of m / absmax (x * (1 / absmax) for a full block,
// x / absmax for the tail, as bitsandbytes' quantize_blockwise does). An absmax of 0 stays 0.
// Maps are [256] ascending; midpoints [255] are the nearest-code thresholds.
struct Blockwise8bitMaps {
    const float* signed_map;          // [256] for m
    const float* signed_midpoints;    // [255]
    const float* unsigned_map;        // [256] for v
    const float* unsigned_midpoints;  // [255]
};

inline constexpr int64_t kStateBlocksize = 256;

inline int64_t state_blocks(int64_t n) { return (n + kStateBlocksize - 1) / kStateBlocksize; }

}  // namespace qlora::adamw
