// Times per call are the median over `iters` sweeps of all `matrices` weights, divided by their
// count; the dense GEMMs sweep their own copies, so both sides read weights from memory.
#include "bench/bench_matmul.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <functional>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench/timer.h"
#include "core/device.h"
#include "core/error.h"
#include "quant/quant4_matmul.h"
#include "quant/quant4_tensor.h"

namespace qlora::bench {

namespace {

constexpr int64_t kMaxSide = 65536;

struct Weights {
    std::vector<quant::Quant4Tensor> packed;
    std::vector<at::Tensor> dense;  // deq(W) in the bench dtype, [out, in]
};

Weights make_weights(const MatmulBenchOptions& o, at::ScalarType dtype) {
    Weights w;
    for (int64_t i = 0; i < o.matrices; ++i) {
        at::Tensor full = at::randn({o.out, o.in}) * 0.02;
        w.packed.push_back(quant::Quant4Tensor::quantize(full, quant::Quant4Options{}, "bench"));
        w.dense.push_back(w.packed.back().dequantize(dtype).contiguous());
    }
    return w;
}

// Seconds per matmul: one sweep of fn over every weight index, timed as a whole.
double per_matmul(const MatmulBenchOptions& o, const std::function<void(size_t)>& fn) {
    const auto n = static_cast<size_t>(o.matrices);
    const double sweep = time_call(
        [&] {
            for (size_t i = 0; i < n; ++i) fn(i);
        },
        c10::Device(c10::kCPU), o.warmup, o.iters);
    return sweep / static_cast<double>(n);
}

}  // namespace

std::string bench_matmul(const MatmulBenchOptions& o) {
    QLORA_CHECK(
        o.rows > 0 && o.in > 0 && o.out > 0 && o.matrices > 0 && o.iters > 0 && o.warmup >= 0,
        "qlora-bench matmul: --rows, --in, --out, --matrices and --iters must be positive");
    // Bounds before the allocations they drive: up to 64 matrices of 65536 x 65536.
    QLORA_CHECK(o.rows <= kMaxSide && o.in <= kMaxSide && o.out <= kMaxSide && o.matrices <= 64,
                "qlora-bench matmul: --rows, --in and --out must be at most ", kMaxSide,
                " and --matrices at most 64; got ", o.rows, ", ", o.in, ", ", o.out, " and ",
                o.matrices);
    const at::ScalarType dtype = parse_dtype(o.dtype);
    QLORA_CHECK(dtype == at::kFloat || dtype == at::kBFloat16,
                "qlora-bench matmul: --dtype must be float32 or bfloat16, got '", o.dtype, "'");
    at::manual_seed(0);
    const Weights w = make_weights(o, dtype);
    const at::Tensor x = at::randn({o.rows, o.in}).to(dtype);
    const at::Tensor g = at::randn({o.rows, o.out}).to(dtype);
    at::Tensor sink;  // keeps each result alive until the next call, as a model would
    const double fwd_4bit =
        per_matmul(o, [&](size_t i) { sink = quant::quant4_linear(x, w.packed[i]); });
    const double fwd_dense = per_matmul(o, [&](size_t i) { sink = at::mm(x, w.dense[i].t()); });
    const double bwd_4bit =
        per_matmul(o, [&](size_t i) { sink = quant::quant4_matmul_grad_input(g, w.packed[i]); });
    const double bwd_dense = per_matmul(o, [&](size_t i) { sink = at::mm(g, w.dense[i]); });
    const double flop = 2.0 * static_cast<double>(o.rows * o.in * o.out);
    // Both sides compute the same products (up to the order of the sums): checked, not assumed.
    const auto rel_diff = [](const at::Tensor& a, const at::Tensor& b) {
        return (a.to(at::kFloat) - b.to(at::kFloat)).abs().max().item<double>() /
               std::max(1e-30, b.to(at::kFloat).abs().max().item<double>());
    };
    nlohmann::ordered_json j;
    j["bench"] = "matmul";
    j["device"] = "cpu";
    j["rows"] = o.rows;
    j["in"] = o.in;
    j["out"] = o.out;
    j["dtype"] = dtype_name(dtype);
    j["matrices"] = o.matrices;
    j["threads"] = at::get_num_threads();
    j["forward_nf4_ms"] = fwd_4bit * 1e3;
    j["forward_dense_ms"] = fwd_dense * 1e3;
    j["forward_nf4_vs_dense"] = fwd_dense / fwd_4bit;
    j["grad_input_nf4_ms"] = bwd_4bit * 1e3;
    j["grad_input_dense_ms"] = bwd_dense * 1e3;
    j["grad_input_nf4_vs_dense"] = bwd_dense / bwd_4bit;
    j["forward_max_rel_diff"] =
        rel_diff(quant::quant4_linear(x, w.packed[0]), at::mm(x, w.dense[0].t()));
    j["grad_input_max_rel_diff"] =
        rel_diff(quant::quant4_matmul_grad_input(g, w.packed[0]), at::mm(g, w.dense[0]));
    j["forward_nf4_gflops"] = flop / fwd_4bit / 1e9;
    j["grad_input_nf4_gflops"] = flop / bwd_4bit / 1e9;
    return j.dump();
}

}  // namespace qlora::bench
