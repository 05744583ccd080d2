// Fused RMSNorm rows (contract in rms_norm_cpu.h): dispatch, the portable loops and the reference
// twins.
#include "kernels/rms_norm_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "kernels/scalar_values.h"

namespace qlora::kernels {
namespace {

using detail::load_value;
using detail::round_value;
using detail::store_value;

// Σ x² of row r: float32 in 8 interleaved partial sums added pairwise (portable), or double (twin).
template <typename Acc>
float mean_square(const NormRows& n, int64_t r) {
    Acc part[8] = {};
    for (int64_t i = 0; i < n.dim; ++i) {
        const float v = load_value(n.x, n.bf16, r * n.dim + i);
        part[i % 8] += static_cast<Acc>(v) * static_cast<Acc>(v);
    }
    const Acc sum =
        ((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7]));
    return static_cast<float>(sum / static_cast<Acc>(n.dim));
}

template <typename Acc>
void forward_rows(const NormRows& n, void* y, float* inv, int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        const float inverse = 1.0f / std::sqrt(mean_square<Acc>(n, r) + n.eps);
        if (inv != nullptr) inv[r] = inverse;
        for (int64_t i = 0; i < n.dim; ++i) {
            const float normed =
                round_value(load_value(n.x, n.bf16, r * n.dim + i) * inverse, n.bf16);
            store_value(y, n.bf16, r * n.dim + i, load_value(n.weight, n.bf16, i) * normed);
        }
    }
}

template <typename Acc>
void backward_rows(const NormRows& n, const float* inv, const void* dy, void* dx, int64_t r0,
                   int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t row = r * n.dim;
        auto g = [&](int64_t i) {
            return round_value(load_value(dy, n.bf16, row + i) * load_value(n.weight, n.bf16, i),
                               n.bf16);
        };
        Acc s = 0;
        for (int64_t i = 0; i < n.dim; ++i)
            s += static_cast<Acc>(g(i)) * load_value(n.x, n.bf16, row + i);
        const float c =
            inv[r] * inv[r] * inv[r] * static_cast<float>(s) / static_cast<float>(n.dim);
        for (int64_t i = 0; i < n.dim; ++i) {
            store_value(dx, n.bf16, row + i, inv[r] * g(i) - load_value(n.x, n.bf16, row + i) * c);
        }
    }
}

int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim)); }

bool vector_body(CpuIsa isa) {
    return isa == CpuIsa::kAvx512 && avx512_bw_vl_isa() == CpuIsa::kAvx512;
}

}  // namespace

void rms_norm_forward(const NormRows& n, void* y, float* inv, CpuIsa isa) {
    const bool vector = vector_body(isa);
    at::parallel_for(0, n.rows, row_grain(n.dim), [&](int64_t r0, int64_t r1) {
        if (vector) {
            detail::rms_norm_forward_avx512(n, y, inv, r0, r1);
        } else {
            forward_rows<float>(n, y, inv, r0, r1);
        }
    });
}

void rms_norm_backward(const NormRows& n, const float* inv, const void* dy, void* dx, CpuIsa isa) {
    const bool vector = vector_body(isa);
    at::parallel_for(0, n.rows, row_grain(n.dim), [&](int64_t r0, int64_t r1) {
        if (vector) {
            detail::rms_norm_backward_avx512(n, inv, dy, dx, r0, r1);
        } else {
            backward_rows<float>(n, inv, dy, dx, r0, r1);
        }
    });
}

void rms_norm_forward_ref(const NormRows& n, void* y, float* inv) {
    forward_rows<double>(n, y, inv, 0, n.rows);
}

void rms_norm_backward_ref(const NormRows& n, const float* inv, const void* dy, void* dx) {
    backward_rows<double>(n, inv, dy, dx, 0, n.rows);
}

void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                   float* y) {
    rms_norm_forward({x, weight, false, rows, dim, eps}, y, nullptr);
}

void rms_norm_rows_ref(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y) {
    rms_norm_forward_ref({x, weight, false, rows, dim, eps}, y, nullptr);
}

#if !defined(__x86_64__)
namespace detail {
void rms_norm_forward_avx512(const NormRows&, void*, float*, int64_t, int64_t) { std::abort(); }
void rms_norm_backward_avx512(const NormRows&, const float*, const void*, void*, int64_t, int64_t) {
    std::abort();
}
}  // namespace detail
#endif

}  // namespace qlora::kernels
