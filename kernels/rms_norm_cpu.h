// Fused RMSNorm rows on the CPU, forward and backward, on float32 or bf16 rows with a frozen weight
// of the same dtype: one pass over a row for the mean square and one for the output, where the
// composite ATen form (to float32, pow, mean, add, rsqrt, mul, to, mul) is eight dispatched ops
// with float32 temporaries per norm, and its backward about twice that (profiled: ~35 µs per
// decoder layer per decoded token on a 2048-wide model; ~2% of a bf16 QLoRA step).
//     inv[r] = 1 / sqrt(Σ_i x[r, i]² / dim + eps)
//     y[r, i] = T(w[i] · T(x[r, i] · inv[r]))
// in float32 with transformers' roundings (T: rounding to the rows' dtype, a no-op for float32).
// Backward, for dy with the weight frozen (the chain rule through those same steps, as autograd
// runs it: the product with w rounded to T, then float32):
//     g[r, i] = T(dy[r, i] · w[i]),   s[r] = Σ_i g[r, i] · x[r, i]
//     dx[r, i] = T(inv[r] · g[r, i] - x[r, i] · (inv[r]³ · s[r] / dim))
// Only the order of the two row sums differs from the reference twin's (double): relative errors
// of at most γ_dim = dim·u / (1 - dim·u) (u = 2^-24) in each sum, the bound the tests check.
#pragma once

#include <cstdint>

#include "kernels/quant4_matmul_cpu.h"  // CpuIsa

namespace qlora::kernels {

struct NormRows {
    const void* x = nullptr;       // [rows, dim], contiguous
    const void* weight = nullptr;  // [dim], the same dtype
    bool bf16 = false;             // bf16 bit patterns (uint16) instead of float32
    int64_t rows = 0;
    int64_t dim = 0;
    float eps = 1e-6f;
};

// y [rows, dim] in the rows' dtype; inv [rows] (may be null). Threads through at::parallel_for.
void rms_norm_forward(const NormRows& n, void* y, float* inv, CpuIsa isa = avx512_bw_vl_isa());
// dx [rows, dim] in the rows' dtype, from dy of that dtype and the forward's inv.
void rms_norm_backward(const NormRows& n, const float* inv, const void* dy, void* dx,
                       CpuIsa isa = avx512_bw_vl_isa());

// Reference twins: the sums in double, rounded once to float32, then the same float32 steps.
void rms_norm_forward_ref(const NormRows& n, void* y, float* inv);
void rms_norm_backward_ref(const NormRows& n, const float* inv, const void* dy, void* dx);

// float32 rows without inv: the inference form (rms_norm_forward).
void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                   float* y);
void rms_norm_rows_ref(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y);

namespace detail {
// The AVX-512 bodies (rms_norm_cpu_avx512.cpp): rows [r0, r1).
void rms_norm_forward_avx512(const NormRows& n, void* y, float* inv, int64_t r0, int64_t r1);
void rms_norm_backward_avx512(const NormRows& n, const float* inv, const void* dy, void* dx,
                              int64_t r0, int64_t r1);
}  // namespace detail

}  // namespace qlora::kernels
