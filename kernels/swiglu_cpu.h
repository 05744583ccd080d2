// Fused SwiGLU on the CPU, forward and backward, on float32 or bf16 (the gate and up projections'
// outputs of a Llama MLP): the composite silu(g)·u is two dispatched ops and three in backward
// (the product's two halves and silu's backward), each a pass over [tokens, intermediate] with a
// fresh buffer; fused, one pass each way, and backward needs only g and u (not silu(g) too).
//     s = T(g / (1 + exp(-g))),   h = T(s · u)                      (T: rounding to the dtype)
// backward, with σ = 1 / (1 + exp(-g)) recomputed:
//     du = T(dh · s),   ds = T(dh · u),   dg = T(ds · σ · (1 + g · (1 - σ)))
// as ATen's silu, mul and silu_backward compute them (float32 inside, one rounding per op). The
// exp is Sleef's (1 ulp) in the AVX-512 body, std::exp in the portable loop and the twin: results
// may differ from the twin's by that ulp before rounding, so bf16 ones by at most one bf16 step.
#pragma once

#include <cstdint>

#include "kernels/quant4_matmul_cpu.h"  // CpuIsa

namespace qlora::kernels {

struct SwigluData {
    const void* g = nullptr;  // [n], contiguous
    const void* u = nullptr;  // [n]
    bool bf16 = false;        // bf16 bit patterns (uint16) instead of float32
    int64_t n = 0;
};

// h [n] in the dtype. Threads through at::parallel_for.
void swiglu_forward(const SwigluData& d, void* h, CpuIsa isa = avx512_bw_vl_isa());
// dg, du [n] in the dtype, from dh.
void swiglu_backward(const SwigluData& d, const void* dh, void* dg, void* du,
                     CpuIsa isa = avx512_bw_vl_isa());

// Reference twins: one element at a time, the formulas above.
void swiglu_forward_ref(const SwigluData& d, void* h);
void swiglu_backward_ref(const SwigluData& d, const void* dh, void* dg, void* du);

namespace detail {
// The AVX-512 bodies (swiglu_cpu_avx512.cpp): elements [i0, i1).
void swiglu_forward_avx512(const SwigluData& d, void* h, int64_t i0, int64_t i1);
void swiglu_backward_avx512(const SwigluData& d, const void* dh, void* dg, void* du, int64_t i0,
                            int64_t i1);
}  // namespace detail

}  // namespace qlora::kernels
