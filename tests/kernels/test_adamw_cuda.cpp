// CUDA AdamW kernels against the CPU reference (fp32 and 8-bit blockwise states, tail blocks), and
// paged state buffers: managed allocation, prefetch, values, paged vs unpaged optimizers, and the
// refusal to oversubscribe the card. Skipped with a reason where no GPU is present.
#include <gtest/gtest.h>

#include "core/device.h"
#include "core/error.h"
#include "optim/adamw.h"
#include "optim/adamw_ops.h"
#include "optim/optimizer_factory.h"
#include "optim/paged_buffer.h"
#include "support/test_support.h"

namespace qlora::optim {
namespace {

using qlora::test::tensors_close;
using qlora::test::tensors_identical;

class AdamwCuda : public ::testing::Test {
  protected:
    void SetUp() override {
        if (!cuda_available())
            GTEST_SKIP()
                << "no CUDA GPU on this machine: AdamW kernels and paged buffers not exercised";
    }
};

// Same operations in the same order with one rounding each: the kernel reproduces the CPU bits.
TEST_F(AdamwCuda, Fp32StepIsBitExactWithCpu) {
    at::manual_seed(5);
    for (int64_t n : {int64_t{1}, int64_t{257}, int64_t{1 << 20} + 3}) {
        SCOPED_TRACE(n);
        at::Tensor p = at::randn({n}), m = at::zeros({n}), v = at::zeros({n});
        at::Tensor pc = p.cuda(), mc = m.cuda(), vc = v.cuda();
        for (int64_t step = 1; step <= 3; ++step) {
            at::Tensor g = at::randn({n}) * 0.1;
            const AdamwScalars s = adamw_scalars(1e-2, 0.9, 0.999, 1e-8, 0.01, step);
            adamw_step(g, p, m, v, s);
            at::Tensor gc = g.cuda();
            adamw_step(gc, pc, mc, vc, s);
        }
        EXPECT_TRUE(tensors_identical(p, pc.cpu()));
        EXPECT_TRUE(tensors_identical(m, mc.cpu()));
        EXPECT_TRUE(tensors_identical(v, vc.cpu()));
    }
}

TEST_F(AdamwCuda, Blockwise8bitStepMatchesCpu) {
    at::manual_seed(6);
    for (int64_t n : {int64_t{4096}, int64_t{4099}, int64_t{300'001}}) {
        SCOPED_TRACE(n);
        const int64_t blocks = state_blocks(n);
        at::Tensor p = at::randn({n});
        at::Tensor mq = at::zeros({n}, at::kByte), vq = at::zeros({n}, at::kByte);
        at::Tensor ma = at::zeros({blocks}), va = at::zeros({blocks});
        at::Tensor pc = p.cuda(), mqc = mq.cuda(), vqc = vq.cuda(), mac = ma.cuda(),
                   vac = va.cuda();
        for (int64_t step = 1; step <= 4; ++step) {
            at::Tensor g = at::randn({n}) * (step == 2 ? 10.0 : 0.1);
            const AdamwScalars s = adamw_scalars(1e-3, 0.9, 0.999, 1e-8, 0.0, step);
            adamw8bit_step(g, p, mq, vq, ma, va, s);
            at::Tensor gc = g.cuda();
            adamw8bit_step(gc, pc, mqc, vqc, mac, vac, s);
        }
        EXPECT_TRUE(tensors_identical(mq, mqc.cpu()));
        EXPECT_TRUE(tensors_identical(vq, vqc.cpu()));
        EXPECT_TRUE(tensors_close(ma, mac.cpu(), 0.0, 1e-6));
        EXPECT_TRUE(tensors_close(va, vac.cpu(), 0.0, 1e-6));
        EXPECT_TRUE(tensors_close(p, pc.cpu(), 1e-7, 1e-6));
    }
}

TEST_F(AdamwCuda, PagedBufferIsManagedPrefetchableAndZeroed) {
    const c10::Device dev(c10::kCUDA, 0);
    PagedBuffer buf = PagedBuffer::allocate_managed({1000, 300}, at::kFloat, dev);
    ASSERT_TRUE(buf.defined());
    EXPECT_EQ(buf.nbytes(), 1'200'000);
    at::Tensor t = buf.as_tensor();
    EXPECT_TRUE(t.is_cuda());
    EXPECT_EQ(t.sizes(), (std::vector<int64_t>{1000, 300}));
    EXPECT_EQ(t.abs().sum().item<double>(), 0.0);
    const bool prefetched = buf.prefetch_to_device();
    EXPECT_EQ(prefetched, PagedBuffer::concurrent_managed_access(0));
    t.fill_(2.5);
    t.mul_(2.0);
    EXPECT_EQ(t.sum().item<double>(), 5.0 * 300'000);
    std::cout << "[ figures ] concurrent managed access: " << prefetched << "\n";
}

TEST_F(AdamwCuda, ManagedAllocationNeverOversubscribes) {
    try {
        PagedBuffer::allocate_managed({int64_t{1} << 45}, at::kByte,
                                      c10::Device(c10::kCUDA, 0));  // 32 TiB
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("bytes free"), std::string::npos) << e.what();
    }
}

TEST_F(AdamwCuda, PagedOptimizersEqualUnpagedOnes) {
    for (const auto& [plain, paged] : {std::pair{"adamw_32bit", "paged_adamw_32bit"},
                                       std::pair{"adamw_8bit", "paged_adamw_8bit"}}) {
        SCOPED_TRACE(paged);
        at::manual_seed(8);
        // 120000 elements: paged; 5000: not paged (below 1e5), 8-bit in the 8-bit kinds.
        std::vector<at::Tensor> a{at::randn({400, 300}, at::kCUDA).requires_grad_(true),
                                  at::randn({5000}, at::kCUDA).requires_grad_(true)};
        std::vector<at::Tensor> b;
        for (const auto& p : a) b.push_back(p.detach().clone().requires_grad_(true));
        auto oa = make_optimizer(plain, a);
        auto ob = make_optimizer(paged, b);
        auto* adamw = dynamic_cast<AdamW*>(ob.get());
        ASSERT_NE(adamw, nullptr);
        EXPECT_TRUE(adamw->is_paged(0));
        EXPECT_FALSE(adamw->is_paged(1));
        EXPECT_EQ(oa->state_bytes(), ob->state_bytes());
        for (int s = 0; s < 3; ++s) {
            for (size_t i = 0; i < a.size(); ++i) {
                at::Tensor g = at::randn_like(a[i]);
                a[i].mutable_grad() = g;
                b[i].mutable_grad() = g.clone();
            }
            oa->step(1e-3);
            ob->step(1e-3);
        }
        for (size_t i = 0; i < a.size(); ++i)
            EXPECT_TRUE(tensors_identical(a[i].detach().cpu(), b[i].detach().cpu()));
        StateDict sa = oa->state_dict(), sb = ob->state_dict();
        for (const auto& [k, t] : sa) EXPECT_TRUE(tensors_identical(t, sb.at(k))) << k;
    }
}

}  // namespace
}  // namespace qlora::optim
