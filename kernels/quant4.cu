// CUDA kernels for bitsandbytes-compatible NF4/FP4 quantization and dequantization.
// Twins of src/quant/quant4_ref.cpp: quantize is bit-exact with it, dequantize gives the same
// floats. Arithmetic uses explicit _rn intrinsics so nvcc cannot contract a*b+c into an FMA (the
// reference rounds twice, and so does bitsandbytes).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda_check.h"
#include "kernels/quant4_cuda.h"

namespace qlora::kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerCta = 8;
constexpr int kDequantThreads = 256;
constexpr int kElemsPerThread = 8;  // 4 packed bytes; never straddles a block (blocksize >= 32)

// ---- element conversions ---------------------------------------------------------------------
template <typename T>
__device__ __forceinline__ float to_float(T v);
template <>
__device__ __forceinline__ float to_float<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ float to_float<__half>(__half v) {
    return __half2float(v);
}
template <>
__device__ __forceinline__ float to_float<__nv_bfloat16>(__nv_bfloat16 v) {
    return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T from_float(float v);
template <>
__device__ __forceinline__ float from_float<float>(float v) {
    return v;
}
template <>
__device__ __forceinline__ __half from_float<__half>(float v) {
    return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = kWarp / 2; offset > 0; offset >>= 1) {
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset));
    }
    return v;
}

// ---- quantize: one warp per block ------------------------------------------------------------
template <typename T>
__global__ void quantize_4bit_kernel(const T* __restrict__ x, bnb::Codebook cb,
                                     uint8_t* __restrict__ packed, float* __restrict__ absmax,
                                     int64_t n, int64_t blocksize) {
    const int lane = threadIdx.x % kWarp;
    const int64_t block = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + threadIdx.x / kWarp;
    const int64_t blocks = bnb::num_blocks(n, blocksize);
    if (block >= blocks) return;  // whole warp exits together
    const int64_t start = block * blocksize;
    const int64_t len = min(blocksize, n - start);
    const bool partial = len < blocksize;

    float am = 0.0f;
    for (int64_t i = lane; i < len; i += kWarp) am = fmaxf(am, fabsf(to_float(x[start + i])));
    am = warp_max(am);
    const bnb::BlockScale scale = bnb::block_scale(am, partial);
    if (lane == 0) absmax[block] = bnb::stored_absmax(am, scale);

    for (int64_t i = 2 * lane; i < len; i += 2 * kWarp) {
        const uint8_t hi =
            bnb::encode_4bit(cb, bnb::scale_into_unit(to_float(x[start + i]), scale));
        const uint8_t lo =
            i + 1 < len
                ? bnb::encode_4bit(cb, bnb::scale_into_unit(to_float(x[start + i + 1]), scale))
                : bnb::encode_4bit(cb, 0.0f);
        packed[(start + i) / 2] = bnb::pack_pair(hi, lo);
    }
}

// ---- double quantization of the absmax vector: one warp per 256-block ------------------------
__global__ void absmax_quantize_kernel(const float* __restrict__ v,
                                       const float* __restrict__ midpoints, float offset,
                                       uint8_t* __restrict__ codes, float* __restrict__ nested,
                                       int64_t n) {
    __shared__ float s_mid[255];
    for (int i = threadIdx.x; i < 255; i += blockDim.x) s_mid[i] = midpoints[i];
    __syncthreads();
    const int lane = threadIdx.x % kWarp;
    const int64_t block = static_cast<int64_t>(blockIdx.x) * kWarpsPerCta + threadIdx.x / kWarp;
    if (block >= bnb::num_blocks(n, bnb::kNestedBlocksize)) return;
    const int64_t start = block * bnb::kNestedBlocksize;
    const int64_t len = min(bnb::kNestedBlocksize, n - start);
    const bool partial = len < bnb::kNestedBlocksize;

    float am = 0.0f;
    for (int64_t i = lane; i < len; i += kWarp)
        am = fmaxf(am, fabsf(__fsub_rn(v[start + i], offset)));
    am = warp_max(am);
    const bnb::BlockScale scale = bnb::block_scale(am, partial);
    if (lane == 0) nested[block] = bnb::stored_absmax(am, scale);
    for (int64_t i = lane; i < len; i += kWarp) {
        const float centered = __fsub_rn(v[start + i], offset);
        codes[start + i] = bnb::encode_8bit(s_mid, bnb::scale_into_unit(centered, scale));
    }
}

// ---- dequantize: 8 elements (4 packed bytes) per thread --------------------------------------
template <typename Out>
__global__ void dequantize_4bit_kernel(const uint8_t* __restrict__ packed,
                                       const float* __restrict__ absmax_f32,
                                       const uint8_t* __restrict__ codes,
                                       const float* __restrict__ nested,
                                       const float* __restrict__ map, float offset,
                                       bnb::Codebook cb, Out* __restrict__ out, int64_t n,
                                       int blocksize_log2) {
    __shared__ float s_values[16];
    if (threadIdx.x < 16) s_values[threadIdx.x] = cb.values[threadIdx.x];
    __syncthreads();
    const int64_t groups = (n + kElemsPerThread - 1) / kElemsPerThread;
    const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
    for (int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; g < groups;
         g += stride) {
        const int64_t e0 = g * kElemsPerThread;
        const int64_t b = e0 >> blocksize_log2;
        float scale;
        if (absmax_f32 != nullptr) {
            scale = absmax_f32[b];
        } else {
            scale = __fadd_rn(__fmul_rn(map[codes[b]], nested[b / bnb::kNestedBlocksize]), offset);
        }
        const int64_t count = min(static_cast<int64_t>(kElemsPerThread), n - e0);
        if (count == kElemsPerThread) {
            const uint32_t word = *reinterpret_cast<const uint32_t*>(packed + e0 / 2);
            Out vals[kElemsPerThread];
#pragma unroll
            for (int k = 0; k < 4; ++k) {
                const uint8_t byte = static_cast<uint8_t>(word >> (8 * k));
                vals[2 * k] = from_float<Out>(__fmul_rn(s_values[byte >> 4], scale));
                vals[2 * k + 1] = from_float<Out>(__fmul_rn(s_values[byte & 0x0F], scale));
            }
            if constexpr (sizeof(Out) == 4) {
                float4* dst = reinterpret_cast<float4*>(out + e0);
                dst[0] = *reinterpret_cast<float4*>(&vals[0]);
                dst[1] = *reinterpret_cast<float4*>(&vals[4]);
            } else {
                *reinterpret_cast<uint4*>(out + e0) = *reinterpret_cast<uint4*>(&vals[0]);
            }
        } else {
            for (int64_t k = 0; k < count; ++k) {
                const uint8_t byte = packed[(e0 + k) / 2];
                const uint8_t code = (k % 2 == 0) ? (byte >> 4) : (byte & 0x0F);
                out[e0 + k] = from_float<Out>(__fmul_rn(s_values[code], scale));
            }
        }
    }
}

int log2_exact(int64_t v) {
    int r = 0;
    while ((int64_t{1} << r) < v) ++r;
    return r;
}

unsigned int warp_grid(int64_t warps) {
    return static_cast<unsigned int>((warps + kWarpsPerCta - 1) / kWarpsPerCta);
}

}  // namespace

cudaError_t quantize_4bit_cuda(const void* x, FloatType x_type, const bnb::Codebook& cb,
                               uint8_t* packed, float* absmax, int64_t n, int64_t blocksize,
                               cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    const unsigned int grid = warp_grid(bnb::num_blocks(n, blocksize));
    const unsigned int threads = kWarp * kWarpsPerCta;
    switch (x_type) {
        case FloatType::kFloat32:
            quantize_4bit_kernel<float><<<grid, threads, 0, stream>>>(
                static_cast<const float*>(x), cb, packed, absmax, n, blocksize);
            break;
        case FloatType::kFloat16:
            quantize_4bit_kernel<__half><<<grid, threads, 0, stream>>>(
                static_cast<const __half*>(x), cb, packed, absmax, n, blocksize);
            break;
        case FloatType::kBFloat16:
            quantize_4bit_kernel<__nv_bfloat16><<<grid, threads, 0, stream>>>(
                static_cast<const __nv_bfloat16*>(x), cb, packed, absmax, n, blocksize);
            break;
    }
    return cudaGetLastError();
}

cudaError_t absmax_quantize_cuda(const float* absmax, const float* map_midpoints, float offset,
                                 uint8_t* codes, float* nested, int64_t n, cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    const unsigned int grid = warp_grid(bnb::num_blocks(n, bnb::kNestedBlocksize));
    absmax_quantize_kernel<<<grid, kWarp * kWarpsPerCta, 0, stream>>>(absmax, map_midpoints, offset,
                                                                      codes, nested, n);
    return cudaGetLastError();
}

cudaError_t dequantize_4bit_cuda(const uint8_t* packed, const float* absmax_f32,
                                 const uint8_t* codes, const float* nested, const float* map,
                                 float offset, const bnb::Codebook& cb, void* out,
                                 FloatType out_type, int64_t n, int64_t blocksize,
                                 cudaStream_t stream) {
    if (n == 0) return cudaSuccess;
    const int64_t groups = (n + kElemsPerThread - 1) / kElemsPerThread;
    int device = 0, sms = 0;
    QLORA_CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
    QLORA_CUDA_RETURN_IF_ERROR(
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
    const int64_t wanted = (groups + kDequantThreads - 1) / kDequantThreads;
    const unsigned int grid =
        static_cast<unsigned int>(wanted < int64_t{sms} * 16 ? wanted : int64_t{sms} * 16);
    const int shift = log2_exact(blocksize);
    switch (out_type) {
        case FloatType::kFloat32:
            dequantize_4bit_kernel<float><<<grid, kDequantThreads, 0, stream>>>(
                packed, absmax_f32, codes, nested, map, offset, cb, static_cast<float*>(out), n,
                shift);
            break;
        case FloatType::kFloat16:
            dequantize_4bit_kernel<__half><<<grid, kDequantThreads, 0, stream>>>(
                packed, absmax_f32, codes, nested, map, offset, cb, static_cast<__half*>(out), n,
                shift);
            break;
        case FloatType::kBFloat16:
            dequantize_4bit_kernel<__nv_bfloat16><<<grid, kDequantThreads, 0, stream>>>(
                packed, absmax_f32, codes, nested, map, offset, cb,
                static_cast<__nv_bfloat16*>(out), n, shift);
            break;
    }
    return cudaGetLastError();
}

}  // namespace qlora::kernels
