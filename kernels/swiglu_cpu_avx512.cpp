// AVX-512 bodies of the fused SwiGLU (contract in swiglu_cpu.h). This translation unit alone is
// compiled with -mavx512f -mavx512bw -mavx512vl (CMakeLists.txt); swiglu_cpu.cpp calls it only
// when the CPU reports them. exp is Sleef's, the one ATen's vectorized exp calls; products and
// sums round one at a time (no FMA), as the portable loop's.
#include <immintrin.h>
#include <sleef.h>

#include "kernels/avx512_bf16.h"
#include "kernels/swiglu_cpu.h"

namespace qlora::kernels::detail {

namespace {
// 1 + exp(-g)
inline __m512 one_plus_exp_neg(__m512 g) {
    const __m512 neg = _mm512_sub_ps(_mm512_setzero_ps(), g);
    return _mm512_add_ps(_mm512_set1_ps(1.0f), Sleef_expf16_u10(neg));
}
}  // namespace

void swiglu_forward_avx512(const SwigluData& d, void* h, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; i += 16) {
        const __mmask16 m = first_lanes(i1 - i);
        const __m512 g = load_lanes(d.g, d.bf16, i, m);
        const __m512 s = round_lanes(_mm512_div_ps(g, one_plus_exp_neg(g)), d.bf16);
        store_lanes(h, d.bf16, i, m, _mm512_mul_ps(s, load_lanes(d.u, d.bf16, i, m)));
    }
}

void swiglu_backward_avx512(const SwigluData& d, const void* dh, void* dg, void* du, int64_t i0,
                            int64_t i1) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int64_t i = i0; i < i1; i += 16) {
        const __mmask16 m = first_lanes(i1 - i);
        const __m512 g = load_lanes(d.g, d.bf16, i, m), grad = load_lanes(dh, d.bf16, i, m);
        const __m512 denominator = one_plus_exp_neg(g);
        const __m512 sigma = _mm512_div_ps(one, denominator);
        const __m512 s = round_lanes(_mm512_div_ps(g, denominator), d.bf16);
        store_lanes(du, d.bf16, i, m, _mm512_mul_ps(grad, s));
        const __m512 ds = round_lanes(_mm512_mul_ps(grad, load_lanes(d.u, d.bf16, i, m)), d.bf16);
        const __m512 slope =
            _mm512_add_ps(one, _mm512_mul_ps(g, _mm512_sub_ps(one, sigma)));  // 1 + g·(1 - σ)
        store_lanes(dg, d.bf16, i, m, _mm512_mul_ps(_mm512_mul_ps(ds, sigma), slope));
    }
}

}  // namespace qlora::kernels::detail
