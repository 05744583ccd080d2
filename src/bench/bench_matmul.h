// qlora-bench matmul: the CPU's tiled 4-bit matmuls of a training step or a prefill beside the
// dense GEMM on the same weights, in the same run: y = x·deq(W)ᵀ (forward and recompute) and
// dX = G·deq(W) (backward), each against at::mm with W dequantized once beforehand.
#pragma once

#include <string>

namespace qlora::bench {

struct MatmulBenchOptions {
    int64_t rows = 256;  // tokens in the batch
    int64_t in = 2048;   // W is [out, in]: TinyLlama-1.1B's gate_proj by default
    int64_t out = 5632;
    std::string dtype = "bf16";  // of x, G, the dense W and the results: float32 or bfloat16
    // Distinct weights cycled through, so that the packed codes come from memory as they do in a
    // model (one layer's weights outgrow the caches), not from a cache the last call warmed.
    int64_t matrices = 12;
    int warmup = 2;
    int iters = 10;
};

// One JSON line (CPU only): milliseconds per matmul of each kind and the 4-bit / dense ratios.
std::string bench_matmul(const MatmulBenchOptions& options);

}  // namespace qlora::bench
