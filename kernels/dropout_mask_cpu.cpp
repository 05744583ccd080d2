// Counter-based dropout masks (contract in dropout_mask_cpu.h).
#include "kernels/dropout_mask_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "kernels/keep_mask_body.h"

namespace qlora::kernels {
namespace {

constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;

// SplitMix64's output function.
inline uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// Words [2·j0, 2·j1) of the stream, as mask elements (the last pair may be cut at n).
void mask_pairs(uint64_t seed, uint64_t threshold, int64_t j0, int64_t j1, int64_t n, bool* out) {
    for (int64_t j = j0; j < j1; ++j) {
        const uint64_t z = mix(seed + static_cast<uint64_t>(j + 1) * kGamma);
        out[2 * j] = (z & 0xFFFFFFFFull) < threshold;
        if (2 * j + 1 < n) out[2 * j + 1] = (z >> 32) < threshold;
    }
}

}  // namespace

uint64_t dropout_keep_threshold(double keep) {
    const double scaled = std::nearbyint(keep * 4294967296.0);  // 2^32
    if (!(scaled > 0.0)) return 0;
    return scaled >= 4294967296.0 ? (uint64_t{1} << 32) : static_cast<uint64_t>(scaled);
}

CpuIsa dropout_mask_isa() {
#if defined(__x86_64__)
    static const bool has = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("bmi2");
    }();
    return has && best_cpu_isa() == CpuIsa::kAvx512 ? CpuIsa::kAvx512 : CpuIsa::kPortable;
#else
    return CpuIsa::kPortable;
#endif
}

void dropout_mask(uint64_t seed, uint64_t threshold, int64_t n, bool* out, CpuIsa isa) {
    const int64_t pairs = (n + 1) / 2, whole = n / 2;  // the last pair may be cut at n
    const bool vector = isa == CpuIsa::kAvx512 && dropout_mask_isa() == CpuIsa::kAvx512;
    at::parallel_for(0, pairs, 16384, [&](int64_t j0, int64_t j1) {
        const int64_t split = vector ? std::max(j0, std::min(j1, whole)) : j0;
        if (split > j0) detail::mask_pairs_avx512(seed, threshold, j0, split, out);
        mask_pairs(seed, threshold, split, j1, n, out);
    });
}

#if !defined(__x86_64__)
namespace detail {
void mask_pairs_avx512(uint64_t, uint64_t, int64_t, int64_t, bool*) { std::abort(); }
void keep_mask_avx512(const float*, const uint8_t*, int64_t, int64_t, float*) { std::abort(); }
void keep_mask_bf16_avx512(const uint16_t*, const uint8_t*, int64_t, int64_t, uint16_t*) {
    std::abort();
}
}  // namespace detail
#endif

void apply_keep_mask(const float* x, const bool* keep, int64_t n, float* out, CpuIsa isa) {
    const auto* k8 = reinterpret_cast<const uint8_t*>(keep);  // bool: one byte, 0 or 1
    const bool vector = isa == CpuIsa::kAvx512 && dropout_mask_isa() == CpuIsa::kAvx512;
    at::parallel_for(0, n, 65536, [&](int64_t i0, int64_t i1) {
        if (vector) {
            detail::keep_mask_avx512(x, k8, i0, i1, out);
        } else {
            detail::keep_mask_range(x, k8, i0, i1, out);
        }
    });
}

void apply_keep_mask_bf16(const uint16_t* x, const bool* keep, int64_t n, uint16_t* out,
                          CpuIsa isa) {
    const auto* k8 = reinterpret_cast<const uint8_t*>(keep);
    const bool vector = isa == CpuIsa::kAvx512 && dropout_mask_isa() == CpuIsa::kAvx512;
    at::parallel_for(0, n, 65536, [&](int64_t i0, int64_t i1) {
        if (vector) {
            detail::keep_mask_bf16_avx512(x, k8, i0, i1, out);
        } else {
            detail::keep_mask_range_bf16(x, k8, i0, i1, out);
        }
    });
}

void dropout_mask_ref(uint64_t seed, uint64_t threshold, int64_t n, bool* out) {
    for (int64_t i = 0; i < n; ++i) {
        const uint64_t z = mix(seed + static_cast<uint64_t>(i / 2 + 1) * kGamma);
        const uint64_t word = i % 2 == 0 ? (z & 0xFFFFFFFFull) : (z >> 32);
        out[i] = word < threshold;
    }
}

}  // namespace qlora::kernels
