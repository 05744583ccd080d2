// AVX-512 VNNI bodies of the int8-activation 4-bit matmul (contract in quant4_matmul_cpu.h).
// This translation unit alone is compiled with -mavx512f -mavx512bw -mavx512vnni
// (CMakeLists.txt); quant4_matmul_cpu.cpp calls it only when the CPU reports all three.
//
// Sign: vpdpbusd multiplies unsigned by signed bytes. The weights go in as u = c8 + 128 in
// [1, 255], the activation codes q signed, so Σ u·q = Σ c8·q + 128·Σ q: each group's sum starts
// from -128·code_sum and ends on the exact Σ c8·q (|Σ| <= 64·127·127 < 2^24, exact in int32 and
// in float32; partial sums stay within 64·255·127 + 128·64·127 < 2^31). Then one float32
// multiply and multiply-add per group apply scale(block) · amax/127².
//
// Decode (fewer than kInt8GemmMinRows activation rows): one row of W at a time, its packed bytes
// read front to back (one stream per thread, which the hardware prefetchers follow at full
// bandwidth). A group's 32 bytes decode to 64 weights in the octet order of the activation codes;
// the lanes are 16 partial sums of the one output, added up at the end.
//
// Prefill (more rows): the 16 lanes are the 16 outputs of a tile of 16 rows of W. A group of the
// tile is 16 rows x 32 packed bytes, loaded as 8 vectors and transposed so that vector k holds in
// lane j the 4 bytes of row j that pack the group's columns 8k..8k+7. Their high nibbles (columns
// 8k, +2, +4, +6) and low nibbles (+1, +3, +5, +7) go through vpshufb, and the tile keeps them:
// per step of 4 columns, 16 rows x 4 weights. Each activation row then adds, per step, one
// vpdpbusd of the step's 4 codes broadcast to every lane, and the group's scaling is one
// multiply-add for 16 outputs: no horizontal sums, no per-output scalar work, and the decoded
// tile serves every activation row.
#include <immintrin.h>

#include <cmath>

#include "kernels/avx512_sum.h"
#include "kernels/quant4_matmul_cpu.h"

namespace qlora::kernels::detail {
namespace {

static_assert(bnb::kNestedBlocksize == 256, "tile_scales shifts block indices by 8");

// No std:: templates here (an out-of-line copy compiled with these flags could be the one the
// linker keeps).
inline int64_t min_i64(int64_t a, int64_t b) { return a < b ? a : b; }

constexpr int64_t kGroupBytes = kInt8Group / 2;  // packed bytes of one row's group
constexpr int64_t kSteps = kInt8Group / 4;       // vpdpbusd steps of 4 columns per group

// u = c8 + 128 of the 16 codes in each 128-bit lane (vpshufb looks up within a lane).
inline __m512i unsigned_table(const int8_t* c8) {
    alignas(16) uint8_t t[16];
    for (int k = 0; k < 16; ++k) t[k] = static_cast<uint8_t>(c8[k] + 128);
    return _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(t)));
}

// ---- decode -------------------------------------------------------------------------------------

// How far ahead of the packed stream the decode prefetches (1 KiB of codes = 2048 weights).
constexpr int64_t kRowPrefetchBytes = 1024;

// The 64 unsigned weights of one row's group (32 packed bytes) in the activations' octet order:
// dword 2d holds the high nibbles of packed dword d (columns 8d, +2, +4, +6), dword 2d + 1 its
// low nibbles. Each packed dword is copied to two places, the even copy shifted by 4.
inline __m512i decode64(const uint8_t* p, __m512i table) {
    const __m512i twice = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512i shifts = _mm512_set_epi32(0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);
    const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m512i copies = _mm512_permutexvar_epi32(twice, _mm512_castsi256_si512(bytes));
    const __m512i index =
        _mm512_and_si512(_mm512_srlv_epi32(copies, shifts), _mm512_set1_epi8(0x0F));
    return _mm512_shuffle_epi8(table, index);
}

// acc[i] += scale · dot_scale · (the exact Σ c8·q of group g) for NT activation rows from i0.
template <int NT>
[[gnu::always_inline]] inline void group_dot(__m512i weights, const Int8Activations& xq, int64_t i0,
                                             int64_t groups, int64_t g, float scale,
                                             __m512 (&acc)[NT]) {
    for (int i = 0; i < NT; ++i) {
        const int64_t rg = (i0 + i) * groups + g;
        const __m512i codes = _mm512_loadu_si512(xq.codes + rg * kInt8Group);
        // the lanes are summed at the end: the correction goes into one of them
        const __m512i start = _mm512_maskz_set1_epi32(1, -128 * xq.code_sum[rg]);
        const __m512i dot = _mm512_dpbusd_epi32(start, weights, codes);
        const __m512 s = _mm512_set1_ps(scale * xq.dot_scale[rg]);
        acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc[i]);
    }
}

// One row o of W against NT activation rows from i0 (see the file comment). Groups go in pairs
// into two accumulator sets, so that the multiply-add latency chain does not bound a single-row
// decode.
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
        _mm_prefetch(reinterpret_cast<const char*>(p) + kRowPrefetchBytes, _MM_HINT_T0);
        group_dot<NT>(decode64(p, table), xq, i0, groups, g, block_scale(w, b0 + (g >> shift)),
                      even);
        group_dot<NT>(decode64(p + kGroupBytes, table), xq, i0, groups, g + 1,
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

// The rows of one tile. Lanes past `count` repeat the last row (valid memory; never stored).
struct TileRows {
    const uint8_t* row[kInt8TileRows];  // each row's packed bytes
    __m512i first_block;                // lane j: index of its row's first block
    int64_t o0 = 0;                     // the tile's first row of W
    int64_t count = 0;                  // rows of W in the tile (<= 16)
    const uint8_t* next = nullptr;      // the next tile's first byte (perhaps past W: prefetched)
};

TileRows tile_rows_of(const Packed4bitMatrix& w, int64_t tile) {
    TileRows r;
    r.o0 = tile * kInt8TileRows;
    r.count = min_i64(kInt8TileRows, w.rows - r.o0);
    alignas(64) int32_t first[kInt8TileRows];
    for (int64_t j = 0; j < kInt8TileRows; ++j) {
        const int64_t o = r.o0 + min_i64(j, r.count - 1);
        r.row[j] = w.packed + o * w.cols / 2;
        first[j] = static_cast<int32_t>(o * (w.cols / w.blocksize));  // < 2^31: supported()
    }
    r.first_block = _mm512_load_si512(first);
    r.next = w.packed + (r.o0 + kInt8TileRows) * w.cols / 2;
    return r;
}

// block_scale of each lane's block b of its row, 16 at a time: a gather of absmax, or under double
// quantization the code byte (from the aligned dword that holds it, which never crosses a page),
// map[code] times nested[block / 256], then + offset: block_scale's two roundings.
inline __m512 tile_scales(const Packed4bitMatrix& w, const TileRows& r, int64_t b) {
    const __m512i block = _mm512_add_epi32(r.first_block, _mm512_set1_epi32(static_cast<int>(b)));
    if (w.absmax != nullptr) return _mm512_i32gather_ps(block, w.absmax, 4);
    const auto address = reinterpret_cast<uintptr_t>(w.absmax_codes);
    const __m512i byte = _mm512_add_epi32(block, _mm512_set1_epi32(static_cast<int>(address & 3)));
    const __m512i dword_at = _mm512_andnot_si512(_mm512_set1_epi32(3), byte);
    const __m512i dwords =
        _mm512_i32gather_epi32(dword_at, reinterpret_cast<const void*>(address & ~uintptr_t{3}), 1);
    const __m512i shift = _mm512_slli_epi32(_mm512_and_si512(byte, _mm512_set1_epi32(3)), 3);
    const __m512i code =
        _mm512_and_si512(_mm512_srlv_epi32(dwords, shift), _mm512_set1_epi32(0xFF));
    const __m512 mapped = _mm512_i32gather_ps(code, w.map, 4);
    const __m512 nested = _mm512_i32gather_ps(_mm512_srli_epi32(block, 8), w.nested, 4);
    return _mm512_add_ps(_mm512_mul_ps(mapped, nested), _mm512_set1_ps(w.offset));
}

// The tile's packed bytes of one group (from byte `at` of each row), transposed: v[k] lane j =
// the 4 bytes of row j at at + 4k. Vector p first holds row p in its low half and row p + 8 in
// its high half; each half then goes through the 8x8 dword transpose (dword unpacks, qword
// unpacks: vector m has in 128-bit lane l the 4 rows' dword 4·(l % 2) + m), and a qword permute
// puts rows 0-3, 4-7, 8-11, 12-15 of one dword in lanes 0..3.
inline void load_transposed(const TileRows& r, int64_t at, __m512i (&v)[8]) {
    __m512i z[8], t[8];
    for (int p = 0; p < 8; ++p) {
        const __m256i low = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.row[p] + at));
        const __m256i high =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.row[p + 8] + at));
        z[p] = _mm512_inserti64x4(_mm512_castsi256_si512(low), high, 1);
    }
    for (int p = 0; p < 8; p += 2) {
        t[p] = _mm512_unpacklo_epi32(z[p], z[p + 1]);
        t[p + 1] = _mm512_unpackhi_epi32(z[p], z[p + 1]);
    }
    for (int h = 0; h < 8; h += 4) {  // rows 0-3 (h = 0) and 4-7 (h = 4) of each half
        z[h + 0] = _mm512_unpacklo_epi64(t[h], t[h + 2]);
        z[h + 1] = _mm512_unpackhi_epi64(t[h], t[h + 2]);
        z[h + 2] = _mm512_unpacklo_epi64(t[h + 1], t[h + 3]);
        z[h + 3] = _mm512_unpackhi_epi64(t[h + 1], t[h + 3]);
    }
    const __m512i even_lanes = _mm512_set_epi64(13, 12, 5, 4, 9, 8, 1, 0);
    const __m512i odd_lanes = _mm512_set_epi64(15, 14, 7, 6, 11, 10, 3, 2);
    for (int m = 0; m < 4; ++m) {
        v[m] = _mm512_permutex2var_epi64(z[m], even_lanes, z[m + 4]);
        v[m + 4] = _mm512_permutex2var_epi64(z[m], odd_lanes, z[m + 4]);
    }
}

// A tile's 16 rows, read a group at a time, are 16 interleaved streams, more than the hardware
// prefetchers follow from DRAM (measured on a decode-shaped read: 60-80% of the bandwidth of one
// stream). The tile's bytes are contiguous, though, and so is the next tile's: while group g of a
// tile is decoded, group g's share of the next tile's bytes (512 of them, 8 cache lines) is
// prefetched in address order.
constexpr int64_t kSliceBytes = kInt8TileRows * kGroupBytes;

inline void prefetch_next(const TileRows& r, int64_t g) {
    const char* slice = reinterpret_cast<const char*>(r.next) + g * kSliceBytes;
    for (int64_t line = 0; line < kSliceBytes; line += 64) _mm_prefetch(slice + line, _MM_HINT_T1);
}

// The unsigned weights of one transposed dword vector: its high nibbles (the octet's columns
// 0, 2, 4, 6 in each lane) and its low nibbles (columns 1, 3, 5, 7).
inline void decode_octet(__m512i packed, __m512i table, __m512i& high, __m512i& low) {
    const __m512i mask = _mm512_set1_epi8(0x0F);
    high = _mm512_shuffle_epi8(table, _mm512_and_si512(_mm512_srli_epi16(packed, 4), mask));
    low = _mm512_shuffle_epi8(table, _mm512_and_si512(packed, mask));
}

// 4 activation codes (int8) in every lane.
inline __m512i broadcast4(const int8_t* codes) {
    int32_t four;
    __builtin_memcpy(&four, codes, 4);
    return _mm512_set1_epi32(four);
}

// Where a group's vpdpbusd sum starts for one activation row group (see the file comment).
inline __m512i start_of(const Int8Activations& xq, int64_t row_group) {
    return _mm512_set1_epi32(-128 * xq.code_sum[row_group]);
}

// acc[i] += the group's integer dot (lanes: the tile's outputs) · scale · dot_scale of row i.
inline __m512 scaled_add(__m512i dot, __m512 scale, float dot_scale, __m512 acc) {
    const __m512 s = _mm512_mul_ps(scale, _mm512_set1_ps(dot_scale));
    return _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), s, acc);
}

template <int NT>
inline void store_rows(const __m512 (&acc)[NT], const TileRows& r, int64_t i0, float* y,
                       int64_t ldy) {
    const auto keep = static_cast<__mmask16>((1u << r.count) - 1u);
    for (int i = 0; i < NT; ++i) _mm512_mask_storeu_ps(y + (i0 + i) * ldy + r.o0, keep, acc[i]);
}

// Decodes the tile's rows into `tile` (see Int8Tile).
void fill_tile(const Packed4bitMatrix& w, __m512i table, const TileRows& r, const Int8Tile& tile) {
    const int64_t groups = w.cols / kInt8Group, per_block = w.blocksize / kInt8Group;
    for (int64_t b = 0, g = 0; g < groups; ++b) {
        const __m512 scale = tile_scales(w, r, b);
        for (const int64_t end = g + per_block; g < end; ++g) {
            __m512i v[8];
            prefetch_next(r, g);
            load_transposed(r, g * kGroupBytes, v);
            uint8_t* dst = tile.weights + g * kInt8Group * kInt8TileRows;
            for (int k = 0; k < 8; ++k) {
                __m512i high, low;
                decode_octet(v[k], table, high, low);
                _mm512_store_si512(dst + (2 * k) * 64, high);
                _mm512_store_si512(dst + (2 * k + 1) * 64, low);
            }
            _mm512_storeu_ps(tile.scale + g * kInt8TileRows, scale);
        }
    }
}

// The tile's 16 outputs for NI activation rows from i0, from the decoded tile.
template <int NI>
void tile_rows(const Int8Tile& tile, const Int8Activations& xq, int64_t groups, int64_t i0,
               const TileRows& r, float* y, int64_t ldy) {
    __m512 acc[NI];
    for (int i = 0; i < NI; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t g = 0; g < groups; ++g) {
        const uint8_t* wg = tile.weights + g * kInt8Group * kInt8TileRows;
        __m512i dot[NI];
        for (int i = 0; i < NI; ++i) dot[i] = start_of(xq, (i0 + i) * groups + g);
        for (int64_t s = 0; s < kSteps; ++s) {
            const __m512i weights = _mm512_load_si512(wg + s * 64);
            for (int i = 0; i < NI; ++i) {
                const int8_t* codes = xq.codes + ((i0 + i) * groups + g) * kInt8Group + 4 * s;
                dot[i] = _mm512_dpbusd_epi32(dot[i], weights, broadcast4(codes));
            }
        }
        const __m512 scale = _mm512_loadu_ps(tile.scale + g * kInt8TileRows);
        for (int i = 0; i < NI; ++i)
            acc[i] = scaled_add(dot[i], scale, xq.dot_scale[(i0 + i) * groups + g], acc[i]);
    }
    store_rows<NI>(acc, r, i0, y, ldy);
}

// ---- activations --------------------------------------------------------------------------

// The largest lane (a store and a loop: GCC 12's reduction intrinsics warn in their header).
inline float max_lane(__m512 v) {
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, v);
    float m = lanes[0];
    for (float lane : lanes) m = lane > m ? lane : m;
    return m;
}

inline int32_t sum_lanes(__m512i v) {
    alignas(64) int32_t lanes[16];
    _mm512_store_si512(lanes, v);
    int32_t s = 0;
    for (int32_t lane : lanes) s += lane;
    return s;
}

// One group of 64 floats into codes (octet order), its code sum and its dot scale; false when it
// holds a NaN or an infinity. The same arithmetic as the reference: amax of |x|, one float
// multiply by 127/amax, vcvtps2dq's round-half-even (the default MXCSR mode nearbyint follows).
bool quantize_group(const float* src, int8_t* codes, int32_t& code_sum, float& dot_scale) {
    const __m512i octets = _mm512_set_epi32(15, 13, 11, 9, 14, 12, 10, 8, 7, 5, 3, 1, 6, 4, 2, 0);
    const __m512 infinity = _mm512_set1_ps(INFINITY);
    __m512 part[4], amax = _mm512_setzero_ps();
    __mmask16 finite = 0xFFFF;
    for (int c = 0; c < 4; ++c) {
        part[c] = _mm512_loadu_ps(src + 16 * c);
        const __m512 magnitude = _mm512_abs_ps(part[c]);
        finite &= _mm512_cmp_ps_mask(magnitude, infinity, _CMP_LT_OQ);  // false for NaN too
        amax = _mm512_max_ps(amax, magnitude);
    }
    if (finite != 0xFFFF) return false;
    const float largest = max_lane(amax);
    const __m512 inverse = _mm512_set1_ps(int8_inverse(largest));
    __m512i sum = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
        const __m512 ordered = _mm512_permutexvar_ps(octets, part[c]);
        const __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(ordered, inverse));
        sum = _mm512_add_epi32(sum, q);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 16 * c), _mm512_cvtepi32_epi8(q));
    }
    code_sum = sum_lanes(sum);
    dot_scale = int8_dot_scale(largest);
    return true;
}

}  // namespace

bool cpu_has_avx512_vnni() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

bool quantize_activations_int8_vnni(const float* x, int64_t n, int64_t ldx, Int8Activations& out) {
    const int64_t groups = out.cols / kInt8Group;
    for (int64_t i = 0; i < n; ++i) {
        for (int64_t g = 0; g < groups; ++g) {
            const int64_t rg = i * groups + g;
            if (!quantize_group(x + i * ldx + g * kInt8Group, out.codes + rg * kInt8Group,
                                out.code_sum[rg], out.dot_scale[rg])) {
                return false;
            }
        }
    }
    return true;
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

void gemm_int8_tiles_vnni(const Packed4bitMatrix& w, const Int8Activations& xq, const int8_t* c8,
                          int64_t t0, int64_t t1, const Int8Tile& tile, float* y, int64_t ldy) {
    const __m512i table = unsigned_table(c8);
    const int64_t groups = w.cols / kInt8Group;
    for (int64_t t = t0; t < t1; ++t) {
        const TileRows r = tile_rows_of(w, t);
        fill_tile(w, table, r, tile);
        int64_t i0 = 0;
        for (; i0 + 8 <= xq.rows; i0 += 8) tile_rows<8>(tile, xq, groups, i0, r, y, ldy);
        if (xq.rows - i0 >= 4) {
            tile_rows<4>(tile, xq, groups, i0, r, y, ldy);
            i0 += 4;
        }
        for (; i0 < xq.rows; ++i0) tile_rows<1>(tile, xq, groups, i0, r, y, ldy);
    }
}

}  // namespace qlora::kernels::detail
