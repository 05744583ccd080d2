// Scalar reference quantizers: one loop per rule, written for clarity, not speed.
#include "quant/quant4_ref.h"

#include <algorithm>
#include <cmath>

namespace qlora::quant {
namespace {

// Scales x by a block's absmax the way bitsandbytes does: a full block multiplies by the
// reciprocal of the clamped absmax; the partial last block divides by it.
inline float scale_into_unit(float x, float clamped_absmax, float reciprocal, bool partial) {
    return bnb::clamp_unit(partial ? x / clamped_absmax : x * reciprocal);
}

}  // namespace

void quantize_4bit_ref(const float* x, int64_t n, int64_t blocksize, const bnb::Codebook& cb,
                       uint8_t* packed, float* absmax, int64_t block_begin, int64_t block_end) {
    for (int64_t b = block_begin; b < block_end; ++b) {
        const int64_t start = b * blocksize;
        const int64_t len = std::min(blocksize, n - start);
        const bool partial = len < blocksize;
        float am = 0.0f;
        for (int64_t i = 0; i < len; ++i) am = std::max(am, std::fabs(x[start + i]));
        const float clamped = std::max(am, bnb::kMinAbsmax);
        const float reciprocal = 1.0f / clamped;
        absmax[b] = partial ? clamped : am;
        // Pairs (2j, 2j+1) of this block; the element after the last one quantizes 0.
        for (int64_t i = 0; i < len; i += 2) {
            uint8_t hi =
                bnb::encode_4bit(cb, scale_into_unit(x[start + i], clamped, reciprocal, partial));
            uint8_t lo = i + 1 < len
                             ? bnb::encode_4bit(cb, scale_into_unit(x[start + i + 1], clamped,
                                                                    reciprocal, partial))
                             : bnb::encode_4bit(cb, 0.0f);
            packed[(start + i) / 2] = bnb::pack_pair(hi, lo);
        }
    }
}

void absmax_quantize_ref(const float* v, int64_t n, float offset, int64_t blocksize,
                         const float* map_midpoints, uint8_t* codes, float* absmax) {
    const int64_t blocks = bnb::num_blocks(n, blocksize);
    for (int64_t b = 0; b < blocks; ++b) {
        const int64_t start = b * blocksize;
        const int64_t len = std::min(blocksize, n - start);
        const bool partial = len < blocksize;
        float am = 0.0f;
        for (int64_t i = 0; i < len; ++i) am = std::max(am, std::fabs(v[start + i] - offset));
        const float clamped = std::max(am, bnb::kMinAbsmax);
        const float reciprocal = 1.0f / clamped;
        absmax[b] = partial ? clamped : am;
        for (int64_t i = 0; i < len; ++i) {
            float centered = v[start + i] - offset;
            codes[start + i] = bnb::encode_8bit(
                map_midpoints, scale_into_unit(centered, clamped, reciprocal, partial));
        }
    }
}

void absmax_dequantize_ref(const uint8_t* codes, const float* nested, const float* map,
                           float offset, int64_t n, int64_t nested_blocksize, float* out) {
    for (int64_t b = 0; b < n; ++b) {
        float scaled = map[codes[b]] * nested[b / nested_blocksize];
        out[b] = scaled + offset;
    }
}

void dequantize_4bit_ref(const uint8_t* packed, const float* absmax, int64_t n, int64_t blocksize,
                         const bnb::Codebook& cb, float* out) {
    for (int64_t i = 0; i < n; ++i) {
        uint8_t byte = packed[i / 2];
        uint8_t code = (i % 2 == 0) ? bnb::high_nibble(byte) : bnb::low_nibble(byte);
        out[i] = cb.values[code] * absmax[i / blocksize];
    }
}

}  // namespace qlora::quant
