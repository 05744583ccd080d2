// The fused cross-entropy: the kernels against their reference twin (AVX-512 and portable, float32
// and bf16 logits, odd vocabularies, strided rows, ignored rows, the label at either end), the
// autograd function against ATen's composite (loss and the logits' gradient), and the edges:
// out-of-vocabulary labels, non-finite logits, thread counts.
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "kernels/cross_entropy_cpu.h"
#include "support/test_support.h"
#include "train/cross_entropy.h"

namespace qlora::train {
namespace {

using kernels::CpuIsa;

constexpr double kU = 1.0 / (1 << 24);  // float32 unit roundoff

// Logits [rows, ld] (the first `vocab` columns used), spread like a model's (a few large ones).
at::Tensor logits_for(int64_t rows, int64_t vocab, int64_t ld, at::ScalarType dtype,
                      uint64_t seed) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Tensor full = at::randn({rows, ld}, gen) * 3.0;
    full.narrow(1, 0, std::min<int64_t>(vocab, 3)).add_(8.0);
    return full.to(dtype);
}

// Labels over the whole range, both ends included, and every fifth row ignored.
at::Tensor labels_for(int64_t rows, int64_t vocab) {
    at::Tensor labels = at::empty({rows}, at::kLong);
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t pick[] = {0, vocab - 1, (r * 7919) % vocab, -100, (r * 31) % vocab};
        labels[r] = pick[r % 5];
    }
    return labels;
}

kernels::LogitRows rows(const at::Tensor& logits, int64_t vocab, const at::Tensor& labels) {
    kernels::LogitRows x;
    x.data = logits.data_ptr();
    x.bf16 = logits.scalar_type() == at::kBFloat16;
    x.rows = logits.size(0);
    x.vocab = vocab;
    x.ld = logits.stride(0);
    x.labels = labels.data_ptr<int64_t>();
    return x;
}

std::vector<CpuIsa> isas() {
    std::vector<CpuIsa> out = {CpuIsa::kPortable};
    if (kernels::avx512_bw_vl_isa() == CpuIsa::kAvx512) out.push_back(CpuIsa::kAvx512);
    return out;
}

// lse and loss within the stated bound of the double-sum twin: γ_vocab (the float32 sum's order)
// plus a few ulps (the vector exp and the final log and add).
TEST(CrossEntropyKernel, ForwardMatchesTheTwinWithinGammaVocab) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        for (int64_t vocab : {1, 15, 16, 17, 33, 1000, 32000}) {
            const int64_t n = 11, ld = vocab + 5;
            const at::Tensor logits = logits_for(n, vocab, ld, dtype, vocab);
            const at::Tensor labels = labels_for(n, vocab);
            const auto x = rows(logits, vocab, labels);
            at::Tensor loss_ref = at::empty({n}), lse_ref = at::empty({n});
            kernels::cross_entropy_forward_ref(x, loss_ref.data_ptr<float>(),
                                               lse_ref.data_ptr<float>());
            for (CpuIsa isa : isas()) {
                at::Tensor loss = at::empty({n}), lse = at::empty({n});
                kernels::cross_entropy_forward(x, loss.data_ptr<float>(), lse.data_ptr<float>(),
                                               isa);
                const double gamma = vocab * kU / (1 - vocab * kU);
                for (int64_t r = 0; r < n; ++r) {
                    const double l = lse_ref[r].item<double>();
                    const double bound = gamma + 8 * kU * std::max(1.0, std::abs(l));
                    if (labels[r].item<int64_t>() == -100) {
                        EXPECT_EQ(loss[r].item<float>(), 0.0f);
                        continue;
                    }
                    EXPECT_NEAR(lse[r].item<double>(), l, bound)
                        << "vocab " << vocab << " row " << r << " " << dtype;
                    EXPECT_NEAR(loss[r].item<double>(), loss_ref[r].item<double>(), 2 * bound)
                        << "vocab " << vocab << " row " << r << " " << dtype;
                }
            }
        }
    }
}

// With the same lse, the gradients differ only by the exp's last ulp: float32 within a few ulps of
// scale, bf16 by at most one bf16 step (a rounding boundary between the two exps).
TEST(CrossEntropyKernel, BackwardMatchesTheTwin) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        for (int64_t vocab : {1, 17, 33, 1000, 32000}) {
            const int64_t n = 11, ld = vocab + 3;
            const at::Tensor logits = logits_for(n, vocab, ld, dtype, 7 + vocab);
            const at::Tensor labels = labels_for(n, vocab);
            const auto x = rows(logits, vocab, labels);
            at::Tensor loss = at::empty({n}), lse = at::empty({n});
            kernels::cross_entropy_forward_ref(x, loss.data_ptr<float>(), lse.data_ptr<float>());
            const float scale = 1.0f / 37.0f;
            at::Tensor ref = at::full({n, vocab + 2}, 99.0, dtype);  // ld_dx > vocab
            kernels::cross_entropy_backward_ref(x, lse.data_ptr<float>(), scale, ref.data_ptr(),
                                                ref.stride(0));
            for (CpuIsa isa : isas()) {
                at::Tensor got = at::full({n, vocab + 2}, 99.0, dtype);
                kernels::cross_entropy_backward(x, lse.data_ptr<float>(), scale, got.data_ptr(),
                                                got.stride(0), isa);
                // The padding past vocab is untouched.
                EXPECT_TRUE(
                    test::tensors_identical(ref.narrow(1, vocab, 2), got.narrow(1, vocab, 2)));
                const at::Tensor a = ref.narrow(1, 0, vocab).to(at::kDouble);
                const at::Tensor b = got.narrow(1, 0, vocab).to(at::kDouble);
                const double rel = dtype == at::kFloat ? 8 * kU : 1.0 / 128;
                const at::Tensor excess = (a - b).abs() - (a.abs() * rel + scale * 8 * kU);
                EXPECT_LE(excess.max().item<double>(), 0.0) << "vocab " << vocab << " " << dtype;
                for (int64_t r = 0; r < n; ++r) {
                    if (labels[r].item<int64_t>() != -100) continue;
                    EXPECT_EQ(got[r].narrow(0, 0, vocab).abs().max().item<double>(), 0.0);
                }
            }
        }
    }
}

// The autograd function against at::cross_entropy_loss on float32 logits (what the loss protocol
// computed before): the same sum, and the same gradient of the logits.
TEST(FusedCrossEntropy, LossAndGradientMatchAtenCrossEntropy) {
    for (auto dtype : {at::kFloat, at::kBFloat16}) {
        const int64_t n = 40, vocab = 3001;
        const at::Tensor base = logits_for(n, vocab, vocab, dtype, 5);
        const at::Tensor labels = labels_for(n, vocab);
        ASSERT_TRUE(fused_cross_entropy(base));
        at::Tensor a = base.clone().requires_grad_(true), b = base.clone().requires_grad_(true);
        at::Tensor ours = summed_cross_entropy(a, labels);
        at::Tensor theirs =
            at::cross_entropy_loss(b.to(at::kFloat), labels, {}, at::Reduction::Sum, -100);
        EXPECT_EQ(ours.scalar_type(), at::kFloat);
        EXPECT_NEAR(ours.item<double>(), theirs.item<double>(), 1e-5 * theirs.item<double>());
        const double count = labels.ne(-100).sum().item<double>();
        (ours / count).backward();
        (theirs / count).backward();
        // Relative to the softmax term p/count: at the label the gradient (p - 1)/count cancels,
        // and both sides' rounding of lse (an ulp of |lse| ~ 2^-20 here) scales p, not p - 1.
        const double rel = dtype == at::kFloat ? 1e-5 : 1.0 / 128;
        const at::Tensor ga = a.grad().to(at::kDouble), gb = b.grad().to(at::kDouble);
        at::Tensor onehot = at::zeros({n, vocab}, at::kDouble);
        for (int64_t r = 0; r < n; ++r) {
            if (labels[r].item<int64_t>() != -100) onehot[r][labels[r].item<int64_t>()] = 1.0;
        }
        const at::Tensor p_term = gb.abs() + onehot / count;
        const at::Tensor excess = (ga - gb).abs() - p_term * rel;
        EXPECT_LE(excess.max().item<double>(), 0.0) << dtype;
    }
}

// Rows are independent: one thread and two give the same bits; strided rows (a slice of [B, T, V]
// logits, as the loss protocol passes them) give what the contiguous copy gives.
TEST(FusedCrossEntropy, ThreadCountsAndStridedRowsGiveTheSameBits) {
    const at::Tensor big = logits_for(3 * 9, 517, 517, at::kBFloat16, 3).view({3, 9, 517});
    const at::Tensor strided = big.select(0, 1).narrow(0, 0, 8);  // rows 1..8 of batch 1
    const at::Tensor labels = labels_for(8, 517);
    const int threads = at::get_num_threads();
    auto run = [&](const at::Tensor& logits, int t) {
        at::set_num_threads(t);
        at::Tensor x = logits.clone().requires_grad_(true);
        if (!logits.is_contiguous()) x = big.clone().requires_grad_(true);
        at::Tensor rows_of_x = logits.is_contiguous() ? x : x.select(0, 1).narrow(0, 0, 8);
        at::Tensor loss = summed_cross_entropy(rows_of_x, labels);
        loss.backward();
        at::Tensor g = logits.is_contiguous() ? x.grad() : x.grad().select(0, 1).narrow(0, 0, 8);
        return std::make_pair(loss.detach(), g.contiguous());
    };
    const auto one = run(strided.contiguous(), 1), two = run(strided.contiguous(), 2);
    const auto view = run(strided, 2);
    at::set_num_threads(threads);
    EXPECT_TRUE(test::tensors_identical(one.first, two.first));
    EXPECT_TRUE(test::tensors_identical(one.second, two.second));
    EXPECT_TRUE(test::tensors_identical(one.first, view.first));
    EXPECT_TRUE(test::tensors_identical(one.second, view.second));
}

TEST(FusedCrossEntropy, EdgesOfLabelsAndValues) {
    const at::Tensor logits = logits_for(4, 10, 10, at::kFloat, 1);
    // Every row ignored: nothing counted, a zero gradient.
    at::Tensor x = logits.clone().requires_grad_(true);
    at::Tensor loss = summed_cross_entropy(x, at::full({4}, -100, at::kLong));
    EXPECT_EQ(loss.item<float>(), 0.0f);
    loss.backward();
    EXPECT_EQ(x.grad().abs().max().item<float>(), 0.0f);
    // A label past the vocabulary is named.
    const std::string message = test::error_of([&] {
        summed_cross_entropy(logits, at::tensor({1, 2, 10, 3}, at::kLong));
    });
    EXPECT_NE(message.find("label 10 is outside the vocabulary [0, 10)"), std::string::npos)
        << message;
    EXPECT_THROW(summed_cross_entropy(logits, at::tensor({-1, 2, 3, 3}, at::kLong)), Error);
    // A NaN or an infinite logit makes its row's loss NaN, as the composite does.
    for (float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        at::Tensor y = logits.clone();
        y[2][4] = bad;
        const at::Tensor l = summed_cross_entropy(y, at::tensor({1, 2, 3, 4}, at::kLong));
        EXPECT_TRUE(std::isnan(l.item<float>())) << bad;
    }
}

// float16 (and any non-CPU logits) take the composite: the same value as computing it directly.
TEST(FusedCrossEntropy, OtherDtypesUseTheComposite) {
    const at::Tensor logits = logits_for(6, 50, 50, at::kHalf, 2);
    const at::Tensor labels = labels_for(6, 50);
    EXPECT_FALSE(fused_cross_entropy(logits));
    const at::Tensor expected =
        at::cross_entropy_loss(logits.to(at::kFloat), labels, {}, at::Reduction::Sum, -100);
    EXPECT_TRUE(test::tensors_identical(expected, summed_cross_entropy(logits, labels)));
}

}  // namespace
}  // namespace qlora::train
