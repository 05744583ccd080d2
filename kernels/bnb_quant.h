// bitsandbytes' blockwise quantization facts shared by host and device code: the NF4 / FP4
// codebooks, block sizes, the block-scale rule, the nearest-code rules (4-bit and the 8-bit
// dynamic map) and nibble packing, exactly as bitsandbytes defines them (DESIGN.md section 4).
// Plain C++ (no LibTorch): included by kernels/*.cu and by src/quant/.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define QLORA_HD __host__ __device__ __forceinline__
#else
#define QLORA_HD inline
#endif
#if defined(__CUDA_ARCH__)
#define QLORA_UNROLL _Pragma("unroll")
#else
#define QLORA_UNROLL
#endif

namespace qlora::bnb {

enum class QuantType : int32_t { kNF4 = 0, kFP4 = 1 };

constexpr int64_t kMinBlocksize = 32;
constexpr int64_t kMaxBlocksize = 4096;
constexpr int64_t kDefaultBlocksize = 64;
constexpr int64_t kNestedBlocksize = 256;  // double quantization: 256 absmax per nested block
constexpr int kDynamicMapSize = 256;       // signed 8-bit dynamic map for the nested absmax
// bitsandbytes clamps a block's absmax to this before dividing (an all-zero block stays zero).
constexpr float kMinAbsmax = 1e-38f;

// The 16 NF4 levels, index = 4-bit code (bitsandbytes get_4bit_type("nf4"), exact float32).
#define QLORA_NF4_CODES                                                                         \
    -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,                   \
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,              \
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f, \
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f

// FP4 (bitsandbytes flavour): bit 3 = sign, low 3 bits index {0, 0.0625, 8, 12, 4, 6, 2, 3},
// normalised by 12 in float32 (bitsandbytes divides its table by its absolute maximum). Code 8 is
// -0.0 as in bitsandbytes' CUDA and native CPU dequantizers (its Python quant_map stores +0.0;
// only the sign of a zero output differs, and Quant4Tensor::code() writes bitsandbytes' +0.0).
#define QLORA_FP4_CODES                                                                            \
    0.0f, 0.0625f / 12.0f, 8.0f / 12.0f, 1.0f, 4.0f / 12.0f, 6.0f / 12.0f, 2.0f / 12.0f,           \
        3.0f / 12.0f, -0.0f, -0.0625f / 12.0f, -8.0f / 12.0f, -1.0f, -4.0f / 12.0f, -6.0f / 12.0f, \
        -2.0f / 12.0f, -3.0f / 12.0f

// Encoding sorts the codebook, takes float32 midpoints (a + b) / 2 of neighbours, and picks the
// sorted position = number of midpoints strictly below x (torch.bucketize, right=False): a value
// exactly on a midpoint goes to the lower code. kXxxSortedCodes maps that position to the 4-bit
// code. FP4 holds zero twice (codes 0 and 8); a stable sort keeps code 0 first, so tiny positive
// values land on code 8, as bitsandbytes does.
#define QLORA_NF4_SORTED_CODES 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15
#define QLORA_FP4_SORTED_CODES 11, 10, 13, 12, 15, 14, 9, 0, 8, 1, 6, 7, 4, 5, 2, 3

struct Codebook {
    float values[16];     // value of each 4-bit code
    float midpoints[15];  // sorted-neighbour midpoints
    uint8_t sorted[16];   // sorted position -> 4-bit code
};

// Builds the codebook tables; constexpr so host code gets them at compile time and kernels can
// copy them into constant memory.
constexpr Codebook make_codebook(QuantType type) {
    Codebook cb{};
    const float nf4[16] = {QLORA_NF4_CODES};
    const float fp4[16] = {QLORA_FP4_CODES};
    const uint8_t nf4_sorted[16] = {QLORA_NF4_SORTED_CODES};
    const uint8_t fp4_sorted[16] = {QLORA_FP4_SORTED_CODES};
    for (int i = 0; i < 16; ++i) {
        cb.values[i] = type == QuantType::kNF4 ? nf4[i] : fp4[i];
        cb.sorted[i] = type == QuantType::kNF4 ? nf4_sorted[i] : fp4_sorted[i];
    }
    for (int i = 0; i < 15; ++i) {
        cb.midpoints[i] = (cb.values[cb.sorted[i]] + cb.values[cb.sorted[i + 1]]) / 2.0f;
    }
    return cb;
}

// x is already scaled into [-1, 1]. Returns the 4-bit code (bitsandbytes' rule, see above).
QLORA_HD uint8_t encode_4bit(const Codebook& cb, float x) {
    int position = 0;
    QLORA_UNROLL
    for (int i = 0; i < 15; ++i) position += cb.midpoints[i] < x ? 1 : 0;
    return cb.sorted[position];
}

// Nearest entry of a sorted 256-entry map (the dynamic map) by the same midpoint rule:
// the number of midpoints strictly below x, found by binary search.
QLORA_HD uint8_t encode_8bit(const float* midpoints /* [255] */, float x) {
    int lo = 0, hi = 255;  // answer in [lo, hi]
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (midpoints[mid] < x) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return static_cast<uint8_t>(lo);
}

QLORA_HD float clamp_unit(float x) { return x < -1.0f ? -1.0f : (x > 1.0f ? 1.0f : x); }

// IEEE round-to-nearest quotient and product on host and device alike: device code names the _rn
// intrinsics, which nvcc never contracts into an FMA nor approximates (-use_fast_math included).
QLORA_HD float div_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fdiv_rn(a, b);
#else
    return a / b;
#endif
}
QLORA_HD float mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

// bitsandbytes' block-scale rule, the one place it is written (the 4-bit quantizers, the 8-bit
// double quantization and the 8-bit optimizer state, CPU references and CUDA kernels alike): a
// block's absmax is clamped to kMinAbsmax (an all-zero block scales 0 to 0); a full block
// multiplies by the reciprocal of the clamped absmax, the partial last block divides by the
// clamped absmax (bitsandbytes' two code paths; they round differently). absmax is the max of
// |x| over the block, never NaN (a max skips NaN elements).
struct BlockScale {
    float clamped;
    float reciprocal;
    bool partial;
};
QLORA_HD BlockScale block_scale(float absmax, bool partial) {
    const float clamped = absmax < kMinAbsmax ? kMinAbsmax : absmax;
    return BlockScale{clamped, div_rn(1.0f, clamped), partial};
}
// x scaled into [-1, 1] by its block's scale, ready for the nearest-code rule.
QLORA_HD float scale_into_unit(float x, const BlockScale& s) {
    return clamp_unit(s.partial ? div_rn(x, s.clamped) : mul_rn(x, s.reciprocal));
}
// The absmax a blockwise quantizer stores for the block (4-bit weights, nested absmax): the absmax
// itself for a full block, the clamped one for a partial block. (The 8-bit optimizer state stores
// the unclamped absmax either way.)
QLORA_HD float stored_absmax(float absmax, const BlockScale& s) {
    return s.partial ? s.clamped : absmax;
}

// Packing: byte j holds element 2j in its HIGH nibble and element 2j+1 in its low nibble.
QLORA_HD uint8_t pack_pair(uint8_t first, uint8_t second) {
    return static_cast<uint8_t>((first << 4) | (second & 0x0F));
}
QLORA_HD uint8_t high_nibble(uint8_t byte) { return static_cast<uint8_t>(byte >> 4); }
QLORA_HD uint8_t low_nibble(uint8_t byte) { return static_cast<uint8_t>(byte & 0x0F); }

constexpr int64_t num_blocks(int64_t numel, int64_t blocksize) {
    return (numel + blocksize - 1) / blocksize;
}
constexpr int64_t packed_bytes(int64_t numel) { return (numel + 1) / 2; }

constexpr bool valid_blocksize(int64_t blocksize) {
    return blocksize >= kMinBlocksize && blocksize <= kMaxBlocksize &&
           (blocksize & (blocksize - 1)) == 0;
}

}  // namespace qlora::bnb
