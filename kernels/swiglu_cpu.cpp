// Fused SwiGLU (contract in swiglu_cpu.h): dispatch, the portable loop (also the reference twin:
// the same element-wise formulas) and the threads.
#include "kernels/swiglu_cpu.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <cstdlib>

#include "kernels/scalar_values.h"

namespace qlora::kernels {
namespace {

using detail::load_value;
using detail::round_value;
using detail::store_value;

void forward_elements(const SwigluData& d, void* h, int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
        const float g = load_value(d.g, d.bf16, i);
        const float s = round_value(g / (1.0f + std::exp(-g)), d.bf16);
        store_value(h, d.bf16, i, s * load_value(d.u, d.bf16, i));
    }
}

void backward_elements(const SwigluData& d, const void* dh, void* dg, void* du, int64_t i0,
                       int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
        const float g = load_value(d.g, d.bf16, i), grad = load_value(dh, d.bf16, i);
        const float sigma = 1.0f / (1.0f + std::exp(-g));
        const float s = round_value(g / (1.0f + std::exp(-g)), d.bf16);
        store_value(du, d.bf16, i, grad * s);
        const float ds = round_value(grad * load_value(d.u, d.bf16, i), d.bf16);
        store_value(dg, d.bf16, i, ds * sigma * (1.0f + g * (1.0f - sigma)));
    }
}

constexpr int64_t kGrain = 32768;

bool vector_body(CpuIsa isa) {
    return isa == CpuIsa::kAvx512 && avx512_bw_vl_isa() == CpuIsa::kAvx512;
}

}  // namespace

void swiglu_forward(const SwigluData& d, void* h, CpuIsa isa) {
    const bool vector = vector_body(isa);
    at::parallel_for(0, d.n, kGrain, [&](int64_t i0, int64_t i1) {
        if (vector) {
            detail::swiglu_forward_avx512(d, h, i0, i1);
        } else {
            forward_elements(d, h, i0, i1);
        }
    });
}

void swiglu_backward(const SwigluData& d, const void* dh, void* dg, void* du, CpuIsa isa) {
    const bool vector = vector_body(isa);
    at::parallel_for(0, d.n, kGrain, [&](int64_t i0, int64_t i1) {
        if (vector) {
            detail::swiglu_backward_avx512(d, dh, dg, du, i0, i1);
        } else {
            backward_elements(d, dh, dg, du, i0, i1);
        }
    });
}

void swiglu_forward_ref(const SwigluData& d, void* h) { forward_elements(d, h, 0, d.n); }

void swiglu_backward_ref(const SwigluData& d, const void* dh, void* dg, void* du) {
    backward_elements(d, dh, dg, du, 0, d.n);
}

#if !defined(__x86_64__)
namespace detail {
void swiglu_forward_avx512(const SwigluData&, void*, int64_t, int64_t) { std::abort(); }
void swiglu_backward_avx512(const SwigluData&, const void*, void*, void*, int64_t, int64_t) {
    std::abort();
}
}  // namespace detail
#endif

}  // namespace qlora::kernels
