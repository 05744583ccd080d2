// Fused AdamW updates: fp32 states (one thread per element) and 8-bit blockwise states (one CTA of
// 256 threads per quantization block: dequantize, update, block absmax, requantize). Twins of
// src/optim/adamw_ref.cpp; explicit _rn intrinsics keep nvcc from fusing into FMAs, so the bits
// match.
#include <algorithm>

#include "kernels/adamw_cuda.h"
#include "kernels/bnb_quant.h"
#include "kernels/cuda_check.h"

namespace qlora::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarp = 32;
static_assert(adamw::kStateBlocksize == kThreads, "one thread per element of a state block");

// Same operations, same order as optim::adamw_element.
__device__ __forceinline__ void adamw_element_rn(const adamw::AdamwScalars& s, float g, float& p,
                                                 float& m, float& v) {
    p = __fmul_rn(p, s.decay);
    m = __fadd_rn(__fmul_rn(s.beta1, m), __fmul_rn(s.one_minus_beta1, g));
    v = __fadd_rn(__fmul_rn(s.beta2, v), __fmul_rn(s.one_minus_beta2, __fmul_rn(g, g)));
    const float denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(v), s.bc2_sqrt), s.eps);
    p = __fsub_rn(p, __fmul_rn(s.step_size, __fdiv_rn(m, denom)));
}

__global__ void adamw_step_kernel(const float* __restrict__ g, float* __restrict__ p,
                                  float* __restrict__ m, float* __restrict__ v, int64_t n,
                                  adamw::AdamwScalars s) {
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        float pi = p[i], mi = m[i], vi = v[i];
        adamw_element_rn(s, g[i], pi, mi, vi);
        p[i] = pi;
        m[i] = mi;
        v[i] = vi;
    }
}

__device__ __forceinline__ float block_max(float x, float* scratch /* [kThreads / kWarp] */) {
    for (int offset = kWarp / 2; offset > 0; offset >>= 1)
        x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, offset));
    const int warp = threadIdx.x / kWarp;
    if (threadIdx.x % kWarp == 0) scratch[warp] = x;
    __syncthreads();
    float result = scratch[0];
    for (int w = 1; w < kThreads / kWarp; ++w) result = fmaxf(result, scratch[w]);
    return result;
}

__device__ __forceinline__ uint8_t requantize(float x, float absmax, bool partial,
                                              const float* midpoints) {
    return bnb::encode_8bit(midpoints, bnb::scale_into_unit(x, bnb::block_scale(absmax, partial)));
}

__global__ void adamw8bit_step_kernel(const float* __restrict__ g, float* __restrict__ p,
                                      uint8_t* __restrict__ m_codes, uint8_t* __restrict__ v_codes,
                                      float* __restrict__ m_absmax, float* __restrict__ v_absmax,
                                      adamw::Blockwise8bitMaps maps, int64_t n,
                                      adamw::AdamwScalars s) {
    __shared__ float smap[256], umap[256], smid[255], umid[255];
    __shared__ float scratch_m[kThreads / kWarp], scratch_v[kThreads / kWarp];
    const int t = threadIdx.x;
    smap[t] = maps.signed_map[t];
    umap[t] = maps.unsigned_map[t];
    if (t < 255) {
        smid[t] = maps.signed_midpoints[t];
        umid[t] = maps.unsigned_midpoints[t];
    }
    __syncthreads();

    const int64_t b = blockIdx.x;
    const int64_t start = b * kThreads;
    const int64_t len = min(static_cast<int64_t>(kThreads), n - start);
    const bool active = t < len;
    const int64_t i = start + t;
    float m = 0.0f, v = 0.0f;
    if (active) {
        float pi = p[i];
        m = __fmul_rn(smap[m_codes[i]], m_absmax[b]);
        v = __fmul_rn(umap[v_codes[i]], v_absmax[b]);
        adamw_element_rn(s, g[i], pi, m, v);
        p[i] = pi;
    }
    // max is exact, so the reduction order does not matter.
    const float m_max = block_max(active ? fabsf(m) : 0.0f, scratch_m);
    const float v_max = block_max(active ? fabsf(v) : 0.0f, scratch_v);
    if (active) {
        const bool partial = len < kThreads;
        m_codes[i] = requantize(m, m_max, partial, smid);
        v_codes[i] = requantize(v, v_max, partial, umid);
    }
    if (t == 0) {
        m_absmax[b] = m_max;
        v_absmax[b] = v_max;
    }
}

}  // namespace

cudaError_t adamw_step_cuda(const float* g, float* p, float* m, float* v, int64_t n,
                            const adamw::AdamwScalars& s, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 65535);
    adamw_step_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(g, p, m, v, n, s);
    return cudaGetLastError();
}

cudaError_t adamw8bit_step_cuda(const float* g, float* p, uint8_t* m_codes, uint8_t* v_codes,
                                float* m_absmax, float* v_absmax,
                                const adamw::Blockwise8bitMaps& maps, int64_t n,
                                const adamw::AdamwScalars& s, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    const int64_t blocks = adamw::state_blocks(n);
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    adamw8bit_step_kernel<<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
        g, p, m_codes, v_codes, m_absmax, v_absmax, maps, n, s);
    return cudaGetLastError();
}

}  // namespace qlora::kernels
