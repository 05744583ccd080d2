// Matmuls with a 4-bit weight that never materialize deq(W) on the CPU
// (kernels/quant4_matmul_cpu.h):
//   few rows (decode):   the fused GEMV, W dequantized in registers;
//   many rows (prefill, training forward, recompute, backward): tiles of W dequantized into a
//   per-thread buffer of about `tile_bytes`, reused across calls, each tile fed to ATen's GEMM.
// Results equal x·deq(W)ᵀ in float32 up to the order of the sums (bound in the kernel header),
// unless the opt-in int8-activation path below is on.
// bfloat16 inputs of the tiled matmuls use bf16 tiles and ATen's bf16 GEMM where the CPU has
// bf16 dot products (Quant4MatmulTuning::bf16_tiles): float32 accumulation, as
// at::linear(x, w.dequantize(bf16)) computes; other half-precision inputs, and bf16 ones of the
// GEMV, are computed in float32 and rounded back. Other cases (CUDA, float64) fall back to
// dequantize + at::linear.
#pragma once

#include <ATen/ATen.h>

#include "kernels/quant4_matmul_cpu.h"
#include "quant/quant4_tensor.h"

namespace qlora::quant {

// True when the fused CPU kernels serve x against w (both on the CPU, x float32/16/bf16).
bool quant4_matmul_fused(const at::Tensor& x, const Quant4Tensor& w);

// y = x·deq(W)ᵀ (+ bias): x [..., in] -> [..., out] in x's dtype; W is [out, in].
at::Tensor quant4_linear(const at::Tensor& x, const Quant4Tensor& w, const at::Tensor& bias = {});

// dX = G·deq(W): g [..., out] -> [..., in] in g's dtype (the input gradient of quant4_linear).
at::Tensor quant4_matmul_grad_input(const at::Tensor& g, const Quant4Tensor& w);

// Knobs of the path choice, process-wide (tests force each path; benches tune them).
struct Quant4MatmulTuning {
    int64_t gemv_max_rows = 8;  // x rows up to this use the fused GEMV
    // float32 bytes of one dequantized tile of W, at most, per thread. Measured with 2 threads on
    // the TinyLlama-1.1B shape (tiles of 1 / 4 / 16 MiB): NF4 prefill pp256 75 / 83 / 73 tok/s,
    // 4-layer QLoRA step 2.81 / 2.61 / 2.67 s.
    int64_t tile_bytes = int64_t{4} << 20;
    kernels::CpuIsa max_isa = kernels::CpuIsa::kAvx512;  // cap below the CPU's best (tests)
    // Inference only, off by default (qlora-generate --int8-activations, qlora-bench's *-int8
    // bases): forward inputs of any row count (decode and prefill) are quantized to int8 per 64
    // columns and multiplied with VNNI integer dot products where the CPU and the layout allow
    // (kernels/quant4_matmul_cpu.h: an
    // approximation with a stated bound, no longer x·deq(W)ᵀ in float32). Nothing in training
    // sets it.
    bool int8_activations = false;
    // bfloat16 inputs of the tiled matmuls (training, prefill) run as bf16 tiles into ATen's bf16
    // GEMM. On by default where the CPU has bf16 dot products (kernels::cpu_has_bf16_dot: 2.7x
    // float32's GEMM speed there); without them float32 is the faster way to the same bf16 result
    // type, and tests turn it on to check the path on any CPU.
    bool bf16_tiles = kernels::cpu_has_bf16_dot();
};
Quant4MatmulTuning& quant4_matmul_tuning();

}  // namespace qlora::quant
