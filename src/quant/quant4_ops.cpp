// Validation and device dispatch for the 4-bit ops.
#include "quant/quant4_ops.h"

#include "quant/dynamic_map.h"
#include "quant/quant4_cpu.h"
#include "quant/quant4_ref.h"

#ifdef QLORA_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "kernels/quant4_cuda.h"
#endif

namespace qlora::quant {
namespace {

constexpr bnb::Codebook kNf4Codebook = bnb::make_codebook(bnb::QuantType::kNF4);
constexpr bnb::Codebook kFp4Codebook = bnb::make_codebook(bnb::QuantType::kFP4);

void check_float_dtype(const char* op, const char* what, c10::ScalarType t) {
    TORCH_CHECK(t == at::kFloat || t == at::kHalf || t == at::kBFloat16, op, ": ", what,
                " must be float32, float16 or bfloat16, got ", t);
}

#ifdef QLORA_WITH_CUDA
kernels::FloatType float_type(c10::ScalarType t) {
    switch (t) {
        case at::kFloat:
            return kernels::FloatType::kFloat32;
        case at::kHalf:
            return kernels::FloatType::kFloat16;
        default:
            return kernels::FloatType::kBFloat16;
    }
}

void check_cuda(cudaError_t err, const char* op) {
    TORCH_CHECK(err == cudaSuccess, op, ": CUDA error: ", cudaGetErrorString(err));
}

// The dequant kernel reads packed bytes 4 at a time: give it a 4-byte aligned start.
at::Tensor aligned_for_words(const at::Tensor& t) {
    auto addr = reinterpret_cast<uintptr_t>(t.data_ptr());
    return addr % 4 == 0 ? t : t.clone();
}
#endif

at::Tensor optional_on(const at::Tensor& t, const c10::Device& device) {
    return t.defined() ? t.to(device).contiguous() : t;
}

}  // namespace

const bnb::Codebook& codebook(bnb::QuantType type) {
    return type == bnb::QuantType::kNF4 ? kNf4Codebook : kFp4Codebook;
}

Quantized4bit quantize_4bit(const at::Tensor& x_in, bnb::QuantType type, int64_t blocksize) {
    TORCH_CHECK(bnb::valid_blocksize(blocksize),
                "quantize_4bit: blocksize must be a power of two in [", bnb::kMinBlocksize, ", ",
                bnb::kMaxBlocksize, "], got ", blocksize);
    check_float_dtype("quantize_4bit", "input", x_in.scalar_type());
    at::Tensor x = x_in.contiguous().reshape(-1);
    const int64_t n = x.numel();
    auto u8 = x.options().dtype(at::kByte);
    Quantized4bit q{at::empty({bnb::packed_bytes(n)}, u8),
                    at::empty({bnb::num_blocks(n, blocksize)}, x.options().dtype(at::kFloat))};
    if (x.is_cuda()) {
#ifdef QLORA_WITH_CUDA
        c10::cuda::CUDAGuard guard(x.device());
        check_cuda(
            kernels::quantize_4bit_cuda(x.data_ptr(), float_type(x.scalar_type()), codebook(type),
                                        q.packed.data_ptr<uint8_t>(), q.absmax.data_ptr<float>(), n,
                                        blocksize, at::cuda::getCurrentCUDAStream()),
            "quantize_4bit");
#else
        TORCH_CHECK(false,
                    "quantize_4bit: this build has no CUDA kernels (configured without nvcc)");
#endif
    } else {
        quantize_4bit_cpu(x, blocksize, codebook(type), q.packed, q.absmax);
    }
    return q;
}

QuantizedAbsmax quantize_absmax(const at::Tensor& absmax_in, const at::Tensor& map) {
    TORCH_CHECK(absmax_in.scalar_type() == at::kFloat,
                "quantize_absmax: absmax must be float32, got ", absmax_in.scalar_type());
    TORCH_CHECK(map.numel() == bnb::kDynamicMapSize,
                "quantize_absmax: map must have 256 entries, got ", map.numel());
    at::Tensor absmax = absmax_in.contiguous().reshape(-1);
    const int64_t n = absmax.numel();
    QuantizedAbsmax q;
    // bitsandbytes: offset = absmax.mean() in float32; computing it on the CPU keeps the bits
    // independent of the device that quantized.
    q.offset = n == 0 ? 0.0f : absmax.cpu().mean().item<float>();
    at::Tensor midpoints = map_midpoints(map).to(absmax.device());
    q.codes = at::empty({n}, absmax.options().dtype(at::kByte));
    q.nested = at::empty({bnb::num_blocks(n, bnb::kNestedBlocksize)}, absmax.options());
    if (absmax.is_cuda()) {
#ifdef QLORA_WITH_CUDA
        c10::cuda::CUDAGuard guard(absmax.device());
        check_cuda(kernels::absmax_quantize_cuda(
                       absmax.data_ptr<float>(), midpoints.data_ptr<float>(), q.offset,
                       q.codes.data_ptr<uint8_t>(), q.nested.data_ptr<float>(), n,
                       at::cuda::getCurrentCUDAStream()),
                   "quantize_absmax");
#else
        TORCH_CHECK(false,
                    "quantize_absmax: this build has no CUDA kernels (configured without nvcc)");
#endif
    } else {
        absmax_quantize_ref(absmax.data_ptr<float>(), n, q.offset, bnb::kNestedBlocksize,
                            midpoints.data_ptr<float>(), q.codes.data_ptr<uint8_t>(),
                            q.nested.data_ptr<float>());
    }
    return q;
}

at::Tensor dequantize_absmax(const at::Tensor& codes, const at::Tensor& nested,
                             const at::Tensor& map, float offset) {
    TORCH_CHECK(codes.scalar_type() == at::kByte, "dequantize_absmax: codes must be uint8, got ",
                codes.scalar_type());
    TORCH_CHECK(nested.numel() == bnb::num_blocks(codes.numel(), bnb::kNestedBlocksize),
                "dequantize_absmax: ", codes.numel(), " codes need ",
                bnb::num_blocks(codes.numel(), bnb::kNestedBlocksize),
                " nested absmax values, got ", nested.numel());
    // Elementwise torch ops, as bitsandbytes' dequantize_blockwise + offset: two float32 roundings.
    at::Tensor m = map.to(codes.device(), at::kFloat);
    at::Tensor values = m.index({codes.to(at::kLong)});
    at::Tensor scale =
        nested.to(at::kFloat).repeat_interleave(bnb::kNestedBlocksize).slice(0, 0, codes.numel());
    return values * scale + offset;
}

at::Tensor dequantize_4bit(const at::Tensor& packed_in, const at::Tensor& absmax_f32,
                           const at::Tensor& codes, const at::Tensor& nested, const at::Tensor& map,
                           float offset, int64_t n, int64_t blocksize, bnb::QuantType type,
                           c10::ScalarType out_dtype) {
    check_float_dtype("dequantize_4bit", "output dtype", out_dtype);
    at::Tensor out = at::empty({n}, packed_in.options().dtype(out_dtype));
    dequantize_4bit_into(packed_in, absmax_f32, codes, nested, map, offset, n, blocksize, type,
                         out);
    return out;
}

void dequantize_4bit_into(const at::Tensor& packed_in, const at::Tensor& absmax_f32,
                          const at::Tensor& codes, const at::Tensor& nested, const at::Tensor& map,
                          float offset, int64_t n, int64_t blocksize, bnb::QuantType type,
                          at::Tensor& out) {
    const c10::ScalarType out_dtype = out.scalar_type();
    check_float_dtype("dequantize_4bit", "output dtype", out_dtype);
    TORCH_CHECK(out.is_contiguous() && out.numel() == n && out.device() == packed_in.device(),
                "dequantize_4bit: out must be contiguous with ", n, " elements on ",
                packed_in.device(), ", got ", out.sizes(), " on ", out.device());
    TORCH_CHECK(packed_in.scalar_type() == at::kByte, "dequantize_4bit: packed must be uint8, got ",
                packed_in.scalar_type());
    TORCH_CHECK(packed_in.numel() == bnb::packed_bytes(n), "dequantize_4bit: ", n,
                " elements need ", bnb::packed_bytes(n), " packed bytes, got ", packed_in.numel());
    const int64_t blocks = bnb::num_blocks(n, blocksize);
    const bool dq = !absmax_f32.defined();
    if (dq) {
        TORCH_CHECK(codes.defined() && nested.defined() && map.defined(),
                    "dequantize_4bit: need absmax, or codes + nested absmax + map");
        TORCH_CHECK(codes.numel() == blocks, "dequantize_4bit: ", blocks, " blocks need ", blocks,
                    " absmax codes, got ", codes.numel());
        TORCH_CHECK(nested.numel() == bnb::num_blocks(blocks, bnb::kNestedBlocksize),
                    "dequantize_4bit: nested absmax has ", nested.numel(), " values, expected ",
                    bnb::num_blocks(blocks, bnb::kNestedBlocksize));
        TORCH_CHECK(map.numel() == bnb::kDynamicMapSize, "dequantize_4bit: map has ", map.numel(),
                    " entries, expected 256");
    } else {
        TORCH_CHECK(absmax_f32.numel() == blocks, "dequantize_4bit: ", blocks, " blocks need ",
                    blocks, " absmax values, got ", absmax_f32.numel());
    }
    const c10::Device device = packed_in.device();
    at::Tensor packed = packed_in.contiguous().reshape(-1);
    at::Tensor a = dq ? at::Tensor() : absmax_f32.to(device, at::kFloat).contiguous();
    at::Tensor c = dq ? optional_on(codes, device) : at::Tensor();
    at::Tensor ne = dq ? nested.to(device, at::kFloat).contiguous() : at::Tensor();
    at::Tensor m = dq ? map.to(device, at::kFloat).contiguous() : at::Tensor();
    if (device.is_cuda()) {
#ifdef QLORA_WITH_CUDA
        c10::cuda::CUDAGuard guard(device);
        packed = aligned_for_words(packed);
        check_cuda(kernels::dequantize_4bit_cuda(
                       packed.data_ptr<uint8_t>(), dq ? nullptr : a.data_ptr<float>(),
                       dq ? c.data_ptr<uint8_t>() : nullptr, dq ? ne.data_ptr<float>() : nullptr,
                       dq ? m.data_ptr<float>() : nullptr, offset, codebook(type), out.data_ptr(),
                       float_type(out_dtype), n, blocksize, at::cuda::getCurrentCUDAStream()),
                   "dequantize_4bit");
#else
        TORCH_CHECK(false,
                    "dequantize_4bit: this build has no CUDA kernels (configured without nvcc)");
#endif
    } else {
        dequantize_4bit_cpu(packed, a, c, ne, m, offset, n, blocksize, codebook(type), out);
    }
}

}  // namespace qlora::quant
