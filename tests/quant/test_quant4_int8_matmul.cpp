// The opt-in int8-activation matmul, decode and prefill (kernels/quant4_matmul_cpu.h): the VNNI
// kernel against its reference twin within the float32 rounding bound, the approximation against
// the exact x·deq(W)ᵀ within the stated bound, the activation codes by hand, and the fallbacks (off
// by default, layouts and CPUs it does not serve, non-finite inputs).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/quant4_matmul_cpu.h"
#include "quant/quant4_matmul.h"
#include "quant/quant4_ops.h"
#include "quant/quant4_tensor.h"
#include "support/quant4_weights.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using test::RawWeight;
using test::TuningGuard;

RawWeight make_weight(int64_t out, int64_t in, QuantType type, int64_t blocksize, bool dq,
                      uint64_t seed) {
    return test::raw_of(test::random_weight(out, in, type, blocksize, dq, seed));
}

struct Shape {
    int64_t out, in, blocksize;
};
// Layouts the kernel serves: rows of whole blocks, blocks of whole 64-column groups; an odd
// number of groups per row (the unpaired last group), several blocks per group pair, one block
// per row, and more than 256 blocks (several nested scales under double quantization).
const std::vector<Shape> kServed = {{7, 64, 64},    {5, 192, 64},  {3, 256, 128},  {4, 4096, 4096},
                                    {33, 512, 256}, {17, 960, 64}, {40, 1024, 64}, {2, 320, 64}};

bool cpu_serves_int8() {
    kernels::Packed4bitMatrix probe;
    probe.cols = 64;
    probe.blocksize = 64;
    return kernels::quant4_int8_gemv_supported(probe);
}

// Rows of x with a spread of magnitudes per group (so some groups have a small amax).
at::Tensor activations(int64_t n, int64_t in) {
    return at::randn({n, in}) * at::exp(at::randn({n, in}) * 1.5);
}

// |y - ref| <= γ_{K+2}·abs_sum (+ ref's own rounding): the kernel against its twin.
::testing::AssertionResult within_rounding(const at::Tensor& y, const at::Tensor& ref,
                                           const at::Tensor& abs_sum, int64_t k) {
    const double u = std::ldexp(1.0, -24), terms = static_cast<double>(k + 2);
    const double gamma = terms * u / (1.0 - terms * u);
    const at::Tensor err = (y.to(at::kDouble) - ref.to(at::kDouble)).abs();
    const at::Tensor bound = abs_sum.to(at::kDouble) * gamma + ref.to(at::kDouble).abs() * u;
    const double worst = (err / (bound + 1e-35)).max().item<double>();
    if (worst <= 1.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "error/bound reaches " << worst;
}

TEST(Int8Matmul, KernelMatchesItsReferenceWithinTheRoundingBound) {
    if (!cpu_serves_int8()) GTEST_SKIP() << "this CPU has no AVX-512 BW + VNNI";
    uint64_t seed = 1;
    for (const Shape& s : kServed) {
        for (QuantType type : {QuantType::kNF4, QuantType::kFP4}) {
            for (bool dq : {true, false}) {
                RawWeight w = make_weight(s.out, s.in, type, s.blocksize, dq, seed++);
                ASSERT_TRUE(kernels::quant4_int8_gemv_supported(w.m));
                // decode: 1..15 rows (groups of 4 and the rest); prefill from 16 rows: tiles
                // of 16 rows of W (the shapes' row counts leave partial tiles) against rows in
                // chunks of 8, then 4, then single rows
                for (int64_t n : {1, 2, 3, 4, 5, 8, 15, 16, 20, 67}) {
                    at::Tensor x = activations(n, s.in);
                    std::vector<uint8_t> storage(
                        static_cast<size_t>(kernels::Int8Activations::bytes_for(n, s.in)));
                    auto xq = kernels::Int8Activations::layout(storage.data(), n, s.in);
                    ASSERT_TRUE(
                        kernels::quantize_activations_int8(x.data_ptr<float>(), n, s.in, xq));
                    at::Tensor y = at::empty({n, s.out}), ref = at::empty({n, s.out}),
                               abs_sum = at::empty({n, s.out});
                    kernels::quant4_gemv_xwt_int8(w.m, xq, y.data_ptr<float>(), s.out);
                    kernels::quant4_matmul_xwt_int8_ref(w.m, x.data_ptr<float>(), n, s.in,
                                                        ref.data_ptr<float>(), s.out,
                                                        abs_sum.data_ptr<float>());
                    EXPECT_TRUE(within_rounding(y, ref, abs_sum, s.in))
                        << quant_type_name(type) << (dq ? " dq" : "") << " out=" << s.out
                        << " in=" << s.in << " bs=" << s.blocksize << " n=" << n;
                }
            }
        }
    }
}

// The header's bound, computed here from its definition: Σ_k |scale_k|·(0.5/127)·|x̃_k| +
// |deq(w_k)|·|x_k - x̃_k|, x̃ the 64-column group's dequantized int8 activations; plus float32
// rounding (γ_{K+2} of Σ|deq(w)·x| and of the bound's own terms).
at::Tensor stated_bound(const RawWeight& w, const at::Tensor& x) {
    const int64_t in = w.m.cols, out = w.m.rows;
    at::Tensor groups = x.view({x.size(0), in / 64, 64});
    at::Tensor amax = groups.abs().amax(-1, /*keepdim=*/true);
    at::Tensor inverse = at::where(amax > 0, 127.0f / amax, at::zeros_like(amax));
    at::Tensor x_tilde = ((groups * inverse).round() * (amax / 127.0f)).view({-1, in});
    std::vector<float> scale(static_cast<size_t>(out * in));
    for (int64_t e = 0; e < out * in; ++e)
        scale[static_cast<size_t>(e)] = kernels::block_scale(w.m, e / w.m.blocksize);
    const at::Tensor scales = at::from_blob(scale.data(), {out, in}).to(at::kDouble);
    const at::Tensor deq = w.w.dequantize(at::kFloat).to(at::kDouble);
    const at::Tensor xd = x.to(at::kDouble), xt = x_tilde.to(at::kDouble);
    at::Tensor bound =
        xt.abs().mm(scales.abs().t()) * (0.5 / 127.0) + (xd - xt).abs().mm(deq.abs().t());
    const double u = std::ldexp(1.0, -24), terms = static_cast<double>(in + 2);
    return bound * (1.0 + 2 * terms * u) + xd.abs().mm(deq.abs().t()) * 2 * terms * u;
}

TEST(Int8Matmul, ApproximationIsWithinTheStatedBoundOfTheExactProduct) {
    if (!cpu_serves_int8()) GTEST_SKIP() << "this CPU has no AVX-512 BW + VNNI";
    TuningGuard guard;
    quant4_matmul_tuning().int8_activations = true;
    uint64_t seed = 50;
    for (const Shape& s : kServed) {
        for (bool dq : {true, false}) {
            const QuantType type = dq ? QuantType::kNF4 : QuantType::kFP4;
            RawWeight w = make_weight(s.out, s.in, type, s.blocksize, dq, seed++);
            for (int64_t n : {1, 3, 8, 70}) {  // decode- and prefill-sized
                const at::Tensor x = activations(n, s.in);
                at::Tensor exact = at::empty({n, s.out});
                kernels::quant4_matmul_xwt_ref(w.m, x.data_ptr<float>(), n, s.in,
                                               exact.data_ptr<float>(), s.out);
                const at::Tensor y = quant4_linear(x, w.w);  // through the tensor entry point
                const at::Tensor err = (y.to(at::kDouble) - exact.to(at::kDouble)).abs();
                const at::Tensor bound =
                    stated_bound(w, x) + exact.to(at::kDouble).abs() * std::ldexp(1.0, -24);
                EXPECT_LE((err / (bound + 1e-35)).max().item<double>(), 1.0)
                    << " out=" << s.out << " in=" << s.in << " bs=" << s.blocksize << " n=" << n;
                // and it is an approximation: not the exact GEMV's result
                if (s.in >= 256) {
                    EXPECT_GT(err.max().item<double>(), 0.0);
                }
            }
        }
    }
}

TEST(Int8Matmul, ActivationCodesAndScalesFollowTheRule) {
    // One group: x_k = (k - 20) · 0.5, amax = 21.5 at k = 63; q_k = round-half-even(x_k·127/21.5).
    std::vector<float> x(64);
    for (int k = 0; k < 64; ++k) x[static_cast<size_t>(k)] = static_cast<float>(k - 20) * 0.5f;
    std::vector<uint8_t> storage(static_cast<size_t>(kernels::Int8Activations::bytes_for(1, 64)));
    auto xq = kernels::Int8Activations::layout(storage.data(), 1, 64);
    ASSERT_TRUE(kernels::quantize_activations_int8(x.data(), 1, 64, xq));
    const float inverse = 127.0f / 21.5f;
    int sum = 0;
    for (int k = 0; k < 64; ++k) {
        const int q = static_cast<int>(std::nearbyint(x[static_cast<size_t>(k)] * inverse));
        // octet order: in each run of 8 columns, 0, 2, 4, 6, then 1, 3, 5, 7
        const int position = k / 8 * 8 + (k % 2 == 0 ? (k % 8) / 2 : 4 + (k % 8) / 2);
        EXPECT_EQ(kernels::int8_code_position(k), position);
        EXPECT_EQ(xq.codes[position], q) << "column " << k;
        sum += q;
    }
    EXPECT_EQ(xq.codes[63], 127);  // column 63, the group's amax
    EXPECT_EQ(xq.codes[18], 0);    // column 20 (octet 2, column 4 -> 16 + 2): x = 0
    EXPECT_EQ(xq.code_sum[0], sum);
    EXPECT_FLOAT_EQ(xq.dot_scale[0], 21.5f / (127.0f * 127.0f));
    // An all-zero group quantizes to zeros with a zero scale; a NaN or an infinity is refused.
    std::vector<float> zeros(64, 0.0f);
    ASSERT_TRUE(kernels::quantize_activations_int8(zeros.data(), 1, 64, xq));
    EXPECT_EQ(xq.dot_scale[0], 0.0f);
    EXPECT_EQ(xq.code_sum[0], 0);
    EXPECT_EQ(xq.codes[5], 0);
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        x[17] = bad;
        EXPECT_FALSE(kernels::quantize_activations_int8(x.data(), 1, 64, xq));
    }
    int8_t c8[16];
    kernels::int8_code_table(codebook(QuantType::kNF4).values, c8);
    EXPECT_EQ(c8[0], -127);  // NF4 -1
    EXPECT_EQ(c8[7], 0);     // NF4 0
    EXPECT_EQ(c8[8], 10);    // NF4 0.0796 · 127 = 10.1
    EXPECT_EQ(c8[15], 127);  // NF4 1
}

// The quantizer (the AVX-512 body on a CPU with VNNI, the twin elsewhere) writes the reference
// twin's bytes: codes, sums and scales, on rows with ties (x·127/amax exactly k + 0.5), zeros,
// denormals and a spread of magnitudes; both refuse a non-finite group.
TEST(Int8Matmul, VectorQuantizerWritesTheReferenceBytes) {
    const int64_t n = 5, cols = 320;
    at::Tensor x = activations(n, cols);
    x[1].narrow(0, 0, 64).copy_(at::arange(-32, 32, at::kFloat) * (127.0f / 63.5f) * 0.5f + 0.25f);
    x[1][63] = 63.5f;  // amax: x·127/amax hits every half integer in the group above
    x[2].narrow(0, 64, 64).zero_();
    x[3].narrow(0, 128, 64).fill_(1e-40f);
    const int64_t ldx = cols;
    const auto bytes = static_cast<size_t>(kernels::Int8Activations::bytes_for(n, cols));
    std::vector<uint8_t> fast(bytes, 0xAB), ref(bytes, 0xAB);
    auto xf = kernels::Int8Activations::layout(fast.data(), n, cols);
    auto xr = kernels::Int8Activations::layout(ref.data(), n, cols);
    ASSERT_TRUE(kernels::quantize_activations_int8(x.data_ptr<float>(), n, ldx, xf));
    ASSERT_TRUE(kernels::quantize_activations_int8_ref(x.data_ptr<float>(), n, ldx, xr));
    EXPECT_EQ(fast, ref);
    for (float bad : {NAN, INFINITY, -INFINITY}) {
        x[4][300] = bad;
        EXPECT_FALSE(kernels::quantize_activations_int8(x.data_ptr<float>(), n, ldx, xf));
        EXPECT_FALSE(kernels::quantize_activations_int8_ref(x.data_ptr<float>(), n, ldx, xr));
    }
}

// The kernels read the packed codes and the double-quant code bytes at any alignment (a view's
// parts need not start on a 4-byte boundary): the same bits at offsets 1..3.
TEST(Int8Matmul, MisalignedPartsGiveTheSameBits) {
    if (!cpu_serves_int8()) GTEST_SKIP() << "this CPU has no AVX-512 BW + VNNI";
    RawWeight w = make_weight(37, 512, QuantType::kNF4, 64, /*dq=*/true, 77);
    for (int64_t n : {1, 20}) {
        const at::Tensor x = activations(n, 512);
        std::vector<uint8_t> storage(
            static_cast<size_t>(kernels::Int8Activations::bytes_for(n, 512)));
        auto xq = kernels::Int8Activations::layout(storage.data(), n, 512);
        ASSERT_TRUE(kernels::quantize_activations_int8(x.data_ptr<float>(), n, 512, xq));
        at::Tensor aligned = at::empty({n, 37});
        kernels::quant4_gemv_xwt_int8(w.m, xq, aligned.data_ptr<float>(), 37);
        const int64_t packed_bytes = w.w.packed().numel(), code_bytes = w.w.absmax().numel();
        for (int64_t offset = 1; offset < 4; ++offset) {
            std::vector<uint8_t> packed(static_cast<size_t>(packed_bytes + offset));
            std::vector<uint8_t> codes(static_cast<size_t>(code_bytes + offset));
            std::copy_n(w.m.packed, packed_bytes, packed.begin() + offset);
            std::copy_n(w.m.absmax_codes, code_bytes, codes.begin() + offset);
            kernels::Packed4bitMatrix shifted = w.m;
            shifted.packed = packed.data() + offset;
            shifted.absmax_codes = codes.data() + offset;
            at::Tensor y = at::empty({n, 37});
            kernels::quant4_gemv_xwt_int8(shifted, xq, y.data_ptr<float>(), 37);
            EXPECT_TRUE(at::equal(y, aligned)) << "offset " << offset << " n=" << n;
        }
    }
}

TEST(Int8Matmul, OffByDefaultAndExactWhereItDoesNotApply) {
    TuningGuard guard;
    ASSERT_FALSE(quant4_matmul_tuning().int8_activations);
    RawWeight w = make_weight(24, 256, QuantType::kNF4, 64, true, 9);
    const at::Tensor x = activations(2, 256);
    const at::Tensor exact = quant4_linear(x, w.w);  // the default: the exact GEMV
    quant4_matmul_tuning().int8_activations = true;
    // A row that is not whole 64-column groups of whole blocks: the exact GEMV, bit for bit.
    RawWeight odd = make_weight(5, 96, QuantType::kNF4, 32, false, 10);
    EXPECT_FALSE(kernels::quant4_int8_gemv_supported(odd.m));
    const at::Tensor x96 = activations(1, 96);
    const at::Tensor y96 = quant4_linear(x96, odd.w);
    quant4_matmul_tuning().int8_activations = false;
    EXPECT_TRUE(qlora::test::tensors_identical(quant4_linear(x96, odd.w), y96));
    // A non-finite activation: the exact GEMV runs and the NaN propagates as it would.
    quant4_matmul_tuning().int8_activations = true;
    at::Tensor bad = x.clone();
    bad[0][3] = NAN;
    const at::Tensor y_bad = quant4_linear(bad, w.w);
    EXPECT_TRUE(at::isnan(y_bad[0]).all().item<bool>());
    EXPECT_TRUE(qlora::test::tensors_close(y_bad[1], exact[1], 1e-5, 1e-5));
}

}  // namespace
}  // namespace qlora::quant
