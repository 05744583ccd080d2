// AVX-512 VNNI body of the int8-activation 4-bit GEMV (contract in quant4_matmul_cpu.h). This
// translation unit alone is compiled with -mavx512f -mavx512bw -mavx512vnni (CMakeLists.txt);
// quant4_matmul_cpu.cpp calls it only when the CPU reports all three.
//
// 64 weights come from 32 packed bytes: the high nibbles (elements 0, 2, ..., 62) fill the low
// 256 bits of an index vector, the low nibbles (1, 3, ..., 63) the high 256 bits, and vpshufb
// looks each up in the 16-entry table of c8 + 128 (unsigned, 1..255). vpdpbusd multiplies those
// with the activation codes in the same order, four products per int32 lane; each lane starts
// from -128 times the sum of its four activation codes, so it ends on the exact signed
// Σ c8·q of its four elements (|Σ| <= 4·127·127, exact in int32 and in float32). One float32
// multiply-add per 64 weights applies scale(block) · amax/127².
#include <immintrin.h>

#include "kernels/avx512_sum.h"
#include "kernels/quant4_matmul_cpu.h"

namespace qlora::kernels::detail {
namespace {

// No std:: templates here (an out-of-line copy compiled with these flags could be the one the
// linker keeps).
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// How far ahead of the packed stream the GEMV prefetches (1 KiB of codes = 2048 weights).
constexpr int64_t kPrefetchBytes = 1024;

// The 16 unsigned weights c8 + 128 in each 128-bit lane (vpshufb looks up within a lane).
inline __m512i unsigned_table(const int8_t* c8) {
    alignas(16) uint8_t u[16];
    for (int k = 0; k < 16; ++k) u[k] = static_cast<uint8_t>(c8[k] + 128);
    return _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(u)));
}

// The 64 unsigned weights of 32 packed bytes, high nibbles first (see the file comment).
inline __m512i decode64(const uint8_t* p, __m512i table) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask);
    const __m256i low = _mm256_and_si256(bytes, mask);
    const __m512i index = _mm512_inserti64x4(_mm512_castsi256_si512(high), low, 1);
    return _mm512_shuffle_epi8(table, index);
}

// acc[i] += scale · amax/127² · (the exact Σ c8·q of group g) for the NT activation rows from i0.
template <int NT>
[[gnu::always_inline]] inline void group_dot(__m512i weights, const Int8Activations& xq, int64_t i0,
                                             int64_t groups, int64_t g, float scale,
                                             __m512 (&acc)[NT]) {
    for (int i = 0; i < NT; ++i) {
        const int64_t row_group = (i0 + i) * groups + g;
        const __m512i codes = _mm512_loadu_si512(xq.codes + row_group * kInt8Group);
        const __m512i start = _mm512_loadu_si512(xq.lane_offset + row_group * 16);
        const __m512i dot = _mm512_dpbusd_epi32(start, weights, codes);
        const __m512 s = _mm512_set1_ps(scale * xq.dot_scale[row_group]);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[i]);
    }
}

// One row o of W against NT activation rows from i0. Groups go in pairs into two accumulator
// sets, so that the multiply-add latency chain does not bound a single-row decode. The block of
// group g is g >> shift (blocks of 2^shift groups).
template <int NT>
void int8_row(const Packed4bitMatrix& w, const Int8Activations& xq, const __m512i table, int64_t i0,
              int64_t o, float* y, int64_t ldy) {
    const int64_t groups = w.cols / kInt8Group, b0 = o * w.cols / w.blocksize;
    const int shift = __builtin_ctzll(static_cast<unsigned long long>(w.blocksize / kInt8Group));
    const uint8_t* p = w.packed + o * w.cols / 2;
    __m512 even[NT], odd[NT];
    for (int i = 0; i < NT; ++i) even[i] = odd[i] = _mm512_setzero_ps();
    int64_t g = 0;
    for (; g + 1 < groups; g += 2, p += kInt8Group) {
        _mm_prefetch(reinterpret_cast<const char*>(p) + kPrefetchBytes, _MM_HINT_T0);
        group_dot<NT>(decode64(p, table), xq, i0, groups, g, block_scale(w, b0 + (g >> shift)),
                      even);
        group_dot<NT>(decode64(p + kInt8Group / 2, table), xq, i0, groups, g + 1,
                      block_scale(w, b0 + ((g + 1) >> shift)), odd);
    }
    if (g < groups) {
        group_dot<NT>(decode64(p, table), xq, i0, groups, g, block_scale(w, b0 + (g >> shift)),
                      even);
    }
    for (int i = 0; i < NT; ++i) {
        y[(i0 + i) * ldy + o] = horizontal_sum(_mm512_add_ps(even[i], odd[i]));
    }
}

}  // namespace

bool cpu_has_avx512_vnni() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

void gemv_int8_rows_vnni(const Packed4bitMatrix& w, const Int8Activations& xq, const int8_t* c8,
                         int64_t o0, int64_t o1, float* y, int64_t ldy) {
    const __m512i table = unsigned_table(c8);
    for (int64_t o = o0; o < o1; ++o) {
        for (int64_t i0 = 0; i0 < xq.rows; i0 += 4) {
            switch (min_i64(4, xq.rows - i0)) {
                case 1:
                    int8_row<1>(w, xq, table, i0, o, y, ldy);
                    break;
                case 2:
                    int8_row<2>(w, xq, table, i0, o, y, ldy);
                    break;
                case 3:
                    int8_row<3>(w, xq, table, i0, o, y, ldy);
                    break;
                default:
                    int8_row<4>(w, xq, table, i0, o, y, ldy);
                    break;
            }
        }
    }
}

}  // namespace qlora::kernels::detail
