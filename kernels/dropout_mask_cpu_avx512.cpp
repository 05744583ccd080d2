// AVX-512 bodies of the dropout keep-masks (contract in dropout_mask_cpu.h). The masks: eight
// counters per vector, SplitMix64's finalizer in 64-bit lanes (vpmullq), both 32-bit halves
// compared with the threshold, and the two 8-bit compare masks interleaved into the 16 mask bytes
// of the eight pairs. This translation unit alone is compiled with -mavx512f -mavx512bw -mavx512dq
// -mavx512vl -mbmi2 (CMakeLists.txt); dropout_mask_cpu.cpp calls it only when the CPU reports them.
#include <immintrin.h>

#include "kernels/dropout_mask_cpu.h"
#include "kernels/keep_mask_body.h"

namespace qlora::kernels::detail {

void mask_pairs_avx512(uint64_t seed, uint64_t threshold, int64_t j0, int64_t j1, bool* out) {
    constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;
    const __m512i m1 = _mm512_set1_epi64(static_cast<int64_t>(0xBF58476D1CE4E5B9ull));
    const __m512i m2 = _mm512_set1_epi64(static_cast<int64_t>(0x94D049BB133111EBull));
    const __m512i low32 = _mm512_set1_epi64(0xFFFFFFFFll);
    const __m512i thr = _mm512_set1_epi64(static_cast<int64_t>(threshold));
    const __m512i step = _mm512_set1_epi64(static_cast<int64_t>(8 * kGamma));
    const __m128i ones = _mm_set1_epi8(1);
    // Lane k holds counter j + k: seed + (j + k + 1)·γ (mod 2^64).
    __m512i z0 = _mm512_add_epi64(
        _mm512_set1_epi64(static_cast<int64_t>(seed + static_cast<uint64_t>(j0 + 1) * kGamma)),
        _mm512_mullo_epi64(_mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0),
                           _mm512_set1_epi64(static_cast<int64_t>(kGamma))));
    for (int64_t j = j0; j < j1; j += 8, z0 = _mm512_add_epi64(z0, step)) {
        __m512i z = _mm512_xor_si512(z0, _mm512_srli_epi64(z0, 30));
        z = _mm512_mullo_epi64(z, m1);
        z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), m2);
        z = _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
        const __mmask8 lo = _mm512_cmplt_epu64_mask(_mm512_and_si512(z, low32), thr);
        const __mmask8 hi = _mm512_cmplt_epu64_mask(_mm512_srli_epi64(z, 32), thr);
        // Byte 2k is pair k's low word, byte 2k + 1 its high word.
        const auto bytes = static_cast<__mmask16>(_pdep_u32(lo, 0x5555u) | _pdep_u32(hi, 0xAAAAu));
        const int64_t count = j1 - j < 8 ? 2 * (j1 - j) : 16;
        const auto valid = static_cast<__mmask16>(count == 16 ? 0xFFFFu : (1u << count) - 1);
        _mm_mask_storeu_epi8(out + 2 * j, valid, _mm_maskz_mov_epi8(bytes, ones));
    }
}

void keep_mask_avx512(const float* x, const uint8_t* keep, int64_t i0, int64_t i1, float* out) {
    keep_mask_range(x, keep, i0, i1, out);
}

void keep_mask_bf16_avx512(const uint16_t* x, const uint8_t* keep, int64_t i0, int64_t i1,
                           uint16_t* out) {
    keep_mask_range_bf16(x, keep, i0, i1, out);
}

}  // namespace qlora::kernels::detail
