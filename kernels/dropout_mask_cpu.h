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

#include "kernels/quant4_matmul_cpu.h"  // CpuIsa

namespace qlora::kernels {

// round(keep · 2^32) for keep in [0, 1]: an element is kept when its word is below it (keep 1:
// 2^32, every element).
uint64_t dropout_keep_threshold(double keep);

// kAvx512 where the CPU has AVX-512 F + BW + DQ + VL and BMI2 (and QLORA_CPU_ISA does not cap
// it), else kPortable.
CpuIsa dropout_mask_isa();

// out[i] = word i < threshold for i < n (1 = kept). Threads through at::parallel_for; with isa
// kAvx512 eight words pairs a vector (the AVX-512 body), else the portable loop. Both write the
// same bits (tests pass kPortable to check that loop).
void dropout_mask(uint64_t seed, uint64_t threshold, int64_t n, bool* out,
                  CpuIsa isa = dropout_mask_isa());

// Reference twin: one element at a time, from the definition above.
void dropout_mask_ref(uint64_t seed, uint64_t threshold, int64_t n, bool* out);

// out[i] = x[i] · keep[i] (the mask as 0 or 1), as ATen's x.mul(bool mask) computes it: x where
// kept; where dropped ±0 (x's sign), or NaN when x is infinite or NaN. ATen promotes the bool mask
// element by element through a temporary buffer, several times the cost of the multiply (0.87 vs
// 0.13 ms for a [256, 5632] bf16 input here, four times per LoRA linear per step). out may be x.
// Threads through at::parallel_for.
// With isa kAvx512 the loops run widened to AVX-512 (the same bits).
void apply_keep_mask(const float* x, const bool* keep, int64_t n, float* out,
                     CpuIsa isa = dropout_mask_isa());
// The same on bfloat16 bits; the product is rounded as c10::BFloat16 rounds (exact for x·1 and
// x·0), and a NaN result is the canonical 0x7FC0.
void apply_keep_mask_bf16(const uint16_t* x, const bool* keep, int64_t n, uint16_t* out,
                          CpuIsa isa = dropout_mask_isa());

namespace detail {
// The AVX-512 bodies (dropout_mask_cpu_avx512.cpp): the whole pairs [j0, j1), out[2·j0 .. 2·j1);
// a keep-mask applied to elements [i0, i1) (the loops of keep_mask_body.h, widened).
void mask_pairs_avx512(uint64_t seed, uint64_t threshold, int64_t j0, int64_t j1, bool* out);
void keep_mask_avx512(const float* x, const uint8_t* keep, int64_t i0, int64_t i1, float* out);
void keep_mask_bf16_avx512(const uint16_t* x, const uint8_t* keep, int64_t i0, int64_t i1,
                           uint16_t* out);
}  // namespace detail

}  // namespace qlora::kernels
