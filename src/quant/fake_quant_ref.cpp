// Scalar fake quantizers: one loop per scheme, written for clarity, not speed.
#include "quant/fake_quant_ref.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

#include "quant/quant4_ref.h"

namespace qlora::quant {

void fake_quant_int4_ref(const float* w, int64_t rows, int64_t cols, int64_t group, float* out,
                         uint8_t* in_range) {
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t g0 = 0; g0 < cols; g0 += group) {
            const int64_t g1 = std::min(cols, g0 + group);
            const float* x = w + r * cols;
            float amax = 0.0f,
                  m = 0.0f;  // m: the signed element of largest magnitude, first on ties
            for (int64_t j = g0; j < g1; ++j) {
                if (std::fabs(x[j]) > amax) {
                    amax = std::fabs(x[j]);
                    m = x[j];
                }
            }
            const float d = m / -8.0f;
            const float id = d != 0.0f ? 1.0f / d : 0.0f;
            const float d16 = static_cast<float>(c10::Half(d));  // Q4_0 stores d in fp16
            for (int64_t j = g0; j < g1; ++j) {
                const float shifted = x[j] * id + 8.5f;  // in [0.5, 16.5]
                const float code = std::min(15.0f, std::trunc(shifted));
                out[r * cols + j] = (code - 8.0f) * d16;
                if (in_range != nullptr) in_range[r * cols + j] = shifted < 16.0f;
            }
        }
    }
}

void fake_quant_int8_ref(const float* w, int64_t rows, int64_t cols, float* out,
                         uint8_t* in_range) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* x = w + r * cols;
        float amax = 0.0f;
        for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127.0f;
        for (int64_t j = 0; j < cols; ++j) {
            const float q = d > 0.0f ? std::nearbyint(x[j] / d) : 0.0f;
            out[r * cols + j] = std::clamp(q, -127.0f, 127.0f) * d;
            if (in_range != nullptr) in_range[r * cols + j] = q >= -127.0f && q <= 127.0f;
        }
    }
}

void fake_quant_act_int8_ref(const float* x, int64_t rows, int64_t cols, float* out,
                             uint8_t* in_range) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = x + r * cols;
        float lo = 0.0f, hi = 0.0f;  // the range always holds 0, so 0 is exact
        for (int64_t j = 0; j < cols; ++j) {
            lo = std::min(lo, row[j]);
            hi = std::max(hi, row[j]);
        }
        const float d = std::max((hi - lo) / 255.0f, FLT_EPSILON);
        const float z = std::clamp(-128.0f - std::nearbyint(lo / d), -128.0f, 127.0f);
        for (int64_t j = 0; j < cols; ++j) {
            const float q = std::nearbyint(row[j] / d) + z;
            out[r * cols + j] = (std::clamp(q, -128.0f, 127.0f) - z) * d;
            if (in_range != nullptr) in_range[r * cols + j] = q >= -128.0f && q <= 127.0f;
        }
    }
}

void fake_quant_nf4_ref(const float* w, int64_t n, int64_t blocksize, bool double_quant,
                        const bnb::Codebook& cb, const float* dynamic_map, float* out) {
    const int64_t blocks = bnb::num_blocks(n, blocksize);
    std::vector<uint8_t> packed(bnb::packed_bytes(n));
    std::vector<float> absmax(blocks);
    quantize_4bit_ref(w, n, blocksize, cb, packed.data(), absmax.data(), 0, blocks);
    if (double_quant) {
        double sum = 0.0;
        for (float a : absmax) sum += a;
        const float offset = static_cast<float>(sum / static_cast<double>(blocks));
        std::vector<float> midpoints(bnb::kDynamicMapSize - 1);
        for (int64_t i = 0; i + 1 < bnb::kDynamicMapSize; ++i) {
            midpoints[i] = (dynamic_map[i] + dynamic_map[i + 1]) / 2.0f;
        }
        std::vector<uint8_t> codes(blocks);
        std::vector<float> nested(bnb::num_blocks(blocks, bnb::kNestedBlocksize));
        absmax_quantize_ref(absmax.data(), blocks, offset, bnb::kNestedBlocksize, midpoints.data(),
                            codes.data(), nested.data());
        absmax_dequantize_ref(codes.data(), nested.data(), dynamic_map, offset, blocks,
                              bnb::kNestedBlocksize, absmax.data());
    }
    dequantize_4bit_ref(packed.data(), absmax.data(), n, blocksize, cb, out);
}

}  // namespace qlora::quant
