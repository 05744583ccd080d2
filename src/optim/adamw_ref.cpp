// Plain-loop AdamW references (fp32 and 8-bit blockwise states); see adamw_ref.h for the rule.
#include "optim/adamw_ref.h"

#include <algorithm>
#include <cmath>

#include "kernels/bnb_quant.h"

namespace qlora::optim {

AdamwScalars adamw_scalars(double lr, double beta1, double beta2, double eps, double weight_decay,
                           int64_t step) {
    AdamwScalars s;
    s.beta1 = static_cast<float>(beta1);
    s.one_minus_beta1 = static_cast<float>(1.0 - beta1);
    s.beta2 = static_cast<float>(beta2);
    s.one_minus_beta2 = static_cast<float>(1.0 - beta2);
    s.eps = static_cast<float>(eps);
    s.decay = static_cast<float>(1.0 - lr * weight_decay);
    const double t = static_cast<double>(step);
    s.step_size = static_cast<float>(lr / (1.0 - std::pow(beta1, t)));
    s.bc2_sqrt = static_cast<float>(std::sqrt(1.0 - std::pow(beta2, t)));
    return s;
}

void adamw_step_ref(const float* g, float* p, float* m, float* v, int64_t n,
                    const AdamwScalars& s) {
    for (int64_t i = 0; i < n; ++i) adamw_element(s, g[i], p[i], m[i], v[i]);
}

namespace {

// x scaled into [-1, 1] by its block's absmax, bitsandbytes-style, then the nearest code.
uint8_t requantize(float x, float absmax, bool partial, const float* midpoints) {
    return bnb::encode_8bit(midpoints, bnb::scale_into_unit(x, bnb::block_scale(absmax, partial)));
}

}  // namespace

void adamw8bit_step_ref(const float* g, float* p, uint8_t* m_codes, uint8_t* v_codes,
                        float* m_absmax, float* v_absmax, const Blockwise8bitMaps& maps, int64_t n,
                        int64_t block_begin, int64_t block_end, const AdamwScalars& s) {
    float m[kStateBlocksize];
    float v[kStateBlocksize];
    for (int64_t b = block_begin; b < block_end; ++b) {
        const int64_t start = b * kStateBlocksize;
        const int64_t len = std::min(kStateBlocksize, n - start);
        const bool partial = len < kStateBlocksize;
        float m_max = 0.0f;
        float v_max = 0.0f;
        for (int64_t j = 0; j < len; ++j) {
            const int64_t i = start + j;
            m[j] = maps.signed_map[m_codes[i]] * m_absmax[b];
            v[j] = maps.unsigned_map[v_codes[i]] * v_absmax[b];
            adamw_element(s, g[i], p[i], m[j], v[j]);
            m_max = std::max(m_max, std::fabs(m[j]));
            v_max = std::max(v_max, std::fabs(v[j]));
        }
        m_absmax[b] = m_max;
        v_absmax[b] = v_max;
        for (int64_t j = 0; j < len; ++j) {
            m_codes[start + j] = requantize(m[j], m_max, partial, maps.signed_midpoints);
            v_codes[start + j] = requantize(v[j], v_max, partial, maps.unsigned_midpoints);
        }
    }
}

}  // namespace qlora::optim
