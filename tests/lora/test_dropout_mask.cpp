// LoRA dropout masks on the CPU (kernels/dropout_mask_cpu.h, lora/dropout_mask.h): the threaded
// kernel against its reference twin bit for bit, the keep rate and pair statistics of the hash
// stream, the thresholds' edges, and the tensor entry point's use of the default generator
// (manual_seed reproduces a mask, the generator advances, any thread count gives the same mask);
// applying a mask: the kernel against ATen's x.mul(mask) (its reference) bit for bit on finite
// inputs, ±0 and NaN where x·0 gives them, in place, and the fallback for layouts it does not take.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/dropout_mask_cpu.h"
#include "lora/dropout_mask.h"

namespace qlora::lora {
namespace {

std::vector<char> mask_of(uint64_t seed, uint64_t threshold, int64_t n, bool reference,
                          kernels::CpuIsa isa = kernels::dropout_mask_isa()) {
    std::vector<char> out(static_cast<size_t>(n), 2);  // 2: never written
    auto* p = reinterpret_cast<bool*>(out.data());
    if (reference) {
        kernels::dropout_mask_ref(seed, threshold, n, p);
    } else {
        kernels::dropout_mask(seed, threshold, n, p, isa);
    }
    return out;
}

// Every body (AVX-512 where the CPU has it, and the portable loop), lengths that end inside a
// vector of pairs, inside a pair and on a parallel chunk's edge, thresholds with 0 and 2^32.
TEST(DropoutMask, KernelIsItsReferenceOnAnyThreadCount) {
    const int threads = at::get_num_threads();
    std::vector<kernels::CpuIsa> isas = {kernels::CpuIsa::kPortable};
    if (kernels::dropout_mask_isa() == kernels::CpuIsa::kAvx512)
        isas.push_back(kernels::CpuIsa::kAvx512);
    for (int64_t n : {1, 2, 3, 15, 16, 17, 31, 64, 32769, 100001}) {
        for (uint64_t seed : {0ull, 1ull, 0xDEADBEEFCAFEF00Dull}) {
            for (double keep : {0.0, 0.9, 1.0}) {
                const uint64_t threshold = kernels::dropout_keep_threshold(keep);
                const std::vector<char> ref = mask_of(seed, threshold, n, true);
                for (int t : {1, 2}) {
                    at::set_num_threads(t);
                    for (auto isa : isas) {
                        EXPECT_EQ(mask_of(seed, threshold, n, false, isa), ref)
                            << "n=" << n << " threads " << t << " isa "
                            << kernels::cpu_isa_name(isa);
                    }
                }
            }
        }
    }
    at::set_num_threads(threads);
}

// Over 2^21 elements the kept fraction lies within 5 standard deviations of keep, and so does the
// rate at which neighbours (the two halves of one 64-bit word, and consecutive words) agree.
TEST(DropoutMask, KeepRateAndNeighbourAgreementMatchIndependentDraws) {
    const int64_t n = int64_t{1} << 21;
    for (double keep : {0.05, 0.5, 0.95}) {
        const std::vector<char> m = mask_of(42, kernels::dropout_keep_threshold(keep), n, false);
        double kept = 0, same_pair = 0, same_next = 0;
        for (int64_t i = 0; i < n; ++i) {
            kept += m[static_cast<size_t>(i)];
            if (i % 2 == 1) same_pair += m[static_cast<size_t>(i)] == m[static_cast<size_t>(i - 1)];
            if (i % 2 == 0 && i > 0)
                same_next += m[static_cast<size_t>(i)] == m[static_cast<size_t>(i - 1)];
        }
        const double sd = std::sqrt(keep * (1 - keep) / static_cast<double>(n));
        EXPECT_NEAR(kept / static_cast<double>(n), keep, 5 * sd) << "keep " << keep;
        const double agree = keep * keep + (1 - keep) * (1 - keep);
        const double sd_pairs = std::sqrt(agree * (1 - agree) / static_cast<double>(n / 2));
        EXPECT_NEAR(same_pair / static_cast<double>(n / 2), agree, 5 * sd_pairs) << keep;
        EXPECT_NEAR(same_next / static_cast<double>(n / 2 - 1), agree, 5 * sd_pairs) << keep;
    }
}

TEST(DropoutMask, ThresholdEdges) {
    EXPECT_EQ(kernels::dropout_keep_threshold(0.0), 0u);
    EXPECT_EQ(kernels::dropout_keep_threshold(1.0), uint64_t{1} << 32);
    EXPECT_EQ(kernels::dropout_keep_threshold(0.5), uint64_t{1} << 31);
    const std::vector<char> all = mask_of(7, kernels::dropout_keep_threshold(1.0), 1001, false);
    const std::vector<char> none = mask_of(7, kernels::dropout_keep_threshold(0.0), 1001, false);
    EXPECT_EQ(all, std::vector<char>(1001, 1));
    EXPECT_EQ(none, std::vector<char>(1001, 0));
}

TEST(DropoutMask, TensorMasksFollowTheDefaultGenerator) {
    const at::Tensor x = at::zeros({3, 5, 77});
    torch::manual_seed(99);
    const at::Tensor a = dropout_keep_mask(x, 0.8), b = dropout_keep_mask(x, 0.8);
    EXPECT_EQ(a.sizes(), x.sizes());
    EXPECT_EQ(a.scalar_type(), at::kBool);
    EXPECT_FALSE(at::equal(a, b));  // the generator advanced
    const int threads = at::get_num_threads();
    at::set_num_threads(1);
    torch::manual_seed(99);
    EXPECT_TRUE(at::equal(dropout_keep_mask(x, 0.8), a));  // replayed, on one thread
    EXPECT_TRUE(at::equal(dropout_keep_mask(x, 0.8), b));
    at::set_num_threads(threads);
    const double kept = a.to(at::kDouble).mean().item<double>();
    EXPECT_GT(kept, 0.7);
    EXPECT_LT(kept, 0.9);
}

// ATen's multiply by the bool mask is the reference: same bits for finite inputs (negative ones
// dropped to -0), on sizes that split across threads and one that does not.
TEST(ApplyKeepMask, EqualsAtensMultiplyBitForBit) {
    const int threads = at::get_num_threads();
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        for (int64_t n : {1, 7, 65536 * 2 + 3}) {
            const at::Tensor x = at::randn({n}).to(dtype);
            const at::Tensor mask = at::rand({n}) < 0.9;
            const at::Tensor expected = x.mul(mask);
            for (int t : {1, 2}) {
                at::set_num_threads(t);
                const at::Tensor got = apply_keep_mask(x, mask);
                EXPECT_TRUE(at::equal(expected.view(dtype == at::kFloat ? at::kInt : at::kShort),
                                      got.view(dtype == at::kFloat ? at::kInt : at::kShort)))
                    << dtype << " n=" << n << " threads " << t;
            }
            at::Tensor in_place = x.clone();
            apply_keep_mask_(in_place, mask);
            EXPECT_TRUE(at::equal(expected, in_place)) << dtype << " in place";
        }
    }
    at::set_num_threads(threads);
}

TEST(ApplyKeepMask, NonFiniteInputsGiveWhatTheMultiplyGives) {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::nanf("");
    const at::Tensor x = at::tensor({inf, -inf, nan, -2.0f, 3.0f, inf, -inf, nan, -2.0f, 3.0f});
    const at::Tensor mask = at::tensor({1, 1, 1, 1, 1, 0, 0, 0, 0, 0}).to(at::kBool);
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        const at::Tensor got = apply_keep_mask(x.to(dtype), mask).to(at::kFloat);
        const at::Tensor expected = x.mul(mask);  // inf, -inf, nan, -2, 3, nan, nan, nan, -0, 0
        EXPECT_TRUE(at::equal(got.isnan(), expected.isnan())) << dtype << ": " << got;
        const at::Tensor finite = expected.isfinite();
        EXPECT_TRUE(at::equal(got.masked_select(finite), expected.masked_select(finite))) << dtype;
        EXPECT_TRUE(at::equal(got.signbit().masked_select(finite),
                              expected.signbit().masked_select(finite)))
            << dtype << ": -2·0 keeps its sign";
    }
}

// Both kernel bodies (AVX-512 where the CPU has it, and the portable loop) against ATen's multiply,
// bit for bit, with non-finite values among random ones and lengths that end inside a vector.
TEST(ApplyKeepMask, EveryBodyEqualsTheMultiply) {
    std::vector<kernels::CpuIsa> isas = {kernels::CpuIsa::kPortable};
    if (kernels::dropout_mask_isa() == kernels::CpuIsa::kAvx512)
        isas.push_back(kernels::CpuIsa::kAvx512);
    for (int64_t n : {1, 31, 33, 64, 100003}) {
        at::Tensor x = at::randn({n});
        if (n > 10) {
            x[3] = std::numeric_limits<float>::infinity();
            x[5] = -std::numeric_limits<float>::infinity();
            x[7] = std::nanf("");
            x[9] = -0.0f;
        }
        const at::Tensor mask = at::rand({n}) < 0.5;
        const auto* keep = mask.data_ptr<bool>();
        for (auto isa : isas) {
            const at::Tensor xb = x.to(at::kBFloat16);
            at::Tensor out = at::empty_like(x), out_b = at::empty_like(xb);
            kernels::apply_keep_mask(x.data_ptr<float>(), keep, n, out.data_ptr<float>(), isa);
            kernels::apply_keep_mask_bf16(reinterpret_cast<const uint16_t*>(xb.data_ptr()), keep, n,
                                          reinterpret_cast<uint16_t*>(out_b.data_ptr()), isa);
            for (const auto& [got, in] : {std::pair{out, x}, std::pair{out_b, xb}}) {
                const at::Tensor expected = in.mul(mask);
                const at::Tensor finite = expected.isfinite();
                EXPECT_TRUE(at::equal(got.isnan(), expected.isnan())) << n;
                EXPECT_TRUE(at::equal(got.masked_select(finite), expected.masked_select(finite)));
                EXPECT_TRUE(at::equal(got.signbit().masked_select(finite),
                                      expected.signbit().masked_select(finite)))
                    << n << " " << kernels::cpu_isa_name(isa);
            }
        }
    }
}

TEST(ApplyKeepMask, OtherLayoutsFallBackToTheMultiply) {
    const at::Tensor x = at::randn({6, 8}).t();  // not contiguous
    const at::Tensor mask = at::rand({8, 6}) < 0.5;
    EXPECT_TRUE(at::equal(apply_keep_mask(x, mask), x.mul(mask)));
    const at::Tensor x64 = at::randn({5}, at::kDouble);
    const at::Tensor m5 = at::rand({5}) < 0.5;
    EXPECT_TRUE(at::equal(apply_keep_mask(x64, m5), x64.mul(m5)));
}

}  // namespace
}  // namespace qlora::lora
