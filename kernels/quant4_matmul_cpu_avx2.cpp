// AVX2+FMA bodies of the fused CPU 4-bit matmuls. This translation unit alone is compiled with
// -mavx2 -mfma (CMakeLists.txt); quant4_matmul_cpu.cpp calls it only when the CPU reports both.
//
// 16 weights come from 8 packed bytes: vpmovzxbd widens the bytes to 8 int32 lanes d; the high
// nibbles (elements 0, 2, ..., 14) index with d >> 4, the low ones (1, 3, ..., 15) with d itself.
// vpermps looks up 8 entries using the index's low 3 bits, so a 16-entry codebook is two permutes
// (codes 0-7 and 8-15) and a blend on the nibble's bit 3, moved into the sign bit for blendvps
// (d << 24 for the high nibble's bit 7, d << 28 for the low nibble's bit 3). The tables hold the
// code values already multiplied by the block's scale, so each weight equals dequantize_4bit's.
#include <immintrin.h>

#include "kernels/quant4_matmul_cpu.h"

namespace qlora::kernels::detail {
namespace {

// No std:: templates here: an out-of-line copy compiled with -mavx2 could be the one the linker
// keeps.
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

struct ScaledTables {
    __m256 low;   // codes 0-7 times the block scale
    __m256 high;  // codes 8-15 times the block scale
};

inline ScaledTables tables_for(const float* code_values, float scale) {
    const __m256 s = _mm256_set1_ps(scale);
    return {_mm256_mul_ps(_mm256_loadu_ps(code_values), s),
            _mm256_mul_ps(_mm256_loadu_ps(code_values + 8), s)};
}

inline __m256 lookup16(const ScaledTables& t, __m256i index, __m256i select) {
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(t.low, index),
                            _mm256_permutevar8x32_ps(t.high, index), _mm256_castsi256_ps(select));
}

// even = elements 0, 2, ..., 14 and odd = 1, 3, ..., 15 of the 16 nibbles in p[0..8).
inline void decode16(const uint8_t* p, const ScaledTables& t, __m256& even, __m256& odd) {
    const __m256i d = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
    even = lookup16(t, _mm256_srli_epi32(d, 4), _mm256_slli_epi32(d, 24));
    odd = lookup16(t, d, _mm256_slli_epi32(d, 28));
}

inline float horizontal_sum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// How far ahead of the packed stream the GEMV prefetches (1 KiB of codes = 2048 weights).
constexpr int64_t kPrefetchBytes = 1024;

// NT <= 2 keeps two sets of accumulators so that the FMA latency chain does not bound a
// single-row decode.
template <int NT>
constexpr int kSets = NT <= 2 ? 2 : 1;

template <int NT>
using Accumulators = __m256[kSets<NT>][NT][2];

// acc += the 32 weights at p (two decodes of 16) times the regrouped x rows xk + i*cols, i < NT.
template <int NT>
[[gnu::always_inline]] inline void fma32(const uint8_t* p, const ScaledTables& t, const float* xk,
                                         int64_t cols, Accumulators<NT>& acc) {
    __m256 even0, odd0, even1, odd1;
    decode16(p, t, even0, odd0);
    decode16(p + 8, t, even1, odd1);
    for (int i = 0; i < NT; ++i) {
        const float* xi = xk + i * cols;
        auto& a0 = acc[0][i];
        auto& a1 = acc[kSets<NT> - 1][i];
        a0[0] = _mm256_fmadd_ps(even0, _mm256_loadu_ps(xi), a0[0]);
        a0[1] = _mm256_fmadd_ps(odd0, _mm256_loadu_ps(xi + 8), a0[1]);
        a1[0] = _mm256_fmadd_ps(even1, _mm256_loadu_ps(xi + 16), a1[0]);
        a1[1] = _mm256_fmadd_ps(odd1, _mm256_loadu_ps(xi + 24), a1[1]);
    }
}

// The common layout (a row is whole blocks of a multiple of 32): the block index advances by one
// per block, with no division, and the packed bytes are prefetched ahead of the stream.
template <int NT>
void whole_block_row(const Packed4bitMatrix& w, const float* xg, int64_t o, Accumulators<NT>& acc) {
    const int64_t cols = w.cols, bs = w.blocksize, b0 = o * cols / bs, blocks = cols / bs;
    const uint8_t* p = w.packed + o * cols / 2;
    for (int64_t k = 0; k < blocks; ++k, p += bs / 2) {
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
        const ScaledTables t = tables_for(w.code_values, block_scale(w, b0 + k));
        for (int64_t g = 0; g < bs; g += 32) fma32<NT>(p + g / 2, t, xg + k * bs + g, cols, acc);
    }
}

// Any layout: blocks may straddle rows and a row may end on a group of 16.
template <int NT>
void any_block_row(const Packed4bitMatrix& w, const float* xg, int64_t o, Accumulators<NT>& acc) {
    const int64_t cols = w.cols, row_start = o * cols, row_end = row_start + cols;
    for (int64_t e = row_start; e < row_end;) {
        const int64_t block = e / w.blocksize;
        const int64_t end = min_i64(row_end, (block + 1) * w.blocksize);
        const ScaledTables t = tables_for(w.code_values, block_scale(w, block));
        const uint8_t* p = w.packed + e / 2;
        const float* xk = xg + (e - row_start);
        const int64_t len = end - e;
        int64_t g = 0;
        for (; g + 32 <= len; g += 32) fma32<NT>(p + g / 2, t, xk + g, cols, acc);
        if (g < len) {  // a last group of 16 (len is a multiple of 16)
            __m256 even0, odd0;
            decode16(p + g / 2, t, even0, odd0);
            for (int i = 0; i < NT; ++i) {
                const float* xi = xk + i * cols + g;
                acc[0][i][0] = _mm256_fmadd_ps(even0, _mm256_loadu_ps(xi), acc[0][i][0]);
                acc[0][i][1] = _mm256_fmadd_ps(odd0, _mm256_loadu_ps(xi + 8), acc[0][i][1]);
            }
        }
        e = end;
    }
}

// One row o of W against NT regrouped x rows (xg rows of w.cols floats).
template <int NT>
void gemv_row(const Packed4bitMatrix& w, const float* xg, int64_t o, float* y, int64_t ldy) {
    Accumulators<NT> acc;
    for (auto& set : acc)
        for (auto& row : set) row[0] = row[1] = _mm256_setzero_ps();
    if (w.cols % w.blocksize == 0 && w.blocksize % 32 == 0) {
        whole_block_row<NT>(w, xg, o, acc);
    } else {
        any_block_row<NT>(w, xg, o, acc);
    }
    for (int i = 0; i < NT; ++i) {
        __m256 sum = _mm256_add_ps(acc[0][i][0], acc[0][i][1]);
        if constexpr (kSets<NT> == 2)
            sum = _mm256_add_ps(sum, _mm256_add_ps(acc[1][i][0], acc[1][i][1]));
        y[i * ldy + o] = horizontal_sum(sum);
    }
}

}  // namespace

void gemv_rows_avx2(const Packed4bitMatrix& w, const float* xg, int64_t n, int64_t o0, int64_t o1,
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

namespace {
// Elements [e, e + 16) of one block in order: first = 0..7, second = 8..15.
inline void decode16_in_order(const uint8_t* p, const ScaledTables& t, __m256& first,
                              __m256& second) {
    __m256 even, odd;
    decode16(p, t, even, odd);
    // unpack interleaves within 128-bit lanes: lo = [0 1 2 3 | 8 9 10 11], hi = [4 5 6 7 | 12 13
    // 14 15]
    const __m256 lo = _mm256_unpacklo_ps(even, odd);
    const __m256 hi = _mm256_unpackhi_ps(even, odd);
    first = _mm256_permute2f128_ps(lo, hi, 0x20);
    second = _mm256_permute2f128_ps(lo, hi, 0x31);
}
}  // namespace

void dequant_segment_avx2(const uint8_t* packed, int64_t e0, int64_t e1, const float* table16,
                          float* out) {
    const ScaledTables t{_mm256_loadu_ps(table16), _mm256_loadu_ps(table16 + 8)};
    for (int64_t e = e0; e < e1; e += 16, out += 16) {
        __m256 first, second;
        decode16_in_order(packed + e / 2, t, first, second);
        _mm256_storeu_ps(out, first);
        _mm256_storeu_ps(out + 8, second);
    }
}

void dequant_segment_avx2(const uint8_t* packed, int64_t e0, int64_t e1, const float* table16,
                          uint16_t* out) {
    const ScaledTables t{_mm256_loadu_ps(table16), _mm256_loadu_ps(table16 + 8)};
    for (int64_t e = e0; e < e1; e += 16, out += 16) {
        __m256 first, second;
        decode16_in_order(packed + e / 2, t, first, second);
        // The table's values are bf16 already (low halves zero): keep the high halves. packus
        // packs within 128-bit lanes, [a0-3 b0-3 | a4-7 b4-7]; the qword permute restores order.
        const __m256i a = _mm256_srli_epi32(_mm256_castps_si256(first), 16);
        const __m256i b = _mm256_srli_epi32(_mm256_castps_si256(second), 16);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(out),
                            _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xD8));
    }
}

}  // namespace qlora::kernels::detail
