// bf16 <-> float32 conversions in AVX-512 lanes, for the translation units compiled with
// -mavx512f -mavx512bw (quant4_matmul_cpu_bf16_avx512.cpp, cross_entropy_cpu_avx512.cpp).
// Rounding is c10::BFloat16's: to nearest even (add 0x7FFF plus the kept part's lowest bit, keep
// the high half), and every NaN becomes 0x7FC0.
#pragma once

#include <immintrin.h>

namespace qlora::kernels::detail {
namespace {  // each including TU gets its own copy, compiled with that TU's ISA flags

// 16 floats -> 16 bf16 bit patterns in 32-bit lanes (the high halves zero).
inline __m512i bf16_bits_in_dwords(__m512 v) {
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    return _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q),
                                 _mm512_set1_epi32(0x7FC0));
}

// 16 floats -> 16 packed bf16.
inline __m256i to_bf16x16(__m512 v) { return _mm512_cvtepi32_epi16(bf16_bits_in_dwords(v)); }

// 16 packed bf16 -> 16 floats (exact).
inline __m512 from_bf16x16(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

}  // namespace
}  // namespace qlora::kernels::detail
