// Fast CPU 4-bit paths. Quantize converts chunks of blocks to float32 and runs the reference per
// chunk (exactness over speed: it runs once per weight). Dequantize is the hot path: per block it
// builds the 16 scaled code values once, then each packed byte is two table lookups.
#include "quant/quant4_cpu.h"

#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "quant/quant4_ref.h"

namespace qlora::quant {
namespace {

constexpr int64_t kQuantizeChunkElems = 1 << 16;  // converted to fp32 at a time, per thread

template <typename T>
void quantize_typed(const T* x, int64_t n, int64_t blocksize, const bnb::Codebook& cb,
                    uint8_t* packed, float* absmax) {
    const int64_t blocks = bnb::num_blocks(n, blocksize);
    const int64_t blocks_per_chunk = std::max<int64_t>(1, kQuantizeChunkElems / blocksize);
    at::parallel_for(0, bnb::num_blocks(blocks, blocks_per_chunk), 1, [&](int64_t c0, int64_t c1) {
        std::vector<float> buf;
        for (int64_t c = c0; c < c1; ++c) {
            const int64_t b0 = c * blocks_per_chunk;
            const int64_t b1 = std::min(blocks, b0 + blocks_per_chunk);
            const int64_t e0 = b0 * blocksize;
            const int64_t e1 = std::min(n, b1 * blocksize);
            buf.resize(static_cast<size_t>(e1 - e0));
            for (int64_t i = e0; i < e1; ++i) buf[i - e0] = static_cast<float>(x[i]);
            // The chunk looks like a whole tensor of e1 - e0 elements: its last block is partial
            // exactly when the real tensor's is (chunks start on block boundaries).
            quantize_4bit_ref(buf.data(), e1 - e0, blocksize, cb, packed + e0 / 2, absmax + b0, 0,
                              b1 - b0);
        }
    });
}

// Out is float or a 16-bit float; Raw is its storage (float, uint16_t). Tables hold raw values so
// the inner loop is pure loads and stores of plain integers/floats, which the compiler unrolls.
template <typename Out, typename Raw>
void dequantize_typed(const uint8_t* packed, const float* absmax_f32, const uint8_t* codes,
                      const float* nested, const float* map, float offset, int64_t n,
                      int64_t blocksize, const bnb::Codebook& cb, Raw* out) {
    static_assert(sizeof(Out) == sizeof(Raw));
    const int64_t blocks = bnb::num_blocks(n, blocksize);
    const int64_t grain = std::max<int64_t>(1, 32768 / blocksize);
    at::parallel_for(0, blocks, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            float scale;
            if (absmax_f32 != nullptr) {
                scale = absmax_f32[b];
            } else {
                float scaled = map[codes[b]] * nested[b / bnb::kNestedBlocksize];
                scale = scaled + offset;
            }
            Raw table[16];
            for (int k = 0; k < 16; ++k) {
                const Out v = static_cast<Out>(cb.values[k] * scale);
                std::memcpy(&table[k], &v, sizeof(Raw));
            }
            const int64_t start = b * blocksize;
            const int64_t len = std::min(blocksize, n - start);
            const uint8_t* src = packed + start / 2;
            Raw* dst = out + start;
            const int64_t pairs = len / 2;
            for (int64_t j = 0; j < pairs; ++j) {
                const uint8_t byte = src[j];
                dst[2 * j] = table[byte >> 4];
                dst[2 * j + 1] = table[byte & 0x0F];
            }
            if (len % 2 != 0) dst[len - 1] = table[src[pairs] >> 4];
        }
    });
}

}  // namespace

void quantize_4bit_cpu(const at::Tensor& x, int64_t blocksize, const bnb::Codebook& cb,
                       at::Tensor& packed, at::Tensor& absmax) {
    const int64_t n = x.numel();
    uint8_t* p = packed.data_ptr<uint8_t>();
    float* a = absmax.data_ptr<float>();
    switch (x.scalar_type()) {
        case at::kFloat:
            quantize_typed(x.data_ptr<float>(), n, blocksize, cb, p, a);
            break;
        case at::kHalf:
            quantize_typed(x.data_ptr<at::Half>(), n, blocksize, cb, p, a);
            break;
        case at::kBFloat16:
            quantize_typed(x.data_ptr<at::BFloat16>(), n, blocksize, cb, p, a);
            break;
        default:
            TORCH_CHECK(false, "quantize_4bit_cpu: unsupported dtype ", x.scalar_type());
    }
}

void dequantize_4bit_cpu(const at::Tensor& packed, const at::Tensor& absmax_f32,
                         const at::Tensor& absmax_codes, const at::Tensor& nested,
                         const at::Tensor& map, float offset, int64_t n, int64_t blocksize,
                         const bnb::Codebook& cb, at::Tensor& out) {
    const uint8_t* p = packed.data_ptr<uint8_t>();
    const float* a = absmax_f32.defined() ? absmax_f32.data_ptr<float>() : nullptr;
    const uint8_t* c = absmax_codes.defined() ? absmax_codes.data_ptr<uint8_t>() : nullptr;
    const float* ne = nested.defined() ? nested.data_ptr<float>() : nullptr;
    const float* m = map.defined() ? map.data_ptr<float>() : nullptr;
    switch (out.scalar_type()) {
        case at::kFloat:
            dequantize_typed<float, float>(p, a, c, ne, m, offset, n, blocksize, cb,
                                           out.data_ptr<float>());
            break;
        case at::kHalf:
            dequantize_typed<at::Half, uint16_t>(p, a, c, ne, m, offset, n, blocksize, cb,
                                                 static_cast<uint16_t*>(out.data_ptr()));
            break;
        case at::kBFloat16:
            dequantize_typed<at::BFloat16, uint16_t>(p, a, c, ne, m, offset, n, blocksize, cb,
                                                     static_cast<uint16_t*>(out.data_ptr()));
            break;
        default:
            TORCH_CHECK(false, "dequantize_4bit_cpu: unsupported output dtype ", out.scalar_type());
    }
}

}  // namespace qlora::quant
