// qlora-bench dequant: NF4(+double quant) -> float throughput beside a plain copy of the same
// output bytes in the same run (the memory-bound ideal), and the scalar reference on CPU.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace qlora::bench {

struct DequantBenchOptions {
    int64_t rows = 4096;
    int64_t cols = 4096;
    int64_t blocksize = 64;
    bool double_quant = true;
    int warmup = 2;
    int iters = 10;
    bool with_reference = true;  // also time the single-threaded scalar reference (CPU only)
};

// One JSON line per (device, output dtype).
std::vector<std::string> bench_dequant(const DequantBenchOptions& options,
                                       const c10::Device& device);

}  // namespace qlora::bench
