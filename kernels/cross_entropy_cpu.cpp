// Fused cross-entropy rows (contract in cross_entropy_cpu.h): dispatch, the portable loop and the
// reference twins.
#include "kernels/cross_entropy_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/quant4_matmul_cpu.h"
#include "kernels/scalar_values.h"

namespace qlora::kernels {
namespace {

float logit(const LogitRows& x, int64_t r, int64_t j) {
    return detail::load_value(x.data, x.bf16, r * x.ld + j);
}

bool ignored(const LogitRows& x, int64_t r) { return x.labels[r] == x.ignore_index; }

float row_max(const LogitRows& x, int64_t r) {
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < x.vocab; ++j) {
        const float v = logit(x, r, j);
        m = std::isnan(v) || std::isnan(m) ? std::numeric_limits<float>::quiet_NaN()
                                           : std::max(m, v);
    }
    return m;
}

// One row's lse with Σ exp in float32 (portable) or double (the twin).
template <typename Acc>
float row_lse(const LogitRows& x, int64_t r) {
    const float m = row_max(x, r);
    Acc sum = 0;
    for (int64_t j = 0; j < x.vocab; ++j) sum += std::exp(logit(x, r, j) - m);
    return m + static_cast<float>(std::log(sum));
}

template <typename Acc>
void forward_rows(const LogitRows& x, int64_t r0, int64_t r1, float* loss, float* lse) {
    for (int64_t r = r0; r < r1; ++r) {
        if (ignored(x, r)) {
            loss[r] = 0.0f;
            lse[r] = 0.0f;
            continue;
        }
        lse[r] = row_lse<Acc>(x, r);
        loss[r] = lse[r] - logit(x, r, x.labels[r]);
    }
}

void backward_rows(const LogitRows& x, const float* lse, float scale, void* dx, int64_t ld_dx,
                   int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
        const bool skip = ignored(x, r);
        for (int64_t j = 0; j < x.vocab; ++j) {
            const float p = skip ? 0.0f : std::exp(logit(x, r, j) - lse[r]);
            const float onehot = !skip && j == x.labels[r] ? 1.0f : 0.0f;
            detail::store_value(dx, x.bf16, r * ld_dx + j, skip ? 0.0f : scale * (p - onehot));
        }
    }
}

// Rows per parallel chunk: about 32K logits.
int64_t row_grain(int64_t vocab) {
    return std::max<int64_t>(1, 32768 / std::max<int64_t>(1, vocab));
}

}  // namespace

void cross_entropy_forward(const LogitRows& x, float* loss, float* lse, CpuIsa isa) {
    const bool vector = isa == CpuIsa::kAvx512 && avx512_bw_vl_isa() == CpuIsa::kAvx512;
    at::parallel_for(0, x.rows, row_grain(x.vocab), [&](int64_t r0, int64_t r1) {
        if (vector) {
            detail::cross_entropy_forward_avx512(x, r0, r1, loss, lse);
        } else {
            forward_rows<float>(x, r0, r1, loss, lse);
        }
    });
}

void cross_entropy_backward(const LogitRows& x, const float* lse, float scale, void* dx,
                            int64_t ld_dx, CpuIsa isa) {
    const bool vector = isa == CpuIsa::kAvx512 && avx512_bw_vl_isa() == CpuIsa::kAvx512;
    at::parallel_for(0, x.rows, row_grain(x.vocab), [&](int64_t r0, int64_t r1) {
        if (vector) {
            detail::cross_entropy_backward_avx512(x, lse, scale, dx, ld_dx, r0, r1);
        } else {
            backward_rows(x, lse, scale, dx, ld_dx, r0, r1);
        }
    });
}

void cross_entropy_forward_ref(const LogitRows& x, float* loss, float* lse) {
    forward_rows<double>(x, 0, x.rows, loss, lse);
}

void cross_entropy_backward_ref(const LogitRows& x, const float* lse, float scale, void* dx,
                                int64_t ld_dx) {
    backward_rows(x, lse, scale, dx, ld_dx, 0, x.rows);
}

#if !defined(__x86_64__)
namespace detail {
void cross_entropy_forward_avx512(const LogitRows&, int64_t, int64_t, float*, float*) {
    std::abort();
}
void cross_entropy_backward_avx512(const LogitRows&, const float*, float, void*, int64_t, int64_t,
                                   int64_t) {
    std::abort();
}
}  // namespace detail
#endif

}  // namespace qlora::kernels
