// AdamW update rules on raw float arrays: the CPU truth (plain loops, no LibTorch) that
// kernels/adamw.cu reproduces bit for bit, for fp32 states and for 8-bit blockwise states.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/adamw_format.h"

namespace qlora::optim {

using adamw::AdamwScalars;
using adamw::Blockwise8bitMaps;
using adamw::kStateBlocksize;
using adamw::state_blocks;

// AdamW (Loshchilov & Hutter), as torch.optim.AdamW computes it, at step t >= 1 with gradient g:
//   p <- p * (1 - lr * wd)                            decoupled weight decay, applied first
//   m <- b1 * m + (1 - b1) * g                        first moment
//   v <- b2 * v + (1 - b2) * g^2                      second moment
//   p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// The last line is p - lr * m_hat / (sqrt(v_hat) + eps) with the bias corrections folded into two
// scalars. bitsandbytes' CPU backend uses the same order; its CUDA kernels decay after the update
// (a difference of order lr^2 * wd).
//
AdamwScalars adamw_scalars(double lr, double beta1, double beta2, double eps, double weight_decay,
                           int64_t step);

// One element; inline so the CPU loops and (through the same formula in adamw.cu) the kernel agree.
// Every operation rounds on its own: no fused multiply-adds.
inline void adamw_element(const AdamwScalars& s, float g, float& p, float& m, float& v);

// fp32 states: p, m, v [n] updated in place from g [n].
void adamw_step_ref(const float* g, float* p, float* m, float* v, int64_t n, const AdamwScalars& s);

// 8-bit blockwise states: see kernels/adamw_format.h for the layout and the requantization rule.
// Updates blocks [block_begin, block_end) of tensors with n elements.
void adamw8bit_step_ref(const float* g, float* p, uint8_t* m_codes, uint8_t* v_codes,
                        float* m_absmax, float* v_absmax, const Blockwise8bitMaps& maps, int64_t n,
                        int64_t block_begin, int64_t block_end, const AdamwScalars& s);

// ---------------------------------------------------------------------------------------------
inline void adamw_element(const AdamwScalars& s, float g, float& p, float& m, float& v) {
    // One rounding per operation. GCC fuses a*b+c only when FMA instructions are enabled, which our
    // x86-64 builds do not do; the kernel uses explicit _rn intrinsics for the same effect.
    p = p * s.decay;
    const float m_decayed = s.beta1 * m;
    const float m_new_part = s.one_minus_beta1 * g;
    m = m_decayed + m_new_part;
    const float v_decayed = s.beta2 * v;
    const float g2 = g * g;
    const float v_new_part = s.one_minus_beta2 * g2;
    v = v_decayed + v_new_part;
    const float denom = std::sqrt(v) / s.bc2_sqrt + s.eps;
    const float ratio = m / denom;
    const float delta = s.step_size * ratio;
    p = p - delta;
}

}  // namespace qlora::optim
