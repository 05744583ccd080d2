// AVX-512 VNNI bodies of the int8-activation 4-bit matmul (contract in quant4_matmul_cpu.h).
// This translation unit alone is compiled with -mavx512f -mavx512bw -mavx512vnni
// (CMakeLists.txt); quant4_matmul_cpu.cpp calls it only when the CPU reports all three.
//
// Both kernels feed vpdpbusd the unsigned activation codes q + 128 and the signed weight codes c8,
// four products per int32 lane: Σ (q + 128)·c8 = Σ q·c8 + 128·Σ c8, so each lane starts from
// -128 times the sum of its weights and ends on the exact signed Σ q·c8 (|Σ| <= 64·127·255 per
// group, exact in int32 and, once below 2^24 after the start is added, in float32). Then one
// float32 multiply and multiply-add per group apply scale(block) · amax/127².
//
// Decode (few activation rows, codes in [even | odd] column order): 64 weights of one row of W
// come from 32 packed bytes, the high nibbles (elements 0, 2, ..., 62) in the low 256 bits of an
// index vector and the low nibbles in the high 256 bits, looked up with vpshufb; the lanes of a
// dot product are 16 partial sums of one output, reduced at the end.
//
// Prefill (many rows, codes in natural order): lanes are outputs. A tile of 16 rows of W is
// decoded once into int8, laid out per group and per step of 4 columns as 16 rows x 4 bytes
// (64 bytes: lane j holds row j's 4 weights), with the start values and the block scales of the
// tile's 16 rows per group. Each step is one vpdpbusd per activation row against that row's 4
// codes broadcast to every lane, so the 16 lanes accumulate 16 outputs, and the group's scaling
// is one vector multiply-add for 16 outputs: the decode's horizontal sums and per-output scaling
// disappear, and the decoded tile serves every activation row.
#include <immintrin.h>

#include "kernels/avx512_sum.h"
#include "kernels/quant4_matmul_cpu.h"

namespace qlora::kernels::detail {
namespace {

// No std:: templates here (an out-of-line copy compiled with these flags could be the one the
// linker keeps).
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

// How far ahead of the packed stream the decode prefetches (1 KiB of codes = 2048 weights).
constexpr int64_t kPrefetchBytes = 1024;
constexpr int64_t kSteps = kInt8Group / 4;  // vpdpbusd steps of 4 columns per group

// ---- decode -------------------------------------------------------------------------------------

// The 16 signed weights c8 in each 128-bit lane (vpshufb looks up within a lane).
inline __m512i signed_table(const int8_t* c8) {
    alignas(16) int8_t t[16];
    for (int k = 0; k < 16; ++k) t[k] = c8[k];
    return _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
}

// The 64 signed weights of 32 packed bytes, high nibbles first (see the file comment).
inline __m512i decode64(const uint8_t* p, __m512i table) {
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i mask = _mm256_set1_epi8(0x0F);
    const __m256i high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask);
    const __m256i low = _mm256_and_si256(bytes, mask);
    const __m512i index = _mm512_inserti64x4(_mm512_castsi256_si512(high), low, 1);
    return _mm512_shuffle_epi8(table, index);
}

// -128 · Σ of each lane's four weights: where the lane's vpdpbusd sum starts.
inline __m512i start_of(__m512i weights) {
    const __m512i sums = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                             _mm512_set1_epi8(static_cast<char>(0x80)), weights);
    return _mm512_sub_epi32(_mm512_setzero_si512(), sums);
}

// acc[i] += scale · amax/127² · (the exact Σ c8·q of group g) for the NT activation rows from i0.
template <int NT>
[[gnu::always_inline]] inline void group_dot(__m512i weights, const Int8Activations& xq, int64_t i0,
                                             int64_t groups, int64_t g, float scale,
                                             __m512 (&acc)[NT]) {
    const __m512i start = start_of(weights);
    for (int i = 0; i < NT; ++i) {
        const int64_t row_group = (i0 + i) * groups + g;
        const __m512i codes = _mm512_loadu_si512(xq.codes + row_group * kInt8Group);
        const __m512i dot = _mm512_dpbusd_epi32(start, codes, weights);
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

// ---- prefill --------------------------------------------------------------------------------

// Decodes rows [o0, o0 + mo) (mo <= 16) of W into the tile (see Int8Tile); rows past mo get
// zero weights, starts and scales.
void decode_tile(const Packed4bitMatrix& w, const int8_t* c8, int64_t o0, int64_t mo,
                 const Int8Tile& tile) {
    const int64_t groups = w.cols / kInt8Group, blocks_per_row = w.cols / w.blocksize;
    const int shift = __builtin_ctzll(static_cast<unsigned long long>(w.blocksize / kInt8Group));
    if (mo < kInt8TileRows) {  // the last tile: rows past mo stay zero
        __builtin_memset(tile.weights, 0, static_cast<size_t>(w.cols * kInt8TileRows));
        __builtin_memset(tile.start, 0, static_cast<size_t>(groups * kInt8TileRows * 4));
        __builtin_memset(tile.scale, 0, static_cast<size_t>(groups * kInt8TileRows * 4));
    }
    for (int64_t j = 0; j < mo; ++j) {
        const uint8_t* row = w.packed + (o0 + j) * w.cols / 2;
        for (int64_t g = 0; g < groups; ++g) {
            int8_t* dst = tile.weights + g * kInt8Group * kInt8TileRows + j * 4;
            const uint8_t* bytes = row + g * kInt8Group / 2;
            int32_t sum = 0;
            for (int64_t s = 0; s < kSteps; ++s) {
                for (int64_t b = 0; b < 2; ++b) {
                    const int8_t high = c8[bytes[2 * s + b] >> 4];
                    const int8_t low = c8[bytes[2 * s + b] & 0x0F];
                    dst[s * 64 + 2 * b] = high;  // element 4s + 2b
                    dst[s * 64 + 2 * b + 1] = low;
                    sum += high + low;
                }
            }
            tile.start[g * kInt8TileRows + j] = -128 * sum;
            tile.scale[g * kInt8TileRows + j] =
                block_scale(w, (o0 + j) * blocks_per_row + (g >> shift));
        }
    }
}

// The 4 activation codes of row_group's step s, in every lane.
inline __m512i codes4(const Int8Activations& xq, int64_t row_group, int64_t s) {
    int32_t four;
    __builtin_memcpy(&four, xq.codes + row_group * kInt8Group + 4 * s, 4);
    return _mm512_set1_epi32(four);
}

// The 16 outputs of the tile for NI activation rows from i0; mo of them are stored.
template <int NI>
void tile_rows(const Int8Tile& tile, const Int8Activations& xq, int64_t groups, int64_t i0,
               int64_t o0, int64_t mo, float* y, int64_t ldy) {
    __m512 acc[NI];
    for (int i = 0; i < NI; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
        const int8_t* wg = tile.weights + g * kInt8Group * kInt8TileRows;
        const __m512i start = _mm512_loadu_si512(tile.start + g * kInt8TileRows);
        __m512i dot[NI];
        for (int i = 0; i < NI; ++i) dot[i] = start;
        for (int64_t s = 0; s < kSteps; ++s) {
            const __m512i weights = _mm512_loadu_si512(wg + s * 64);
            for (int i = 0; i < NI; ++i)
                dot[i] = _mm512_dpbusd_epi32(dot[i], codes4(xq, (i0 + i) * groups + g, s), weights);
        }
        const __m512 scale = _mm512_loadu_ps(tile.scale + g * kInt8TileRows);
        for (int i = 0; i < NI; ++i) {
            const __m512 s =
                _mm512_mul_ps(scale, _mm512_set1_ps(xq.dot_scale[(i0 + i) * groups + g]));
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot[i]), s, acc[i]);
        }
    }
    const __mmask16 keep = static_cast<__mmask16>((1u << mo) - 1u);
    for (int i = 0; i < NI; ++i) _mm512_mask_storeu_ps(y + (i0 + i) * ldy + o0, keep, acc[i]);
}

}  // namespace

bool cpu_has_avx512_vnni() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

void gemv_int8_rows_vnni(const Packed4bitMatrix& w, const Int8Activations& xq, const int8_t* c8,
                         int64_t o0, int64_t o1, float* y, int64_t ldy) {
    const __m512i table = signed_table(c8);
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

void gemm_int8_tile_vnni(const Packed4bitMatrix& w, const Int8Activations& xq, const int8_t* c8,
                         int64_t o0, const Int8Tile& tile, float* y, int64_t ldy) {
    const int64_t mo = min_i64(kInt8TileRows, w.rows - o0);
    decode_tile(w, c8, o0, mo, tile);
    const int64_t groups = w.cols / kInt8Group;
    int64_t i0 = 0;
    for (; i0 + 8 <= xq.rows; i0 += 8) tile_rows<8>(tile, xq, groups, i0, o0, mo, y, ldy);
    if (xq.rows - i0 >= 4) {
        tile_rows<4>(tile, xq, groups, i0, o0, mo, y, ldy);
        i0 += 4;
    }
    for (; i0 < xq.rows; ++i0) tile_rows<1>(tile, xq, groups, i0, o0, mo, y, ldy);
}

}  // namespace qlora::kernels::detail
