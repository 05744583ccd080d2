// AVX-512 bodies of the fused cross-entropy rows (contract in cross_entropy_cpu.h). This
// translation unit alone is compiled with -mavx512f -mavx512bw -mavx512vl (CMakeLists.txt);
// cross_entropy_cpu.cpp calls it only when the CPU reports them. exp is Sleef's (1 ulp), the one
// ATen's vectorized exp calls, from the LibTorch we link.
#include <immintrin.h>
#include <sleef.h>

#include <cmath>
#include <limits>

#include "kernels/avx512_bf16.h"
#include "kernels/avx512_sum.h"
#include "kernels/cross_entropy_cpu.h"

namespace qlora::kernels::detail {
namespace {

// 16 logits of row r from column j (the lanes past `valid` hold `fill`).
inline __m512 load16(const LogitRows& x, int64_t r, int64_t j, int64_t valid, float fill) {
    return load_lanes(x.data, x.bf16, r * x.ld + j, first_lanes(valid), fill);
}

float logit(const LogitRows& x, int64_t r, int64_t j) {
    const __m512 v = load16(x, r, j, 1, 0.0f);
    return _mm512_cvtss_f32(v);
}

// max_j x[r, j], NaN if any logit is NaN.
float row_max(const LogitRows& x, int64_t r) {
    const float inf = std::numeric_limits<float>::infinity();
    __m512 acc = _mm512_set1_ps(-inf);
    __mmask16 nan = 0;
    for (int64_t j = 0; j < x.vocab; j += 16) {
        const __m512 v = load16(x, r, j, x.vocab - j, -inf);
        nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
        acc = _mm512_max_ps(acc, v);
    }
    alignas(64) float lanes[16];
    _mm512_store_ps(lanes, acc);
    float m = lanes[0];
    for (int k = 1; k < 16; ++k) m = lanes[k] > m ? lanes[k] : m;
    return nan != 0 ? std::numeric_limits<float>::quiet_NaN() : m;
}

float row_lse(const LogitRows& x, int64_t r) {
    const float m = row_max(x, r);
    const __m512 vm = _mm512_set1_ps(m);
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < x.vocab; j += 16) {
        const __m512 v = load16(x, r, j, x.vocab - j, -std::numeric_limits<float>::infinity());
        sum = _mm512_add_ps(sum, Sleef_expf16_u10(_mm512_sub_ps(v, vm)));
    }
    return m + std::log(horizontal_sum(sum));
}

}  // namespace

void cross_entropy_forward_avx512(const LogitRows& x, int64_t r0, int64_t r1, float* loss,
                                  float* lse) {
    for (int64_t r = r0; r < r1; ++r) {
        if (x.labels[r] == x.ignore_index) {
            loss[r] = 0.0f;
            lse[r] = 0.0f;
            continue;
        }
        lse[r] = row_lse(x, r);
        loss[r] = lse[r] - logit(x, r, x.labels[r]);
    }
}

void cross_entropy_backward_avx512(const LogitRows& x, const float* lse, float scale, void* dx,
                                   int64_t ld_dx, int64_t r0, int64_t r1) {
    const __m512 vs = _mm512_set1_ps(scale), one = _mm512_set1_ps(1.0f);
    for (int64_t r = r0; r < r1; ++r) {
        const bool skip = x.labels[r] == x.ignore_index;
        const __m512 vl = _mm512_set1_ps(lse[r]);
        for (int64_t j = 0; j < x.vocab; j += 16) {
            __m512 d = _mm512_setzero_ps();
            if (!skip) {
                const __m512 v = load16(x, r, j, x.vocab - j, 0.0f);
                __m512 p = Sleef_expf16_u10(_mm512_sub_ps(v, vl));
                const int64_t at = x.labels[r] - j;  // the label's lane, if in this block
                if (at >= 0 && at < 16) p = _mm512_mask_sub_ps(p, __mmask16(1u << at), p, one);
                d = _mm512_mul_ps(vs, p);
            }
            store_lanes(dx, x.bf16, r * ld_dx + j, first_lanes(x.vocab - j), d);
        }
    }
}

}  // namespace qlora::kernels::detail
