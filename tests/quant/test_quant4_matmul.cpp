// The fused CPU 4-bit matmuls (kernels/quant4_matmul_cpu.h, quant/quant4_matmul.h) against their
// scalar reference twins on odd shapes, every path (GEMV / tiled, AVX2 / portable), FP4, double
// quant on and off, misaligned and strided views; the stated error bound; and no W-sized allocation
// per call.
#include <ATen/Parallel.h>
#include <c10/core/CPUAllocator.h>
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/quant4_matmul_cpu.h"
#include "lora/lora_function.h"
#include "model/linear.h"
#include "model/llama.h"
#include "quant/quant4_matmul.h"
#include "quant/quant4_ops.h"
#include "quant/quant4_tensor.h"
#include "support/quant4_weights.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using test::random_weight;
using test::raw_of;
using test::RawWeight;
using test::TuningGuard;

struct Path {
    std::string name;
    int64_t gemv_max_rows;
    kernels::CpuIsa isa;
};
// Every path the CPU can run: GEMV and tiled, each at every ISA up to the best one.
std::vector<Path> all_paths() {
    std::vector<Path> paths;
    for (auto isa :
         {kernels::CpuIsa::kAvx512, kernels::CpuIsa::kAvx2, kernels::CpuIsa::kPortable}) {
        if (isa > kernels::best_cpu_isa()) continue;
        paths.push_back({std::string("gemv_") + kernels::cpu_isa_name(isa), 1 << 30, isa});
        paths.push_back({std::string("tiled_") + kernels::cpu_isa_name(isa), 0, isa});
    }
    return paths;
}

void use(const Path& p) {
    quant4_matmul_tuning().gemv_max_rows = p.gemv_max_rows;
    quant4_matmul_tuning().max_isa = p.isa;
}

// |y - ref| <= γ_K·Σ|x·w| + u·|ref| (the kernel's bound, plus ref's own rounding to float32).
::testing::AssertionResult within_bound(const at::Tensor& y, const at::Tensor& ref,
                                        const at::Tensor& abs_sum, int64_t k) {
    const double u = std::ldexp(1.0, -24);
    const double gamma = static_cast<double>(k) * u / (1.0 - static_cast<double>(k) * u);
    at::Tensor err = (y.to(at::kDouble) - ref.to(at::kDouble)).abs();
    at::Tensor bound = abs_sum.to(at::kDouble) * gamma + ref.to(at::kDouble).abs() * u + 1e-35;
    at::Tensor ratio = err / bound;
    const double worst = ratio.max().item<double>();
    if (worst <= 1.0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "error/bound reaches " << worst << " (K=" << k << ")";
}

struct Shape {
    int64_t out, in, blocksize;
};

// rows 1..17 of x, columns not a multiple of the blocksize (and odd), blocks straddling rows;
// and rows of whole blocks (the GEMVs' fast path: no division, prefetch), with more than 256
// blocks so that double quant spans several nested scales.
const std::vector<Shape> kShapes = {{1, 32, 32},     {5, 48, 32},   {7, 100, 64},   {17, 96, 64},
                                    {3, 3000, 4096}, {33, 64, 128}, {9, 1000, 256}, {4, 257, 1024},
                                    {2, 8, 32},      {40, 512, 64}, {3, 256, 256},  {70, 160, 32}};

TEST(Nf4Matmul, EveryPathMatchesTheReferenceWithinTheBound) {
    TuningGuard guard;
    uint64_t seed = 1;
    for (const Shape& s : kShapes) {
        for (QuantType type : {QuantType::kNF4, QuantType::kFP4}) {
            for (bool dq : {true, false}) {
                RawWeight w = raw_of(random_weight(s.out, s.in, type, s.blocksize, dq, seed++));
                for (int64_t n : {1, 2, 3, 4, 5, 8, 17}) {
                    at::Tensor x = at::randn({n, s.in});
                    at::Tensor ref = at::empty({n, s.out}), abs_sum = at::empty({n, s.out});
                    kernels::quant4_matmul_xwt_ref(w.m, x.data_ptr<float>(), n, s.in,
                                                   ref.data_ptr<float>(), s.out);
                    kernels::quant4_matmul_xwt_abs_ref(w.m, x.data_ptr<float>(), n, s.in,
                                                       abs_sum.data_ptr<float>(), s.out);
                    for (const Path& p : all_paths()) {
                        use(p);
                        at::Tensor y = quant4_linear(x, w.w);
                        EXPECT_TRUE(within_bound(y, ref, abs_sum, s.in))
                            << p.name << " " << quant_type_name(type) << (dq ? " dq" : "")
                            << " out=" << s.out << " in=" << s.in << " bs=" << s.blocksize
                            << " n=" << n;
                    }
                }
            }
        }
    }
}

TEST(Nf4Matmul, GradInputMatchesTheReferenceWithinTheBound) {
    TuningGuard guard;
    uint64_t seed = 100;
    for (const Shape& s : kShapes) {
        for (bool dq : {true, false}) {
            const QuantType type = dq ? QuantType::kNF4 : QuantType::kFP4;
            RawWeight w = raw_of(random_weight(s.out, s.in, type, s.blocksize, dq, seed++));
            const at::Tensor deq_abs = w.w.dequantize(at::kFloat).to(at::kDouble).abs();
            for (int64_t n : {1, 6, 17}) {
                at::Tensor g = at::randn({n, s.out});
                at::Tensor ref = at::empty({n, s.in});
                kernels::quant4_matmul_gw_ref(w.m, g.data_ptr<float>(), n, s.out,
                                              ref.data_ptr<float>(), s.in);
                const at::Tensor abs_sum = g.to(at::kDouble).abs().mm(deq_abs);
                for (const Path& p : all_paths()) {
                    use(p);
                    EXPECT_TRUE(within_bound(quant4_matmul_grad_input(g, w.w), ref, abs_sum, s.out))
                        << p.name << " out=" << s.out << " in=" << s.in << " bs=" << s.blocksize
                        << " n=" << n;
                }
            }
        }
    }
}

TEST(Nf4Matmul, DequantizedTilesAreBitIdenticalToDequantize) {
    for (bool dq : {true, false}) {
        RawWeight w = raw_of(random_weight(37, 208, QuantType::kNF4, 64, dq, 7));
        const at::Tensor full = w.w.dequantize(at::kFloat);
        for (kernels::CpuIsa isa :
             {kernels::CpuIsa::kAvx512, kernels::CpuIsa::kAvx2, kernels::CpuIsa::kPortable}) {
            if (isa > kernels::best_cpu_isa()) continue;
            // a row slab, a column slab with 16-aligned edges, and one with odd edges
            for (auto [r0, r1, c0, c1] : std::vector<std::array<int64_t, 4>>{
                     {0, 37, 0, 208}, {3, 20, 16, 144}, {5, 6, 7, 201}}) {
                at::Tensor tile = at::empty({r1 - r0, c1 - c0});
                kernels::quant4_dequant_tile(w.m, r0, r1, c0, c1, tile.data_ptr<float>(), c1 - c0,
                                             isa);
                EXPECT_TRUE(qlora::test::tensors_identical(
                    full.slice(0, r0, r1).slice(1, c0, c1).contiguous(), tile))
                    << kernels::cpu_isa_name(isa) << " tile " << r0 << ":" << r1 << ", " << c0
                    << ":" << c1;
            }
        }
    }
}

TEST(Nf4Matmul, MisalignedAndStridedViews) {
    TuningGuard guard;
    const int64_t out = 24, in = 160, n = 5;
    Quant4Tensor w = random_weight(out, in, QuantType::kNF4, 64, true, 11);
    // Packed codes one byte past an aligned start: the kernels must not assume alignment.
    at::Tensor holder = at::empty({w.packed().numel() + 1}, at::kByte);
    at::Tensor shifted = holder.narrow(0, 1, w.packed().numel());
    shifted.copy_(w.packed());
    Quant4Tensor w_shifted = Quant4Tensor::from_parts(
        shifted, w.absmax(), w.nested_absmax(), w.nested_code(), w.nested_offset(), w.shape(),
        w.dtype(), w.type(), w.blocksize(), "w_shifted");
    // x: a column window of a wider tensor (row stride in+3, data 4 bytes off alignment), and a
    // transposed view (column stride != 1).
    at::Tensor wide = at::randn({n, in + 3});
    at::Tensor x_window = wide.narrow(1, 1, in);
    at::Tensor x_transposed = x_window.contiguous().t().contiguous().t();
    const at::Tensor expected = at::linear(x_window, w.dequantize(at::kFloat));
    for (const Path& p : all_paths()) {
        use(p);
        for (const at::Tensor& x : {x_window, x_transposed}) {
            EXPECT_TRUE(
                qlora::test::tensors_close(expected, quant4_linear(x, w_shifted), 1e-5, 1e-5))
                << p.name;
        }
    }
    // [B, T, in] inputs keep their leading dimensions; bias is added; bf16 comes back as bf16.
    at::Tensor x3 = at::randn({2, 3, in});
    at::Tensor bias = at::randn({out});
    at::Tensor y3 = quant4_linear(x3, w, bias);
    EXPECT_EQ(y3.sizes(), (std::vector<int64_t>{2, 3, out}));
    EXPECT_TRUE(
        qlora::test::tensors_close(at::linear(x3, w.dequantize(at::kFloat), bias), y3, 1e-5, 1e-5));
    EXPECT_EQ(quant4_linear(x3.to(at::kBFloat16), w).scalar_type(), at::kBFloat16);
    EXPECT_EQ(quant4_matmul_grad_input(at::randn({2, 3, out}), w).sizes(),
              (std::vector<int64_t>{2, 3, in}));
}

// at::parallel_for expands an OpenMP region in the calling translation unit: built without
// -fopenmp (CMakeLists.txt), every at::parallel_for of ours ran on one thread. This file is
// compiled with the library's flags, so the body must see several threads here.
TEST(Nf4Matmul, ParallelForInOurCodeRunsOnSeveralThreads) {
    const int saved = at::get_num_threads();
    at::set_num_threads(2);
    std::vector<std::atomic<int>> seen(2);
    at::parallel_for(0, 1024, 1, [&](int64_t, int64_t) {
        const int t = at::get_thread_num();
        if (t >= 0 && t < 2) seen[static_cast<size_t>(t)] = 1;
    });
    at::set_num_threads(saved);
    EXPECT_EQ(seen[0] + seen[1], 2) << "at::parallel_for ran its chunks on one thread";
}

TEST(Nf4Matmul, RejectsMismatchedShapes) {
    Quant4Tensor w = random_weight(8, 64, QuantType::kNF4, 64, true, 3);
    EXPECT_THROW(quant4_linear(at::randn({2, 63}), w), c10::Error);
    EXPECT_THROW(quant4_linear(at::randn({2, 64}), w, at::randn({7})), c10::Error);
    EXPECT_THROW(quant4_matmul_grad_input(at::randn({2, 9}), w), c10::Error);
}

// Wraps the CPU allocator and counts allocations of at least `threshold` bytes.
class CountingAllocator final : public c10::Allocator {
  public:
    CountingAllocator(c10::Allocator* inner, size_t threshold)
        : inner_(inner), threshold_(threshold) {}
    c10::DataPtr allocate(size_t n) override {
        if (n >= threshold_) big_.fetch_add(1);
        return inner_->allocate(n);
    }
    c10::DeleterFnPtr raw_deleter() const override { return inner_->raw_deleter(); }
    void copy_data(void* dest, const void* src, std::size_t count) const override {
        std::memcpy(dest, src, count);
    }
    int64_t big() const { return big_.load(); }
    void reset() { big_ = 0; }

  private:
    c10::Allocator* inner_;
    size_t threshold_;
    std::atomic<int64_t> big_{0};
};

struct AllocatorScope {
    c10::Allocator* inner = c10::GetCPUAllocator();
    CountingAllocator counting;
    explicit AllocatorScope(size_t threshold) : counting(inner, threshold) {
        c10::SetCPUAllocator(&counting, /*priority=*/100);
    }
    ~AllocatorScope() { c10::SetCPUAllocator(inner, /*priority=*/100); }
};

TEST(Nf4Matmul, NoWeightSizedAllocationPerMatmul) {
    TuningGuard guard;
    quant4_matmul_tuning().tile_bytes = 64 * 1024;
    const int64_t out = 512, in = 1024, n_many = 32;
    auto base = std::make_shared<lora::FrozenBase>();
    base->nf4 = random_weight(out, in, QuantType::kNF4, 64, true, 5);
    base->in_features = in;
    base->out_features = out;
    at::Tensor a = (at::randn({8, in}) * 0.01).requires_grad_(true);
    at::Tensor b = (at::randn({out, 8}) * 0.01).requires_grad_(true);
    at::Tensor x1 = at::randn({1, in}), xn = at::randn({n_many, in}).requires_grad_(true);
    auto work = [&] {
        quant4_linear(x1, base->nf4);                                   // GEMV (decode)
        quant4_linear(xn.detach(), base->nf4);                          // tiled (prefill)
        quant4_matmul_grad_input(at::randn({n_many, out}), base->nf4);  // tiled dX
        lora::lora_linear(xn, base, a, b, 2.0).sum().backward();        // the LoRA function
    };
    work();  // grows the per-thread tile buffers once
    // A quarter of W in float32: far above every activation here (32 x 1024 floats = 128 KiB).
    AllocatorScope scope(static_cast<size_t>(out * in * 4 / 4));
    work();
    work();
    EXPECT_EQ(scope.counting.big(), 0) << "a W-sized buffer was allocated by a matmul";
    base->nf4.dequantize(at::kFloat);  // the counter does see a dense copy of W
    EXPECT_EQ(scope.counting.big(), 1);
}

TEST(Nf4Matmul, LinearForwardUsesTheFusedPath) {
    model::Linear lin(96, 40, /*has_bias=*/true, "proj");
    lin->set_weight(at::randn({40, 96}) * 0.05);
    lin->set_bias(at::randn({40}));
    lin->quantize({QuantType::kNF4, 32, true});
    at::Tensor x = at::randn({2, 5, 96});
    const at::Tensor expected =
        at::linear(x, lin->quant4_weight().dequantize(at::kFloat), lin->bias());
    EXPECT_TRUE(qlora::test::tensors_close(expected, lin->forward(x), 1e-5, 1e-5));
    EXPECT_TRUE(qlora::test::tensors_close(expected.narrow(1, 0, 1),
                                           lin->forward(x.narrow(1, 0, 1)), 1e-5, 1e-5));
}

// The model's forward (generation and eval run through it) on a 4-bit base equals the same model
// with the dequantized weights loaded dense, up to the order of the sums.
TEST(Nf4Matmul, LlamaForwardMatchesTheDequantizedModel) {
    const auto config = model::LlamaConfig::from_json({{"hidden_size", 64},
                                                       {"intermediate_size", 160},
                                                       {"num_hidden_layers", 2},
                                                       {"num_attention_heads", 4},
                                                       {"num_key_value_heads", 2},
                                                       {"vocab_size", 96},
                                                       {"max_position_embeddings", 64}});
    model::Llama quantized(config), dense(config);
    quantized->init_random(3, at::kFloat, c10::kCPU);
    dense->init_random(3, at::kFloat, c10::kCPU);
    quantized->quantize_linears({QuantType::kNF4, 64, true});
    auto q_linears = quantized->linears();
    auto d_linears = dense->linears();
    for (size_t i = 0; i < q_linears.size(); ++i) {
        if (q_linears[i]->quantized())
            d_linears[i]->set_weight(q_linears[i]->base_weight(at::kFloat));
    }
    torch::NoGradGuard no_grad;
    for (int64_t t : {1, 7, 20}) {  // decode-sized and prefill-sized inputs
        at::Tensor tokens = at::randint(0, 96, {1, t}, at::kLong);
        EXPECT_TRUE(qlora::test::tensors_close(dense->forward(tokens), quantized->forward(tokens),
                                               1e-4, 1e-4))
            << "T=" << t;
    }
}

}  // namespace
}  // namespace qlora::quant
