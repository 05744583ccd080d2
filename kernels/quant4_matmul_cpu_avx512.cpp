// AVX-512F bodies of the fused CPU 4-bit matmuls. This translation unit alone is compiled with
// -mavx512f (CMakeLists.txt); quant4_matmul_cpu.cpp calls it only when the CPU reports AVX-512F.
//
// 32 weights come from 16 packed bytes: vpmovzxbd widens them to 16 int32 lanes d; vpermps on a
// zmm table uses the index's low 4 bits, so one permute looks up all 16 codes: d >> 4 gives the
// high nibbles (elements 0, 2, ..., 30), d itself the low ones (1, 3, ..., 31). The table holds the
// code values times the block's scale, so each weight equals dequantize_4bit's.
#include <immintrin.h>

#include "kernels/avx512_sum.h"
#include "kernels/quant4_matmul_cpu.h"

namespace qlora::kernels::detail {
namespace {

// No std:: templates here: an out-of-line copy compiled with -mavx512f could be the one the linker
// keeps.
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// How far ahead of the packed stream the GEMV prefetches (1 KiB of codes = 2048 weights).
constexpr int64_t kPrefetchBytes = 1024;

inline __m512 scaled_table(const float* code_values, float scale) {
    return _mm512_mul_ps(_mm512_loadu_ps(code_values), _mm512_set1_ps(scale));
}

// even = elements 0, 2, ..., 30 and odd = 1, 3, ..., 31 of the 32 nibbles in p[0..16).
inline void decode32(const uint8_t* p, __m512 table, __m512& even, __m512& odd) {
    const __m512i d = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    even = _mm512_permutexvar_ps(_mm512_srli_epi32(d, 4), table);
    odd = _mm512_permutexvar_ps(d, table);
}

// acc[set][i][half] += the 64 weights at p (two decodes of 32) times the regrouped x rows
// xk + i*cols, i < NT.
template <int NT>
[[gnu::always_inline]] inline void fma64(const uint8_t* p, __m512 t, const float* xk, int64_t cols,
                                         __m512 (&acc)[2][NT][2]) {
    __m512 even0, odd0, even1, odd1;
    decode32(p, t, even0, odd0);
    decode32(p + 16, t, even1, odd1);
    for (int i = 0; i < NT; ++i) {
        const float* xi = xk + i * cols;
        acc[0][i][0] = _mm512_fmadd_ps(even0, _mm512_loadu_ps(xi), acc[0][i][0]);
        acc[0][i][1] = _mm512_fmadd_ps(odd0, _mm512_loadu_ps(xi + 16), acc[0][i][1]);
        acc[1][i][0] = _mm512_fmadd_ps(even1, _mm512_loadu_ps(xi + 32), acc[1][i][0]);
        acc[1][i][1] = _mm512_fmadd_ps(odd1, _mm512_loadu_ps(xi + 48), acc[1][i][1]);
    }
}

// The common layout (a row is whole blocks of a multiple of 64): the block index advances by one
// per block, with no division, and the packed bytes are prefetched ahead of the stream (the
// hardware prefetcher alone left a single-row decode at half this speed).
template <int NT>
void whole_block_row(const Packed4bitMatrix& w, const float* xg, int64_t o,
                     __m512 (&acc)[2][NT][2]) {
    const int64_t cols = w.cols, bs = w.blocksize, b0 = o * cols / bs, blocks = cols / bs;
    const uint8_t* p = w.packed + o * cols / 2;
    for (int64_t k = 0; k < blocks; ++k, p += bs / 2) {
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
        const __m512 t = scaled_table(w.code_values, block_scale(w, b0 + k));
        for (int64_t g = 0; g < bs; g += 64) fma64<NT>(p + g / 2, t, xg + k * bs + g, cols, acc);
    }
}

// Any layout: blocks may straddle rows and a row may end on a group of 32.
template <int NT>
void any_block_row(const Packed4bitMatrix& w, const float* xg, int64_t o, __m512 (&acc)[2][NT][2]) {
    const int64_t cols = w.cols, row_start = o * cols, row_end = row_start + cols;
    for (int64_t e = row_start; e < row_end;) {
        const int64_t block = e / w.blocksize;
        const int64_t end = min_i64(row_end, (block + 1) * w.blocksize);
        const __m512 t = scaled_table(w.code_values, block_scale(w, block));
        const uint8_t* p = w.packed + e / 2;
        const float* xk = xg + (e - row_start);
        const int64_t len = end - e;
        int64_t g = 0;
        for (; g + 64 <= len; g += 64) fma64<NT>(p + g / 2, t, xk + g, cols, acc);
        if (g < len) {  // a last group of 32 (len is a multiple of 32)
            __m512 even0, odd0;
            decode32(p + g / 2, t, even0, odd0);
            for (int i = 0; i < NT; ++i) {
                const float* xi = xk + i * cols + g;
                acc[0][i][0] = _mm512_fmadd_ps(even0, _mm512_loadu_ps(xi), acc[0][i][0]);
                acc[0][i][1] = _mm512_fmadd_ps(odd0, _mm512_loadu_ps(xi + 16), acc[0][i][1]);
            }
        }
        e = end;
    }
}

// One row o of W against NT regrouped x rows (xg rows of w.cols floats), two accumulator sets.
template <int NT>
void gemv_row(const Packed4bitMatrix& w, const float* xg, int64_t o, float* y, int64_t ldy) {
    __m512 acc[2][NT][2];
    for (auto& set : acc)
        for (auto& row : set) row[0] = row[1] = _mm512_setzero_ps();
    if (w.cols % w.blocksize == 0 && w.blocksize % 64 == 0) {
        whole_block_row<NT>(w, xg, o, acc);
    } else {
        any_block_row<NT>(w, xg, o, acc);
    }
    for (int i = 0; i < NT; ++i) {
        const __m512 sum = _mm512_add_ps(_mm512_add_ps(acc[0][i][0], acc[0][i][1]),
                                         _mm512_add_ps(acc[1][i][0], acc[1][i][1]));
        y[i * ldy + o] = horizontal_sum(sum);
    }
}

}  // namespace

void gemv_rows_avx512(const Packed4bitMatrix& w, const float* xg, int64_t n, int64_t o0, int64_t o1,
                      float* y, int64_t ldy) {
    for (int64_t o = o0; o < o1; ++o) {
        for (int64_t i0 = 0; i0 < n; i0 += 4) {
            const float* x = xg + i0 * w.cols;
            float* yi = y + i0 * ldy;
            switch (min_i64(4, n - i0)) {
                case 1:
                    gemv_row<1>(w, x, o, yi, ldy);
                    break;
                case 2:
                    gemv_row<2>(w, x, o, yi, ldy);
                    break;
                case 3:
                    gemv_row<3>(w, x, o, yi, ldy);
                    break;
                default:
                    gemv_row<4>(w, x, o, yi, ldy);
                    break;
            }
        }
    }
}

void dequant_segment_avx512(const uint8_t* packed, int64_t e0, int64_t e1, const float* table16,
                            float* out) {
    const __m512 t = _mm512_loadu_ps(table16);
    // out[2j] = even[j], out[2j + 1] = odd[j]: indices 0-15 pick from even, 16-31 from odd.
    const __m512i first = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    const __m512i second =
        _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
    for (int64_t e = e0; e < e1; e += 32, out += 32) {
        __m512 even, odd;
        decode32(packed + e / 2, t, even, odd);
        _mm512_storeu_ps(out, _mm512_permutex2var_ps(even, first, odd));
        _mm512_storeu_ps(out + 16, _mm512_permutex2var_ps(even, second, odd));
    }
}

}  // namespace qlora::kernels::detail
