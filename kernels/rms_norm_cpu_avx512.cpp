// AVX-512 bodies of the fused RMSNorm rows (contract in rms_norm_cpu.h). This translation unit
// alone is compiled with -mavx512f -mavx512bw -mavx512vl (CMakeLists.txt); rms_norm_cpu.cpp calls
// it only when the CPU reports them. Products and sums are separate roundings (no FMA), as the
// portable loop's.
#include <immintrin.h>

#include <cmath>

#include "kernels/avx512_bf16.h"
#include "kernels/avx512_sum.h"
#include "kernels/rms_norm_cpu.h"

namespace qlora::kernels::detail {

void rms_norm_forward_avx512(const NormRows& n, void* y, float* inv, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t row = r * n.dim;
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < n.dim; i += 16) {
            const __m512 v = load_lanes(n.x, n.bf16, row + i, first_lanes(n.dim - i));
            acc = _mm512_add_ps(acc, _mm512_mul_ps(v, v));
        }
        const float ms = horizontal_sum(acc) / static_cast<float>(n.dim);
        const float inverse = 1.0f / std::sqrt(ms + n.eps);
        if (inv != nullptr) inv[r] = inverse;
        const __m512 vi = _mm512_set1_ps(inverse);
        for (int64_t i = 0; i < n.dim; i += 16) {
            const __mmask16 m = first_lanes(n.dim - i);
            const __m512 normed =
                round_lanes(_mm512_mul_ps(load_lanes(n.x, n.bf16, row + i, m), vi), n.bf16);
            store_lanes(y, n.bf16, row + i, m,
                        _mm512_mul_ps(load_lanes(n.weight, n.bf16, i, m), normed));
        }
    }
}

void rms_norm_backward_avx512(const NormRows& n, const float* inv, const void* dy, void* dx,
                              int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t row = r * n.dim;
        auto g = [&](int64_t i, __mmask16 m) {
            return round_lanes(_mm512_mul_ps(load_lanes(dy, n.bf16, row + i, m),
                                             load_lanes(n.weight, n.bf16, i, m)),
                               n.bf16);
        };
        __m512 acc = _mm512_setzero_ps();
        for (int64_t i = 0; i < n.dim; i += 16) {
            const __mmask16 m = first_lanes(n.dim - i);
            acc = _mm512_add_ps(acc, _mm512_mul_ps(g(i, m), load_lanes(n.x, n.bf16, row + i, m)));
        }
        const float c = inv[r] * inv[r] * inv[r] * horizontal_sum(acc) / static_cast<float>(n.dim);
        const __m512 vi = _mm512_set1_ps(inv[r]), vc = _mm512_set1_ps(c);
        for (int64_t i = 0; i < n.dim; i += 16) {
            const __mmask16 m = first_lanes(n.dim - i);
            const __m512 d = _mm512_sub_ps(_mm512_mul_ps(vi, g(i, m)),
                                           _mm512_mul_ps(load_lanes(n.x, n.bf16, row + i, m), vc));
            store_lanes(dx, n.bf16, row + i, m, d);
        }
    }
}

}  // namespace qlora::kernels::detail
