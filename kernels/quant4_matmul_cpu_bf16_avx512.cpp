// AVX-512BW body of the bf16 tile dequantization (quant4_dequant_tile_bf16, contract in
// quant4_matmul_cpu.h). This translation unit alone is compiled with -mavx512f -mavx512bw
// (CMakeLists.txt); quant4_matmul_cpu.cpp calls it only when the CPU reports both.
//
// Per block: the 16 code values times the block's scale (one float32 multiply, as dequantize_4bit
// rounds it), rounded to bf16 as c10::BFloat16 rounds (avx512_bf16.h), narrowed to 16 words: the
// block's table. Per 64 weights: their 32 packed bytes widened to 32 words, the high
// and the low nibbles looked up with vpermw (16 entries of the 32-word table are used), and the two
// halves interleaved back to element order with vpermt2w.
#include <immintrin.h>

#include "kernels/avx512_bf16.h"
#include "kernels/quant4_matmul_cpu.h"

namespace qlora::kernels::detail {
namespace {

// The block's 16 bf16 values in the low 16 words.
inline __m512i bf16_table(const float* code_values, float scale) {
    const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(code_values), _mm512_set1_ps(scale));
    return _mm512_zextsi256_si512(to_bf16x16(v));
}

// Element order from the nibble halves: out[2j] = high nibble of byte j, out[2j + 1] = its low
// nibble; vpermt2w index bit 5 picks the second source (the low nibbles). Row h covers bytes
// 16h..16h+15, i.e. output elements 32h..32h+31. Built at compile time: the span body runs once per
// row of a tile.
struct InterleaveIndex {
    alignas(64) int16_t half[2][32];
};
constexpr InterleaveIndex make_interleave_index() {
    InterleaveIndex idx{};
    for (int h = 0; h < 2; ++h) {
        for (int e = 0; e < 32; ++e) {
            idx.half[h][e] = static_cast<int16_t>((16 * h + e / 2) | ((e % 2) << 5));
        }
    }
    return idx;
}
constexpr InterleaveIndex kInterleave = make_interleave_index();

}  // namespace

void dequant_span_bf16_avx512bw(const Packed4bitMatrix& w, int64_t e0, int64_t e1, uint16_t* out) {
    const __m512i first = _mm512_load_si512(kInterleave.half[0]);
    const __m512i second = _mm512_load_si512(kInterleave.half[1]);
    const __m512i low4 = _mm512_set1_epi16(0x0F);
    for (int64_t e = e0; e < e1;) {
        const int64_t block = e / w.blocksize;
        const int64_t end = (block + 1) * w.blocksize < e1 ? (block + 1) * w.blocksize : e1;
        const __m512i table = bf16_table(w.code_values, block_scale(w, block));
        for (; e < end; e += 64, out += 64) {
            const __m512i bytes = _mm512_cvtepu8_epi16(
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.packed + e / 2)));
            const __m512i hi = _mm512_permutexvar_epi16(_mm512_srli_epi16(bytes, 4), table);
            const __m512i lo = _mm512_permutexvar_epi16(_mm512_and_si512(bytes, low4), table);
            _mm512_storeu_si512(out, _mm512_permutex2var_epi16(hi, first, lo));
            _mm512_storeu_si512(out + 32, _mm512_permutex2var_epi16(hi, second, lo));
        }
    }
}

bool cpu_has_avx512bw() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}

}  // namespace qlora::kernels::detail
