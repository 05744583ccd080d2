// Plain scalar references ("the truth") for the fake quantizers of fake_quant.h: loops over raw
// float32 arrays, no LibTorch. The tensor versions are tested against these element by element.
// Each writes Q(x) into `out` and, where given (non-null), the STE in-range flag into `in_range`.
#pragma once

#include <cstdint>

#include "kernels/bnb_quant.h"

namespace qlora::quant {

// int4 Q4_0-style per group along each row of w [rows, cols]: groups of `group` elements, the last
// one of a row shorter when cols % group != 0.
void fake_quant_int4_ref(const float* w, int64_t rows, int64_t cols, int64_t group, float* out,
                         uint8_t* in_range);

// int8 symmetric per row of w [rows, cols], scale max|row| / 127.
void fake_quant_int8_ref(const float* w, int64_t rows, int64_t cols, float* out, uint8_t* in_range);

// int8 asymmetric per row (token) of x [rows, cols], dynamic range [min(row, 0), max(row, 0)].
void fake_quant_act_int8_ref(const float* x, int64_t rows, int64_t cols, float* out,
                             uint8_t* in_range);

// NF4 (or FP4) blockwise over n flattened elements: quantize, optionally double-quantize the absmax
// with the sorted 256-entry `dynamic_map` (offset = the float64 mean of absmax rounded to float32),
// then dequantize. Nothing is clipped, so there is no in-range output.
void fake_quant_nf4_ref(const float* w, int64_t n, int64_t blocksize, bool double_quant,
                        const bnb::Codebook& cb, const float* dynamic_map, float* out);

}  // namespace qlora::quant
