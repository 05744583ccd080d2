// Median-of-N timing; CUDA work is synchronized so the time covers the kernels themselves.
#include "bench/timer.h"

#include <torch/cuda.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace qlora::bench {

double time_call(const std::function<void()>& fn, const c10::Device& device, int warmup,
                 int iters) {
    auto sync = [&] {
        if (device.is_cuda()) torch::cuda::synchronize(device.index());
    };
    for (int i = 0; i < warmup; ++i) fn();
    sync();
    std::vector<double> times;
    times.reserve(static_cast<size_t>(iters));
    for (int i = 0; i < iters; ++i) {
        auto start = std::chrono::steady_clock::now();
        fn();
        sync();
        times.push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

}  // namespace qlora::bench
