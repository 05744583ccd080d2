// bf16 <-> float32 conversions in AVX-512 lanes, for the translation units compiled with
// -mavx512f -mavx512bw (-mavx512vl for the masked 16-lane loads and stores): the bf16 tiles, the
// cross-entropy and RMSNorm bodies.
// Rounding is c10::BFloat16's: to nearest even (add 0x7FFF plus the kept part's lowest bit, keep
// the high half), and every NaN becomes 0x7FC0.
#pragma once

#include <immintrin.h>

#include <cstdint>

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

#if defined(__AVX512VL__)
// The first `valid` of 16 lanes (all 16 when valid >= 16).
inline __mmask16 first_lanes(int64_t valid) {
    return valid >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << valid) - 1);
}

// 16 floats from element i of float32 (bf16 false) or bf16 data; lanes outside m read nothing and
// hold `fill`.
inline __m512 load_lanes(const void* data, bool bf16, int64_t i, __mmask16 m, float fill = 0.0f) {
    const __m512 v =
        bf16 ? from_bf16x16(_mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(data) + i))
             : _mm512_maskz_loadu_ps(m, static_cast<const float*>(data) + i);
    return _mm512_mask_blend_ps(m, _mm512_set1_ps(fill), v);
}

// The lanes in m of v to element i of float32 or bf16 (rounded) data.
inline void store_lanes(void* data, bool bf16, int64_t i, __mmask16 m, __m512 v) {
    if (bf16) {
        _mm256_mask_storeu_epi16(static_cast<uint16_t*>(data) + i, m, to_bf16x16(v));
    } else {
        _mm512_mask_storeu_ps(static_cast<float*>(data) + i, m, v);
    }
}

// v rounded to bf16 and back (the value a bf16 tensor would hold), or v itself.
inline __m512 round_lanes(__m512 v, bool bf16) { return bf16 ? from_bf16x16(to_bf16x16(v)) : v; }
#endif

}  // namespace
}  // namespace qlora::kernels::detail
