// Wall-clock timing of a callable on CPU or CUDA (synchronized), best of N after warm-up.
#pragma once

#include <c10/core/Device.h>

#include <functional>

namespace qlora::bench {

// Seconds per call: the median of `iters` timed calls after `warmup` untimed ones. On CUDA the
// device is synchronized around each call.
double time_call(const std::function<void()>& fn, const c10::Device& device, int warmup, int iters);

}  // namespace qlora::bench
