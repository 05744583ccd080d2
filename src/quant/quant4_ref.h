// Plain scalar reference ("the truth") for blockwise 4-bit and 8-bit quantization with
// bitsandbytes' exact arithmetic. The CUDA kernels and the fast CPU paths are tested against it.
// Raw pointers and sizes, no LibTorch; element ranges let callers run blocks in parallel.
#pragma once

#include <cstdint>

#include "kernels/bnb_quant.h"

namespace qlora::quant {

// Quantizes blocks [block_begin, block_end) of x (n floats) into packed 4-bit codes and per-block
// absmax. Full blocks store absmax and scale by x * (1 / max(absmax, 1e-38)); a partial last block
// stores max(absmax, 1e-38) and divides (bitsandbytes' two code paths). An odd element count pads
// the last byte's low nibble with the code of 0. Blocks must cover whole bytes: blocksize is even.
void quantize_4bit_ref(const float* x, int64_t n, int64_t blocksize, const bnb::Codebook& cb,
                       uint8_t* packed, float* absmax, int64_t block_begin, int64_t block_end);

// 8-bit blockwise quantization of v - offset (the absmax vector) with a sorted 256-entry map,
// by the same full/partial-block rules; writes codes [n] and per-block absmax [n_blocks].
void absmax_quantize_ref(const float* v, int64_t n, float offset, int64_t blocksize,
                         const float* map_midpoints /* [255] */, uint8_t* codes, float* absmax);

// absmax[b] = map[codes[b]] * nested[b / nested_blocksize] + offset, in float32, two roundings.
void absmax_dequantize_ref(const uint8_t* codes, const float* nested, const float* map,
                           float offset, int64_t n, int64_t nested_blocksize, float* out);

// out[i] = code_value(nibble i) * absmax[i / blocksize] in float32, for i in [0, n).
void dequantize_4bit_ref(const uint8_t* packed, const float* absmax, int64_t n, int64_t blocksize,
                         const bnb::Codebook& cb, float* out);

}  // namespace qlora::quant
