// Fused RMSNorm rows (contract in rms_norm_cpu.h).
#include "kernels/rms_norm_cpu.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>

namespace qlora::kernels {
namespace {

// Σ x² of one row in 8 interleaved partial sums (independent chains the compiler keeps in
// registers), then added pairwise.
float sum_of_squares(const float* x, int64_t dim) {
    float part[8] = {};
    int64_t i = 0;
    for (; i + 8 <= dim; i += 8) {
        for (int k = 0; k < 8; ++k) part[k] += x[i + k] * x[i + k];
    }
    for (; i < dim; ++i) part[i % 8] += x[i] * x[i];
    return ((part[0] + part[1]) + (part[2] + part[3])) +
           ((part[4] + part[5]) + (part[6] + part[7]));
}

// The output steps shared by the kernel and its twin: the inverse RMS, the scaled row, the weight.
void scale_row(const float* x, const float* weight, int64_t dim, float mean_square, float eps,
               float* y) {
    const float inverse = 1.0f / std::sqrt(mean_square + eps);
    for (int64_t i = 0; i < dim; ++i) y[i] = weight[i] * (x[i] * inverse);
}

}  // namespace

void rms_norm_rows(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                   float* y) {
    const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(1, dim));
    at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* row = x + r * dim;
            const float mean_square = sum_of_squares(row, dim) / static_cast<float>(dim);
            scale_row(row, weight, dim, mean_square, eps, y + r * dim);
        }
    });
}

void rms_norm_rows_ref(const float* x, const float* weight, int64_t rows, int64_t dim, float eps,
                       float* y) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* row = x + r * dim;
        double sum = 0.0;
        for (int64_t i = 0; i < dim; ++i) sum += static_cast<double>(row[i]) * row[i];
        const auto mean_square = static_cast<float>(sum / static_cast<double>(dim));
        scale_row(row, weight, dim, mean_square, eps, y + r * dim);
    }
}

}  // namespace qlora::kernels
