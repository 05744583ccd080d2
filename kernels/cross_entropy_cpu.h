// Fused cross-entropy rows on the CPU: the loss of each row of logits and, for backward, the
// gradient of the logits, each in one pass per row over the logits as they are (float32 or bf16).
// The composite form (logits.to(float32), log_softmax, nll_loss; in backward a zero-filled float32
// gradient, nll's scatter, log_softmax's backward, the copy back to bf16) makes four [rows, vocab]
// float32 tensors and about seven passes over them: ~2% of a QLoRA step on a 32000-word vocabulary
// (profiled), and 12 bytes per logit of memory.
//
//   lse[r]  = m + log Σ_j exp(x[r, j] - m),  m = max_j x[r, j]      (float32)
//   loss[r] = lse[r] - x[r, label[r]]
//   dx[r, j] = scale · (exp(x[r, j] - lse[r]) - [j == label[r]])      (rounded to x's type)
// A row whose label is ignore_index has loss 0 and a zero gradient. Labels must be ignore_index or
// lie in [0, vocab) (checked by the caller). A NaN or infinite logit makes its row's loss NaN.
//
// Only the order of the exp sum differs from the reference twin, whose sums are in double: a
// relative error of at most γ_vocab = vocab·u / (1 - vocab·u) (u = 2^-24) in Σ exp, so at most
// γ_vocab in absolute terms in lse, plus the vector exp's 1 ulp.
#pragma once

#include <cstdint>

#include "kernels/quant4_matmul_cpu.h"  // CpuIsa

namespace qlora::kernels {

struct LogitRows {
    const void* data = nullptr;  // [rows, vocab] with row stride ld (elements)
    bool bf16 = false;           // bf16 bit patterns (uint16) instead of float32
    int64_t rows = 0;
    int64_t vocab = 0;
    int64_t ld = 0;
    const int64_t* labels = nullptr;  // [rows]
    int64_t ignore_index = -100;
};

// loss[rows], lse[rows]. Threads through at::parallel_for over rows; with isa kAvx512 the AVX-512
// bodies (Sleef's exp, the one ATen's vectorized exp calls), else the portable loop (std::exp).
// The default isa is avx512_bw_vl_isa(); tests pass kPortable to check that loop.
void cross_entropy_forward(const LogitRows& x, float* loss, float* lse,
                           CpuIsa isa = avx512_bw_vl_isa());
// dx: [rows, vocab] with row stride ld_dx, in x's type (float32 or bf16 bits).
void cross_entropy_backward(const LogitRows& x, const float* lse, float scale, void* dx,
                            int64_t ld_dx, CpuIsa isa = avx512_bw_vl_isa());

// Reference twins: one row at a time, sums in double, std::exp.
void cross_entropy_forward_ref(const LogitRows& x, float* loss, float* lse);
void cross_entropy_backward_ref(const LogitRows& x, const float* lse, float scale, void* dx,
                                int64_t ld_dx);

namespace detail {
// The AVX-512 bodies (cross_entropy_cpu_avx512.cpp): rows [r0, r1).
void cross_entropy_forward_avx512(const LogitRows& x, int64_t r0, int64_t r1, float* loss,
                                  float* lse);
void cross_entropy_backward_avx512(const LogitRows& x, const float* lse, float scale, void* dx,
                                   int64_t ld_dx, int64_t r0, int64_t r1);
}  // namespace detail

}  // namespace qlora::kernels
