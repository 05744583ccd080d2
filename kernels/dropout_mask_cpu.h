// Dropout keep-masks on the CPU from a counter-based hash, so that any thread can draw any element:
// element i of the mask with seed s is kept when the 32-bit word i of the stream
//     z_j = mix(s + (j + 1)·γ),   word 2j = low half of z_j, word 2j + 1 = high half,
// lies below threshold = round(keep · 2^32). mix is SplitMix64's finalizer (Steele, Lea & Flood,
// "Fast splittable pseudorandom number generators", OOPSLA 2014; γ = 0x9E3779B97F4A7C15), whose
// outputs over a counter pass BigCrush. The same seed gives the same mask bit for bit on any
// number of threads, and a mask costs a few integer operations per element on every core (ATen's
// bernoulli_ on the CPU draws one mt19937 word per element on one thread: 11% of a QLoRA step
// with LoRA dropout 0.05 in qlora-bench step, measured).
#pragma once

#include <cstdint>

namespace qlora::kernels {

// round(keep · 2^32) for keep in [0, 1]: an element is kept when its word is below it (keep 1:
// 2^32, every element).
uint64_t dropout_keep_threshold(double keep);

// out[i] = word i < threshold for i < n (1 = kept). Threads through at::parallel_for.
void dropout_mask(uint64_t seed, uint64_t threshold, int64_t n, bool* out);

// Reference twin: one element at a time, from the definition above.
void dropout_mask_ref(uint64_t seed, uint64_t threshold, int64_t n, bool* out);

}  // namespace qlora::kernels
