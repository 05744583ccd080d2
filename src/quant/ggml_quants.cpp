// Scalar encoders and decoders with ggml's reference arithmetic: every float operation is the one
// ggml-quants.c performs (quantize_row_*_ref, dequantize_row_*), in float32 and in the same order
// (the build uses ISO C++ without -ffast-math, so nothing is contracted into an FMA or
// reassociated), so decoded values are bit-identical to ggml's and gguf-py's.
#include "quant/ggml_quants.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "quant/int4_codes.h"

namespace qlora::quant {
namespace {

using G = GgmlType;

// ggml's type_traits: name, elements and bytes per block (ggml.c), and whether we decode it.
constexpr GgmlTypeTraits kTraits[] = {
    {G::kF32, "F32", 1, 4, true},
    {G::kF16, "F16", 1, 2, true},
    {G::kQ4_0, "Q4_0", kQK, sizeof(BlockQ4_0), true},
    {G::kQ4_1, "Q4_1", kQK, sizeof(BlockQ4_1), true},
    {G::kQ5_0, "Q5_0", kQK, sizeof(BlockQ5_0), true},
    {G::kQ5_1, "Q5_1", kQK, sizeof(BlockQ5_1), true},
    {G::kQ8_0, "Q8_0", kQK, sizeof(BlockQ8_0), true},
    {G::kQ8_1, "Q8_1", kQK, 36, false},
    {G::kQ2_K, "Q2_K", kQK_K, sizeof(BlockQ2_K), true},
    {G::kQ3_K, "Q3_K", kQK_K, sizeof(BlockQ3_K), true},
    {G::kQ4_K, "Q4_K", kQK_K, sizeof(BlockQ4_K), true},
    {G::kQ5_K, "Q5_K", kQK_K, sizeof(BlockQ5_K), true},
    {G::kQ6_K, "Q6_K", kQK_K, sizeof(BlockQ6_K), true},
    {G::kQ8_K, "Q8_K", kQK_K, 292, false},
    {G::kIQ2_XXS, "IQ2_XXS", kQK_K, 66, false},
    {G::kIQ2_XS, "IQ2_XS", kQK_K, 74, false},
    {G::kIQ3_XXS, "IQ3_XXS", kQK_K, 98, false},
    {G::kIQ1_S, "IQ1_S", kQK_K, 50, false},
    {G::kIQ4_NL, "IQ4_NL", kQK, 18, false},
    {G::kIQ3_S, "IQ3_S", kQK_K, 110, false},
    {G::kIQ2_S, "IQ2_S", kQK_K, 82, false},
    {G::kIQ4_XS, "IQ4_XS", kQK_K, 136, false},
    {G::kI8, "I8", 1, 1, false},
    {G::kI16, "I16", 1, 2, false},
    {G::kI32, "I32", 1, 4, false},
    {G::kI64, "I64", 1, 8, false},
    {G::kF64, "F64", 1, 8, false},
    {G::kIQ1_M, "IQ1_M", kQK_K, 56, false},
    {G::kBF16, "BF16", 1, 2, true},
    {G::kTQ1_0, "TQ1_0", kQK_K, 54, false},
    {G::kTQ2_0, "TQ2_0", kQK_K, 66, false},
    {G::kMXFP4, "MXFP4", kQK, 17, false},
};

template <typename Block>
Block load_block(const uint8_t* y, int64_t i) {
    Block b;
    std::memcpy(&b, y + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
    return b;
}

template <typename Block>
void store_block(uint8_t* y, int64_t i, const Block& b) {
    std::memcpy(y + i * static_cast<int64_t>(sizeof(Block)), &b, sizeof(Block));
}

}  // namespace

const GgmlTypeTraits* ggml_type_traits(uint32_t type) {
    for (const auto& row : kTraits) {
        if (static_cast<uint32_t>(row.type) == type) return &row;
    }
    return nullptr;
}

const GgmlTypeTraits& ggml_traits(GgmlType t) {
    const GgmlTypeTraits* row = ggml_type_traits(static_cast<uint32_t>(t));
    TORCH_CHECK(row != nullptr, "unknown ggml type ", static_cast<uint32_t>(t));
    return *row;
}

int64_t ggml_row_bytes(GgmlType t, int64_t n) {
    TORCH_CHECK(n >= 0 && n % ggml_block_size(t) == 0, "ggml_row_bytes: ", ggml_type_name(t),
                " rows need a multiple of ", ggml_block_size(t), " elements, got ", n);
    return n / ggml_block_size(t) * ggml_block_bytes(t);
}

std::string ggml_decodable_type_names() {
    std::string out;
    for (const auto& row : kTraits) {
        if (row.decodable) out += (out.empty() ? "" : ", ") + std::string(row.name);
    }
    return out;
}

// ---- encoders ----------------------------------------------------------------------------------

void quantize_row_q8_0_ref(const float* x, uint8_t* y, int64_t k) {
    TORCH_CHECK(k % kQK == 0, "quantize_row_q8_0_ref: k=", k, " is not a multiple of 32");
    for (int64_t i = 0; i < k / kQK; ++i) {
        const float* xb = x + i * kQK;
        float amax = 0.0f;
        for (int64_t j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(xb[j]));
        const float d = amax / 127.0f;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        BlockQ8_0 b;
        b.d = fp32_to_fp16(d);
        for (int64_t j = 0; j < kQK; ++j) b.qs[j] = static_cast<int8_t>(std::round(xb[j] * id));
        store_block(y, i, b);
    }
}

// ---- legacy 32-element decoders (dequantize_row_q4_0 .. q8_0) ----------------------------------

namespace {

void decode_q4_0(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        const auto b = load_block<BlockQ4_0>(y, i);
        const float d = fp16_to_fp32(b.d);
        for (int j = 0; j < kQK / 2; ++j) {
            x[j] = static_cast<float>((b.qs[j] & 0x0f) - 8) * d;
            x[j + kQK / 2] = static_cast<float>((b.qs[j] >> 4) - 8) * d;
        }
    }
}

void decode_q4_1(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        const auto b = load_block<BlockQ4_1>(y, i);
        const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
        for (int j = 0; j < kQK / 2; ++j) {
            x[j] = static_cast<float>(b.qs[j] & 0x0f) * d + m;
            x[j + kQK / 2] = static_cast<float>(b.qs[j] >> 4) * d + m;
        }
    }
}

// The fifth bits of elements j and j + 16, already shifted to bit 4.
uint32_t qh_bits(const uint8_t (&qh)[4]) {
    uint32_t v;
    std::memcpy(&v, qh, 4);
    return v;
}

void decode_q5_0(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        const auto b = load_block<BlockQ5_0>(y, i);
        const float d = fp16_to_fp32(b.d);
        const uint32_t qh = qh_bits(b.qh);
        for (int j = 0; j < kQK / 2; ++j) {
            const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10);
            const int h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
            x[j] = static_cast<float>(((b.qs[j] & 0x0f) | h0) - 16) * d;
            x[j + kQK / 2] = static_cast<float>(((b.qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void decode_q5_1(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        const auto b = load_block<BlockQ5_1>(y, i);
        const float d = fp16_to_fp32(b.d), m = fp16_to_fp32(b.m);
        const uint32_t qh = qh_bits(b.qh);
        for (int j = 0; j < kQK / 2; ++j) {
            const int h0 = static_cast<int>(((qh >> j) << 4) & 0x10);
            const int h1 = static_cast<int>((qh >> (j + 12)) & 0x10);
            x[j] = static_cast<float>((b.qs[j] & 0x0f) | h0) * d + m;
            x[j + kQK / 2] = static_cast<float>((b.qs[j] >> 4) | h1) * d + m;
        }
    }
}

void decode_q8_0(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        const auto b = load_block<BlockQ8_0>(y, i);
        const float d = fp16_to_fp32(b.d);
        for (int j = 0; j < kQK; ++j) x[j] = static_cast<float>(b.qs[j]) * d;
    }
}

// ---- K-quant decoders (dequantize_row_q2_K .. q6_K) --------------------------------------------

void decode_q2_k(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const auto b = load_block<BlockQ2_K>(y, i);
        const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        const uint8_t* q = b.qs;
        int is = 0;
        for (int n = 0; n < kQK_K; n += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int half = 0; half < 2; ++half) {  // q[0..16) then q[16..32)
                    const uint8_t sc = b.scales[is++];
                    const float dl = d * static_cast<float>(sc & 0xf);
                    const float ml = dmin * static_cast<float>(sc >> 4);
                    for (int l = 0; l < 16; ++l) {
                        const int v = (q[l + 16 * half] >> shift) & 3;
                        *x++ = dl * static_cast<float>(v) - ml;
                    }
                }
            }
        }
    }
}

// Q3_K's 16 scales: 4 low bits from bytes 0..7 (low nibble for scales 0..7, high for 8..15), 2 high
// bits from bytes 8..11 (byte 8 + i % 4, bits 2 * (i / 4)); stored with a +32 offset.
int q3_k_scale(const uint8_t (&s)[kKScaleSize], int i) {
    const int low = i < 8 ? (s[i] & 0x0f) : (s[i - 8] >> 4);
    const int high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return static_cast<int8_t>(low | (high << 4)) - 32;
}

void decode_q3_k(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const auto b = load_block<BlockQ3_K>(y, i);
        const float d_all = fp16_to_fp32(b.d);
        const uint8_t* q = b.qs;
        uint8_t m = 1;
        int is = 0;
        for (int n = 0; n < kQK_K; n += 128, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = static_cast<uint8_t>(m << 1)) {
                for (int half = 0; half < 2; ++half) {
                    const float dl = d_all * static_cast<float>(q3_k_scale(b.scales, is++));
                    for (int l = 16 * half; l < 16 * half + 16; ++l) {
                        // the high bit set means no -4 offset
                        const int v = ((q[l] >> shift) & 3) - ((b.hmask[l] & m) ? 0 : 4);
                        *x++ = dl * static_cast<float>(v);
                    }
                }
            }
        }
    }
}

// get_scale_min_k4: sub-block j's 6-bit scale and min from Q4_K / Q5_K's 12 scale bytes.
void scale_min_k4(int j, const uint8_t (&q)[kKScaleSize], int& d, int& m) {
    if (j < 4) {
        d = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        d = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

void decode_q4_k(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const auto b = load_block<BlockQ4_K>(y, i);
        const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        const uint8_t* q = b.qs;
        for (int is = 0; is < 8; is += 2, q += 32) {
            int sc, m;
            scale_min_k4(is, b.scales, sc, m);
            const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
            scale_min_k4(is + 1, b.scales, sc, m);
            const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
            for (int l = 0; l < 32; ++l) *x++ = d1 * static_cast<float>(q[l] & 0xf) - m1;
            for (int l = 0; l < 32; ++l) *x++ = d2 * static_cast<float>(q[l] >> 4) - m2;
        }
    }
}

void decode_q5_k(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const auto b = load_block<BlockQ5_K>(y, i);
        const float d = fp16_to_fp32(b.d), dmin = fp16_to_fp32(b.dmin);
        const uint8_t* ql = b.qs;
        unsigned u1 = 1, u2 = 2;
        for (int is = 0; is < 8; is += 2, ql += 32, u1 <<= 2, u2 <<= 2) {
            int sc, m;
            scale_min_k4(is, b.scales, sc, m);
            const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(m);
            scale_min_k4(is + 1, b.scales, sc, m);
            const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(m);
            for (int l = 0; l < 32; ++l) {
                const int v = (ql[l] & 0xf) + ((b.qh[l] & u1) ? 16 : 0);
                *x++ = d1 * static_cast<float>(v) - m1;
            }
            for (int l = 0; l < 32; ++l) {
                const int v = (ql[l] >> 4) + ((b.qh[l] & u2) ? 16 : 0);
                *x++ = d2 * static_cast<float>(v) - m2;
            }
        }
    }
}

void decode_q6_k(const uint8_t* y, float* x, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const auto b = load_block<BlockQ6_K>(y, i);
        const float d = fp16_to_fp32(b.d);
        const uint8_t* ql = b.ql;
        const uint8_t* qh = b.qh;
        const int8_t* sc = b.scales;
        for (int n = 0; n < kQK_K; n += 128, x += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xf) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xf) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                // (d * scale) * q, left to right as ggml writes it
                x[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
                x[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
                x[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
                x[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
            }
        }
    }
}

void decode_f32(const uint8_t* y, float* x, int64_t n) {
    std::memcpy(x, y, static_cast<size_t>(n) * 4);
}

void decode_f16(const uint8_t* y, float* x, int64_t n) {
    for (int64_t j = 0; j < n; ++j) {
        uint16_t h;
        std::memcpy(&h, y + 2 * j, 2);
        x[j] = fp16_to_fp32(h);
    }
}

void decode_bf16(const uint8_t* y, float* x, int64_t n) {
    for (int64_t j = 0; j < n; ++j) {
        uint16_t h;
        std::memcpy(&h, y + 2 * j, 2);
        x[j] = bf16_to_fp32(h);
    }
}

// Decoders take the number of blocks.
using BlockDecoder = void (*)(const uint8_t*, float*, int64_t);

BlockDecoder decoder_for(GgmlType t) {
    switch (t) {
        case G::kF32:
            return decode_f32;
        case G::kF16:
            return decode_f16;
        case G::kBF16:
            return decode_bf16;
        case G::kQ4_0:
            return decode_q4_0;
        case G::kQ4_1:
            return decode_q4_1;
        case G::kQ5_0:
            return decode_q5_0;
        case G::kQ5_1:
            return decode_q5_1;
        case G::kQ8_0:
            return decode_q8_0;
        case G::kQ2_K:
            return decode_q2_k;
        case G::kQ3_K:
            return decode_q3_k;
        case G::kQ4_K:
            return decode_q4_k;
        case G::kQ5_K:
            return decode_q5_k;
        case G::kQ6_K:
            return decode_q6_k;
        default:
            return nullptr;
    }
}

}  // namespace

void dequantize_row(GgmlType t, const uint8_t* y, float* x, int64_t k) {
    const BlockDecoder decode = decoder_for(t);
    TORCH_CHECK(decode != nullptr, "dequantize_row: cannot decode ", ggml_type_name(t));
    TORCH_CHECK(k % ggml_block_size(t) == 0, "dequantize_row: k=", k, " is not a multiple of ",
                ggml_block_size(t), " for ", ggml_type_name(t));
    decode(y, x, k / ggml_block_size(t));
}

// ---- whole tensors -----------------------------------------------------------------------------

namespace {

// The largest magnitude that encodes without the fp16 value or scale overflowing (fp16 rounds
// 65520 to inf; Q8_0's d = amax / 127, Q4_0's d = max / -8).
double max_encodable_magnitude(GgmlType t) {
    switch (t) {
        case G::kF32:
            return std::numeric_limits<double>::infinity();
        case G::kF16:
            return 65519.0;
        case G::kQ4_0:
            return 65519.0 * 8.0;
        case G::kQ8_0:
            return 65519.0 * 127.0;
        default:
            return 0.0;
    }
}

void encode_row(GgmlType type, const float* x, uint8_t* y, int64_t row) {
    if (type == G::kF16) {
        for (int64_t j = 0; j < row; ++j) {
            const uint16_t h = fp32_to_fp16(x[j]);
            std::memcpy(y + 2 * j, &h, 2);
        }
    } else {
        quantize_row_q8_0_ref(x, y, row);
    }
}

// Q4_0 blocks of v [rows, row]: the codes and scales of quant/int4_codes.h (the int4 QAT scheme's
// own function), laid out as ggml's block_q4_0: fp16 d, then byte j = code j | code j+16 << 4.
at::Tensor encode_q4_0(const at::Tensor& v) {
    const Int4Groups q = int4_groups(v.view({-1, v.size(-1)}), kQK);
    at::Tensor codes = q.codes.to(at::kByte);  // [rows, blocks, 32]
    at::Tensor qs = codes.narrow(2, 0, kQK / 2)
                        .bitwise_or(codes.narrow(2, kQK / 2, kQK / 2).bitwise_left_shift(4));
    at::Tensor d = q.scale.to(at::kHalf).contiguous().view(at::kByte);  // [rows, blocks, 2], LE
    static_assert(sizeof(BlockQ4_0) == 2 + kQK / 2);
    return at::cat({d, qs}, 2).reshape({-1}).contiguous();
}

}  // namespace

at::Tensor ggml_encode(const at::Tensor& values, GgmlType type, const std::string& what) {
    QLORA_CHECK(values.defined() && values.dim() >= 1 && values.numel() > 0, what,
                ": expected a non-empty tensor");
    QLORA_CHECK(max_encodable_magnitude(type) > 0, what, ": cannot encode ", ggml_type_name(type),
                " (we write F32, F16, Q8_0 and Q4_0)");
    at::Tensor v = values.to(at::kCPU, at::kFloat).contiguous();
    const int64_t row = v.size(-1);
    QLORA_CHECK(row % ggml_block_size(type) == 0, what, ": rows of ", row, " elements cannot be ",
                ggml_type_name(type), " (needs a multiple of ", ggml_block_size(type), ")");
    const double amax = v.abs().max().item<double>();
    QLORA_CHECK(std::isfinite(amax), what, ": holds NaN or Inf; refusing to export it");
    QLORA_CHECK(amax <= max_encodable_magnitude(type), what, ": largest magnitude ", amax,
                " overflows ", ggml_type_name(type), " (at most ", max_encodable_magnitude(type),
                ")");
    const int64_t rows = v.numel() / row;
    const int64_t row_bytes = ggml_row_bytes(type, row);
    at::Tensor out = at::empty({rows * row_bytes}, at::kByte);
    const float* src = v.data_ptr<float>();
    uint8_t* dst = out.data_ptr<uint8_t>();
    if (type == G::kF32) {
        std::memcpy(dst, src, static_cast<size_t>(rows * row_bytes));
        return out;
    }
    if (type == G::kQ4_0) return encode_q4_0(v);
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / row);
    at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) encode_row(type, src + r * row, dst + r * row_bytes, row);
    });
    return out;
}

at::Tensor ggml_decode(const uint8_t* bytes, int64_t nbytes, GgmlType type, at::IntArrayRef shape,
                       const std::string& what) {
    QLORA_CHECK(!shape.empty(), what, ": a tensor needs at least one dimension");
    const BlockDecoder decode = decoder_for(type);
    QLORA_CHECK(decode != nullptr, what, ": ggml type ", ggml_type_name(type),
                " is not supported (we decode ", ggml_decodable_type_names(), ")");
    const int64_t row = shape.back();
    QLORA_CHECK(row % ggml_block_size(type) == 0, what, ": rows of ", row,
                " elements are not whole ", ggml_type_name(type), " blocks of ",
                ggml_block_size(type));
    int64_t numel = 1;
    for (int64_t s : shape) {
        QLORA_CHECK(s >= 0 && !__builtin_mul_overflow(numel, s, &numel), what, ": shape ", shape,
                    " is too large");
    }
    const int64_t rows = row == 0 ? 0 : numel / row;
    const int64_t row_bytes = ggml_row_bytes(type, row);
    QLORA_CHECK(rows * row_bytes == nbytes, what, ": ", ggml_type_name(type), " ", shape, " needs ",
                rows * row_bytes, " bytes, got ", nbytes);
    at::Tensor out = at::empty(shape, at::kFloat);
    float* dst = out.data_ptr<float>();
    const int64_t blocks_per_row = row / ggml_block_size(type);
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(row, 1));
    at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
            decode(bytes + r * row_bytes, dst + r * row, blocks_per_row);
    });
    return out;
}

at::Tensor ggml_decode(const at::Tensor& bytes, GgmlType type, at::IntArrayRef shape,
                       const std::string& what) {
    at::Tensor b = bytes.to(at::kCPU).contiguous();
    QLORA_CHECK(b.scalar_type() == at::kByte, what, ": expected uint8 bytes, got ",
                b.scalar_type());
    return ggml_decode(b.data_ptr<uint8_t>(), b.numel(), type, shape, what);
}

}  // namespace qlora::quant
