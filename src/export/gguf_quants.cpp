// Scalar F16 / Q8_0 / Q4_0 encoders and decoders with ggml's reference arithmetic: every float
// operation is the one ggml-quants.c performs, in float32 and in the same order (the build uses
// ISO C++ without -ffast-math, so nothing is contracted into an FMA or reassociated).
#include "export/gguf_quants.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace qlora::exporting {
namespace {

void store_fp16(uint8_t* p, uint16_t h) {  // little-endian, as GGUF files are
    p[0] = static_cast<uint8_t>(h & 0xff);
    p[1] = static_cast<uint8_t>(h >> 8);
}

uint16_t load_fp16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | (static_cast<uint16_t>(p[1]) << 8));
}

// ggml's type_traits for the types we write: name, elements and bytes per block, and the largest
// magnitude that encodes without the fp16 value or scale overflowing (fp16 rounds 65520 to inf;
// Q8_0's d = amax / 127, Q4_0's d = max / -8).
struct GgmlTypeTraits {
    GgmlType type;
    const char* name;
    int64_t block_size;
    int64_t block_bytes;
    double max_magnitude;
};
constexpr GgmlTypeTraits kGgmlTypeTraits[] = {
    {GgmlType::kF32, "F32", 1, 4, std::numeric_limits<double>::infinity()},
    {GgmlType::kF16, "F16", 1, 2, 65519.0},
    {GgmlType::kQ4_0, "Q4_0", kGgmlQBlock, kQ4_0BlockBytes, 65519.0 * 8.0},
    {GgmlType::kQ8_0, "Q8_0", kGgmlQBlock, kQ8_0BlockBytes, 65519.0 * 127.0},
};

const GgmlTypeTraits& traits(GgmlType t) {
    for (const auto& row : kGgmlTypeTraits) {
        if (row.type == t) return row;
    }
    TORCH_CHECK(false, "unknown ggml type ", static_cast<uint32_t>(t));
}

}  // namespace

const char* ggml_type_name(GgmlType t) { return traits(t).name; }
int64_t ggml_block_size(GgmlType t) { return traits(t).block_size; }
int64_t ggml_block_bytes(GgmlType t) { return traits(t).block_bytes; }

int64_t ggml_row_bytes(GgmlType t, int64_t n) {
    TORCH_CHECK(n >= 0 && n % ggml_block_size(t) == 0, "ggml_row_bytes: ", ggml_type_name(t),
                " rows need a multiple of ", ggml_block_size(t), " elements, got ", n);
    return n / ggml_block_size(t) * ggml_block_bytes(t);
}

// ---- fp16 ------------------------------------------------------------------------------------

uint16_t fp32_to_fp16(float f) {
    const uint32_t x = std::bit_cast<uint32_t>(f);
    const uint32_t sign = (x >> 16) & 0x8000u;
    const uint32_t mag = x & 0x7fffffffu;
    if (mag > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);   // NaN -> quiet NaN
    if (mag >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // >= 65520: inf
    if (mag >= 0x38800000u) {  // >= 2^-14: a normal half
        uint32_t h = ((((mag >> 23) - 127u + 15u) << 10) | ((mag >> 13) & 0x3ffu));
        const uint32_t rest = mag & 0x1fffu;  // the 13 bits dropped
        if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) != 0))
            ++h;  // a carry bumps the exponent
        return static_cast<uint16_t>(sign | h);
    }
    if (mag <= 0x33000000u) return static_cast<uint16_t>(sign);  // <= 2^-25 (a tie goes to 0)
    // Subnormal half: the value in units of 2^-24, rounded to nearest even.
    const uint32_t m = (mag & 0x7fffffu) | 0x800000u;
    const int e = static_cast<int>(mag >> 23) - 127;  // -25 < value exponent < -14
    const int shift = -(e + 1);                       // 14..24
    uint32_t h = m >> shift;
    const uint32_t rest = m & ((1u << shift) - 1u);
    const uint32_t half = 1u << (shift - 1);
    if (rest > half || (rest == half && (h & 1u) != 0)) ++h;
    return static_cast<uint16_t>(sign | h);
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t mant = h & 0x3ffu;
    if (exp == 0) {  // zero or subnormal: mant * 2^-24, exact in float
        const float v = static_cast<float>(mant) * 0x1p-24f;
        return std::bit_cast<float>(sign | std::bit_cast<uint32_t>(v));
    }
    if (exp == 31) return std::bit_cast<float>(sign | 0x7f800000u | (mant << 13));
    return std::bit_cast<float>(sign | ((exp - 15u + 127u) << 23) | (mant << 13));
}

// ---- Q8_0 ------------------------------------------------------------------------------------

void quantize_row_q8_0_ref(const float* x, uint8_t* y, int64_t k) {
    TORCH_CHECK(k % kGgmlQBlock == 0, "quantize_row_q8_0_ref: k=", k, " is not a multiple of 32");
    for (int64_t b = 0; b < k / kGgmlQBlock; ++b) {
        const float* xb = x + b * kGgmlQBlock;
        uint8_t* yb = y + b * kQ8_0BlockBytes;
        float amax = 0.0f;
        for (int64_t j = 0; j < kGgmlQBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_fp16(yb, fp32_to_fp16(d));
        for (int64_t j = 0; j < kGgmlQBlock; ++j) {
            const float x0 = xb[j] * id;
            yb[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x0)));  // roundf
        }
    }
}

void dequantize_row_q8_0(const uint8_t* y, float* x, int64_t k) {
    TORCH_CHECK(k % kGgmlQBlock == 0, "dequantize_row_q8_0: k=", k, " is not a multiple of 32");
    for (int64_t b = 0; b < k / kGgmlQBlock; ++b) {
        const uint8_t* yb = y + b * kQ8_0BlockBytes;
        const float d = fp16_to_fp32(load_fp16(yb));
        for (int64_t j = 0; j < kGgmlQBlock; ++j) {
            x[b * kGgmlQBlock + j] = static_cast<float>(static_cast<int8_t>(yb[2 + j])) * d;
        }
    }
}

// ---- Q4_0 ------------------------------------------------------------------------------------

void quantize_row_q4_0_ref(const float* x, uint8_t* y, int64_t k) {
    TORCH_CHECK(k % kGgmlQBlock == 0, "quantize_row_q4_0_ref: k=", k, " is not a multiple of 32");
    constexpr int64_t kHalf = kGgmlQBlock / 2;
    for (int64_t b = 0; b < k / kGgmlQBlock; ++b) {
        const float* xb = x + b * kGgmlQBlock;
        uint8_t* yb = y + b * kQ4_0BlockBytes;
        float amax = 0.0f;  // the largest magnitude, and the signed value that has it (first wins)
        float max = 0.0f;
        for (int64_t j = 0; j < kGgmlQBlock; ++j) {
            if (amax < std::fabs(xb[j])) {
                amax = std::fabs(xb[j]);
                max = xb[j];
            }
        }
        const float d = max / -8.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        store_fp16(yb, fp32_to_fp16(d));
        for (int64_t j = 0; j < kHalf; ++j) {
            const float x0 = xb[j] * id;
            const float x1 = xb[kHalf + j] * id;
            // truncation toward zero of a value in [0.5, 16.5], then clamp 16 to 15
            const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>(x0 + 8.5f)));
            const int q1 = std::min(15, static_cast<int>(static_cast<int8_t>(x1 + 8.5f)));
            yb[2 + j] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
    }
}

void dequantize_row_q4_0(const uint8_t* y, float* x, int64_t k) {
    TORCH_CHECK(k % kGgmlQBlock == 0, "dequantize_row_q4_0: k=", k, " is not a multiple of 32");
    constexpr int64_t kHalf = kGgmlQBlock / 2;
    for (int64_t b = 0; b < k / kGgmlQBlock; ++b) {
        const uint8_t* yb = y + b * kQ4_0BlockBytes;
        const float d = fp16_to_fp32(load_fp16(yb));
        for (int64_t j = 0; j < kHalf; ++j) {
            const int x0 = (yb[2 + j] & 0x0f) - 8;
            const int x1 = (yb[2 + j] >> 4) - 8;
            x[b * kGgmlQBlock + j] = static_cast<float>(x0) * d;
            x[b * kGgmlQBlock + kHalf + j] = static_cast<float>(x1) * d;
        }
    }
}

// ---- whole tensors ---------------------------------------------------------------------------

at::Tensor ggml_encode(const at::Tensor& values, GgmlType type, const std::string& what) {
    QLORA_CHECK(values.defined() && values.dim() >= 1 && values.numel() > 0, what,
                ": expected a non-empty tensor");
    at::Tensor v = values.to(at::kCPU, at::kFloat).contiguous();
    const int64_t row = v.size(-1);
    QLORA_CHECK(row % ggml_block_size(type) == 0, what, ": rows of ", row, " elements cannot be ",
                ggml_type_name(type), " (needs a multiple of ", ggml_block_size(type), ")");
    const double amax = v.abs().max().item<double>();
    QLORA_CHECK(std::isfinite(amax), what, ": holds NaN or Inf; refusing to export it");
    QLORA_CHECK(amax <= traits(type).max_magnitude, what, ": largest magnitude ", amax,
                " overflows ", ggml_type_name(type), " (at most ", traits(type).max_magnitude, ")");
    const int64_t rows = v.numel() / row;
    const int64_t row_bytes = ggml_row_bytes(type, row);
    at::Tensor out = at::empty({rows * row_bytes}, at::kByte);
    const float* src = v.data_ptr<float>();
    uint8_t* dst = out.data_ptr<uint8_t>();
    if (type == GgmlType::kF32) {
        std::memcpy(dst, src, static_cast<size_t>(rows * row_bytes));
        return out;
    }
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / row);
    at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float* x = src + r * row;
            uint8_t* y = dst + r * row_bytes;
            if (type == GgmlType::kF16) {
                for (int64_t j = 0; j < row; ++j) store_fp16(y + 2 * j, fp32_to_fp16(x[j]));
            } else if (type == GgmlType::kQ8_0) {
                quantize_row_q8_0_ref(x, y, row);
            } else {
                quantize_row_q4_0_ref(x, y, row);
            }
        }
    });
    return out;
}

at::Tensor ggml_decode(const at::Tensor& bytes, GgmlType type, at::IntArrayRef shape) {
    TORCH_CHECK(!shape.empty(), "ggml_decode: empty shape");
    const int64_t row = shape.back();
    int64_t numel = 1;
    for (int64_t s : shape) numel *= s;
    const int64_t rows = row == 0 ? 0 : numel / row;
    const int64_t row_bytes = ggml_row_bytes(type, row);
    at::Tensor b = bytes.to(at::kCPU).contiguous();
    TORCH_CHECK(b.scalar_type() == at::kByte && b.numel() == rows * row_bytes,
                "ggml_decode: ", ggml_type_name(type), " ", shape, " needs ", rows * row_bytes,
                " bytes, got ", b.numel());
    at::Tensor out = at::empty(shape, at::kFloat);
    const uint8_t* src = b.data_ptr<uint8_t>();
    float* dst = out.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) {
        const uint8_t* y = src + r * row_bytes;
        float* x = dst + r * row;
        switch (type) {
            case GgmlType::kF32:
                std::memcpy(x, y, static_cast<size_t>(row_bytes));
                break;
            case GgmlType::kF16:
                for (int64_t j = 0; j < row; ++j) x[j] = fp16_to_fp32(load_fp16(y + 2 * j));
                break;
            case GgmlType::kQ8_0:
                dequantize_row_q8_0(y, x, row);
                break;
            case GgmlType::kQ4_0:
                dequantize_row_q4_0(y, x, row);
                break;
        }
    }
    return out;
}

}  // namespace qlora::exporting
