// Scalar reads and writes of float32 or bf16 data (bf16 as c10::BFloat16 rounds), for the portable
// loops and reference twins of the fused training kernels (rms_norm_cpu, swiglu_cpu,
// cross_entropy_cpu).
#pragma once

#include <c10/util/BFloat16.h>

#include <cstdint>

namespace qlora::kernels::detail {
namespace {  // each including TU gets its own copy, compiled with that TU's flags

inline float load_value(const void* data, bool bf16, int64_t i) {
    if (!bf16) return static_cast<const float*>(data)[i];
    return c10::BFloat16(static_cast<const uint16_t*>(data)[i], c10::BFloat16::from_bits());
}

inline void store_value(void* data, bool bf16, int64_t i, float v) {
    if (bf16) {
        static_cast<uint16_t*>(data)[i] = c10::BFloat16(v).x;
    } else {
        static_cast<float*>(data)[i] = v;
    }
}

// v as a tensor of that dtype would hold it.
inline float round_value(float v, bool bf16) {
    return bf16 ? static_cast<float>(c10::BFloat16(v)) : v;
}

}  // namespace
}  // namespace qlora::kernels::detail
