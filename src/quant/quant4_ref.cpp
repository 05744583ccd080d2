// Scalar reference quantizers: one loop per rule, written for clarity, not speed.
#include "quant/quant4_ref.h"

#include <algorithm>
#include <cmath>

namespace qlora::quant {

void quantize_4bit_ref(const float* x, int64_t n, int64_t blocksize, const bnb::Codebook& cb,
                       uint8_t* packed, float* absmax, int64_t block_begin, int64_t block_end) {
    for (int64_t b = block_begin; b < block_end; ++b) {
        const int64_t start = b * blocksize;
        const int64_t len = std::min(blocksize, n - start);
        const bool partial = len < blocksize;
        float am = 0.0f;
        for (int64_t i = 0; i < len; ++i) am = std::max(am, std::fabs(x[start + i]));
        const bnb::BlockScale scale = bnb::block_scale(am, partial);
        absmax[b] = bnb::stored_absmax(am, scale);
        // Pairs (2j, 2j+1) of this block; the element after the last one quantizes 0.
        for (int64_t i = 0; i < len; i += 2) {
            uint8_t hi = bnb::encode_4bit(cb, bnb::scale_into_unit(x[start + i], scale));
            uint8_t lo = i + 1 < len
                             ? bnb::encode_4bit(cb, bnb::scale_into_unit(x[start + i + 1], scale))
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
        const bnb::BlockScale scale = bnb::block_scale(am, partial);
        absmax[b] = bnb::stored_absmax(am, scale);
        for (int64_t i = 0; i < len; ++i) {
            float centered = v[start + i] - offset;
            codes[start + i] =
                bnb::encode_8bit(map_midpoints, bnb::scale_into_unit(centered, scale));
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
