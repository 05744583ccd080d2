// The bf16 tiled 4-bit matmuls (quant/quant4_matmul.h, Quant4MatmulTuning::bf16_tiles): the bf16
// tiles against dequantize(bf16) bit for bit on every ISA body (the scalar one is the twin,
// rounding through c10::BFloat16), rounding ties and non-finite scales included; and the matmuls
// within the bound of a bf16 GEMM with float32 accumulation.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/quant4_matmul_cpu.h"
#include "quant/quant4_matmul.h"
#include "quant/quant4_tensor.h"
#include "support/quant4_weights.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using test::random_weight;
using test::raw_of;
using test::RawWeight;
using test::TuningGuard;

std::vector<kernels::CpuIsa> runnable_isas() {
    std::vector<kernels::CpuIsa> isas;
    for (auto isa :
         {kernels::CpuIsa::kAvx512, kernels::CpuIsa::kAvx2, kernels::CpuIsa::kPortable}) {
        if (isa <= kernels::best_cpu_isa()) isas.push_back(isa);
    }
    return isas;
}

// The bits of W[r0:r1, c0:c1] as the kernel writes them vs as dequantize(bf16) does (compared as
// int16, so that NaNs compare by their bits).
::testing::AssertionResult tile_matches(const RawWeight& w, kernels::CpuIsa isa,
                                        std::array<int64_t, 4> t) {
    const auto [r0, r1, c0, c1] = t;
    const at::Tensor full = w.w.dequantize(at::kBFloat16).view(at::kShort);
    at::Tensor tile = at::empty({r1 - r0, c1 - c0}, at::kShort);
    kernels::quant4_dequant_tile_bf16(
        w.m, r0, r1, c0, c1, reinterpret_cast<uint16_t*>(tile.data_ptr<int16_t>()), c1 - c0, isa);
    const at::Tensor expected = full.slice(0, r0, r1).slice(1, c0, c1);
    if (at::equal(expected, tile)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure()
           << kernels::cpu_isa_name(isa) << " tile " << r0 << ":" << r1 << ", " << c0 << ":" << c1
           << " differs in " << expected.ne(tile).sum().item<int64_t>() << " elements";
}

TEST(Bf16Tiles, BitIdenticalToDequantizeOnEveryBody) {
    struct Case {
        int64_t out, in, blocksize;
        std::vector<std::array<int64_t, 4>> tiles;
    };
    // Rows of whole blocks (the AVX-512BW body: 64-aligned spans), blocks straddling rows, a
    // blocksize below 64, column slabs with 64-aligned, 16-aligned and odd edges.
    const std::vector<Case> cases = {
        {37, 256, 64, {{0, 37, 0, 256}, {3, 20, 64, 192}, {5, 6, 16, 144}, {2, 9, 7, 201}}},
        {9, 1000, 128, {{0, 9, 0, 1000}, {1, 8, 128, 896}, {4, 5, 3, 997}}},
        {6, 96, 32, {{0, 6, 0, 96}, {1, 5, 32, 64}}},
        {3, 4096, 4096, {{0, 3, 0, 4096}, {1, 2, 64, 4032}}}};
    uint64_t seed = 21;
    for (const Case& c : cases) {
        for (QuantType type : {QuantType::kNF4, QuantType::kFP4}) {
            for (bool dq : {true, false}) {
                const RawWeight w =
                    raw_of(random_weight(c.out, c.in, type, c.blocksize, dq, seed++));
                for (kernels::CpuIsa isa : runnable_isas()) {
                    for (const auto& t : c.tiles) EXPECT_TRUE(tile_matches(w, isa, t));
                }
            }
        }
    }
}

// Scales chosen so that code · scale lands on bf16 rounding ties (1 + 2^-8 rounds down to even,
// 1 + 3·2^-8 up), overflows to infinity, is subnormal, or is NaN (an infinite scale times the
// zero code); float32 absmax (no double quant), so each block's scale is exactly what is set.
TEST(Bf16Tiles, TiesOverflowSubnormalsAndNaNRoundAsC10Does) {
    const int64_t blocks = 8, blocksize = 64, in = blocks * blocksize;
    const float inf = std::numeric_limits<float>::infinity();
    at::Tensor absmax = at::tensor({1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 3.4e38f, 1e-39f, inf,
                                    std::numeric_limits<float>::quiet_NaN(), 0.0f, 0.75f});
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(3);
    at::Tensor packed = at::randint(0, 256, {in / 2}, gen, at::kByte);
    for (QuantType type : {QuantType::kNF4, QuantType::kFP4}) {
        const Quant4Tensor w4 = Quant4Tensor::from_parts(packed, absmax, {}, {}, 0.0f, {1, in},
                                                         at::kFloat, type, blocksize, "ties");
        const RawWeight w = raw_of(w4);
        for (kernels::CpuIsa isa : runnable_isas()) {
            EXPECT_TRUE(tile_matches(w, isa, {0, 1, 0, in})) << quant_type_name(type);
            EXPECT_TRUE(tile_matches(w, isa, {0, 1, 16, in - 16})) << quant_type_name(type);
        }
    }
}

// |y - Σ x·deq_bf16(w)| <= u_bf16·|Σ| + γ_K·Σ|x·deq_bf16(w)|: the float32-accumulated sum (any
// order), then one rounding to bf16 (u = 2^-8); the reference sums in float64.
::testing::AssertionResult within_bf16_bound(const at::Tensor& y, const at::Tensor& x,
                                             const at::Tensor& w, int64_t k) {
    const double u32 = std::ldexp(1.0, -24), u16 = std::ldexp(1.0, -8);
    const double gamma = static_cast<double>(k) * u32 / (1.0 - static_cast<double>(k) * u32);
    const at::Tensor xd = x.to(at::kDouble), wd = w.to(at::kDouble);
    const at::Tensor ref = xd.mm(wd);
    const at::Tensor abs_sum = xd.abs().mm(wd.abs());
    const at::Tensor err = (y.to(at::kDouble) - ref).abs();
    const at::Tensor bound = ref.abs() * u16 + abs_sum * gamma * (1 + u16) + 1e-30;
    const double worst = (err / bound).max().item<double>();
    if (worst <= 1.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "error/bound reaches " << worst << " (K=" << k << ")";
}

TEST(Bf16TiledMatmul, ForwardAndInputGradientWithinTheBf16Bound) {
    TuningGuard guard;
    quant4_matmul_tuning().bf16_tiles = true;      // also where the CPU lacks bf16 dot products
    quant4_matmul_tuning().tile_bytes = 16 << 10;  // several tiles per matrix
    struct Shape {
        int64_t out, in, blocksize;
    };
    const std::vector<Shape> shapes = {
        {40, 512, 64}, {70, 160, 32}, {9, 1000, 128}, {33, 256, 256}, {130, 64, 64}};
    uint64_t seed = 40;
    for (const Shape& s : shapes) {
        for (bool dq : {true, false}) {
            const QuantType type = dq ? QuantType::kNF4 : QuantType::kFP4;
            const RawWeight w = raw_of(random_weight(s.out, s.in, type, s.blocksize, dq, seed++));
            const at::Tensor deq = w.w.dequantize(at::kBFloat16);  // [out, in]
            for (int64_t n : {9, 17, 64}) {
                const at::Tensor x = at::randn({n, s.in}).to(at::kBFloat16);
                const at::Tensor g = at::randn({n, s.out}).to(at::kBFloat16);
                for (kernels::CpuIsa isa : runnable_isas()) {
                    quant4_matmul_tuning().max_isa = isa;
                    const at::Tensor y = quant4_linear(x, w.w);
                    const at::Tensor dx = quant4_matmul_grad_input(g, w.w);
                    ASSERT_EQ(y.scalar_type(), at::kBFloat16);
                    ASSERT_EQ(dx.scalar_type(), at::kBFloat16);
                    EXPECT_TRUE(within_bf16_bound(y, x, deq.t(), s.in))
                        << kernels::cpu_isa_name(isa) << " y out=" << s.out << " in=" << s.in
                        << " n=" << n;
                    EXPECT_TRUE(within_bf16_bound(dx, g, deq, s.out))
                        << kernels::cpu_isa_name(isa) << " dx out=" << s.out << " in=" << s.in
                        << " n=" << n;
                }
            }
        }
    }
}

// Off, a bf16 input computes in float32 and rounds the result once: the same bound holds (with
// a float32 sum of float32 products of the bf16 weights), and bias is added in either mode.
TEST(Bf16TiledMatmul, BothModesAgreeAndAddTheBias) {
    TuningGuard guard;
    const RawWeight w = raw_of(random_weight(48, 256, QuantType::kNF4, 64, true, 9));
    const at::Tensor x = at::randn({2, 12, 256}).to(at::kBFloat16);
    const at::Tensor bias = at::randn({48}).to(at::kBFloat16);
    const at::Tensor expected = at::linear(
        x.to(at::kFloat), w.w.dequantize(at::kBFloat16).to(at::kFloat), bias.to(at::kFloat));
    for (bool on : {true, false}) {
        quant4_matmul_tuning().bf16_tiles = on;
        const at::Tensor y = quant4_linear(x, w.w, bias);
        EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 12, 48}));
        EXPECT_TRUE(qlora::test::tensors_close(expected, y.to(at::kFloat), 1e-2, 1e-2))
            << (on ? "bf16 tiles" : "float32 tiles");
    }
}

}  // namespace
}  // namespace qlora::quant
