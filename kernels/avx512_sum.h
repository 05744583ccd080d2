// The lane sum of a __m512 in a fixed order, for the translation units compiled with -mavx512f
// (quant4_matmul_cpu_avx512.cpp, quant4_matmul_cpu_vnni.cpp): a tree of halves (256, 128, 64,
// 32 bits), four dependent adds where a lane-by-lane loop had sixteen. A GEMV ends every output
// on one of these, so its latency counts (profiled: the loop took ~15% of the int8 decode).
// GCC 12's _mm512_reduce_add_ps trips -Wuninitialized in its own header, hence the intrinsics.
#pragma once

#include <immintrin.h>

namespace qlora::kernels::detail {
namespace {  // each including TU gets its own copy, compiled with that TU's ISA flags

inline float horizontal_sum(__m512 v) {
    const __m256 low = _mm512_castps512_ps256(v);
    const __m256 high = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
    const __m256 s8 = _mm256_add_ps(low, high);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    const __m128 s1 = _mm_add_ss(s2, _mm_movehdup_ps(s2));
    return _mm_cvtss_f32(s1);
}

}  // namespace
}  // namespace qlora::kernels::detail
