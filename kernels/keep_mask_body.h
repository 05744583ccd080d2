// The element loops of applying a keep-mask (contract in dropout_mask_cpu.h), branch-free so that
// they vectorize: included by dropout_mask_cpu.cpp (baseline ISA) and dropout_mask_cpu_avx512.cpp
// (compiled with AVX-512 BW, where the compiler widens the same loops to 64-byte lanes).
#pragma once

#include <cstdint>

namespace qlora::kernels::detail {
namespace {  // each including TU gets its own copy, compiled with that TU's ISA flags

// out[i] = x[i] · keep[i] for i in [i0, i1).
inline void keep_mask_range(const float* x, const uint8_t* keep, int64_t i0, int64_t i1,
                            float* out) {
    for (int64_t i = i0; i < i1; ++i) out[i] = x[i] * static_cast<float>(keep[i]);
}

// The same on bf16 bits, in 16-bit lanes: x·1 = x and x·0 = ±0 for finite x; NaN·k and ±inf·0 are
// NaN (0x7FC0).
inline void keep_mask_range_bf16(const uint16_t* x, const uint8_t* keep, int64_t i0, int64_t i1,
                                 uint16_t* out) {
    for (int64_t i = i0; i < i1; ++i) {
        const uint16_t v = x[i];
        const auto kept = static_cast<uint16_t>(-static_cast<int16_t>(keep[i]));  // 0 or 0xFFFF
        const uint16_t magnitude = v & 0x7FFF;
        const uint16_t nan_in = magnitude > 0x7F80 ? 0xFFFF : 0;
        const uint16_t inf_in = magnitude == 0x7F80 ? 0xFFFF : 0;
        const auto nan_out = static_cast<uint16_t>(nan_in | (inf_in & ~kept));
        const auto product = static_cast<uint16_t>(v & (kept | 0x8000));
        out[i] = static_cast<uint16_t>((product & ~nan_out) | (0x7FC0 & nan_out));
    }
}

}  // namespace
}  // namespace qlora::kernels::detail
