// Dequant throughput: GB/s of output written, and the same for at::Tensor::copy_ of an equally
// sized tensor (reads and writes the output's bytes). Their ratio is the figure of merit.
#include "bench/bench_dequant.h"

#include <ATen/Parallel.h>

#include <nlohmann/json.hpp>

#include "bench/timer.h"
#include "core/device.h"
#include "quant/quant4_ops.h"
#include "quant/quant4_ref.h"
#include "quant/quant4_tensor.h"

namespace qlora::bench {

std::vector<std::string> bench_dequant(const DequantBenchOptions& o, const c10::Device& device) {
    std::vector<std::string> lines;
    at::manual_seed(0);
    at::Tensor w = (at::randn({o.rows, o.cols}) * 0.02).to(device, at::kBFloat16);
    quant::Quant4Tensor q = quant::Quant4Tensor::quantize(
        w, {quant::QuantType::kNF4, o.blocksize, o.double_quant}, "bench");
    const int64_t n = q.numel();
    for (auto dtype : {at::kBFloat16, at::kFloat}) {
        const double out_bytes = static_cast<double>(n) * static_cast<double>(dtype_size(dtype));
        const double in_bytes = static_cast<double>(q.nbytes());
        at::Tensor src = at::empty({n}, at::TensorOptions().device(device).dtype(dtype)).uniform_();
        at::Tensor dst = at::empty_like(src);
        double t_copy = time_call([&] { dst.copy_(src); }, device, o.warmup, o.iters);
        at::Tensor out_buf = at::empty({n}, src.options());
        double t_deq = time_call([&] { q.dequantize_into(out_buf); }, device, o.warmup, o.iters);
        double t_alloc = time_call([&] { (void)q.dequantize(dtype); }, device, o.warmup, o.iters);
        nlohmann::ordered_json j;
        j["bench"] = "dequant";
        j["device"] = device.str();
        j["shape"] = {o.rows, o.cols};
        j["blocksize"] = o.blocksize;
        j["double_quant"] = o.double_quant;
        j["out_dtype"] = dtype_name(dtype);
        j["threads"] = device.is_cpu() ? at::get_num_threads() : 0;
        j["dequant_ms"] = t_deq * 1e3;
        j["dequant_gbps_written"] = out_bytes / t_deq / 1e9;
        // The same into a freshly allocated tensor each call, as dequantize() does (page faults on
        // CPU).
        j["dequant_with_alloc_ms"] = t_alloc * 1e3;
        j["copy_ms"] = t_copy * 1e3;
        j["copy_gbps_written"] = out_bytes / t_copy / 1e9;
        j["ratio_vs_copy"] = t_copy / t_deq;
        // Traffic view: dequant moves its 4-bit input plus the output; copy moves the output twice.
        j["dequant_gbps_traffic"] = (in_bytes + out_bytes) / t_deq / 1e9;
        j["copy_gbps_traffic"] = 2.0 * out_bytes / t_copy / 1e9;
        if (device.is_cpu() && o.with_reference && dtype == at::kFloat) {
            at::Tensor absmax = q.block_absmax().contiguous();
            at::Tensor packed = q.packed().contiguous();
            at::Tensor out = at::empty({n}, at::kFloat);
            double t_ref = time_call(
                [&] {
                    quant::dequantize_4bit_ref(
                        packed.data_ptr<uint8_t>(), absmax.data_ptr<float>(), n, o.blocksize,
                        quant::codebook(quant::QuantType::kNF4), out.data_ptr<float>());
                },
                device, 1, std::max(1, o.iters / 3));
            j["reference_ms"] = t_ref * 1e3;
            j["speedup_vs_reference"] = t_ref / t_deq;
        }
        lines.push_back(j.dump());
    }
    return lines;
}

}  // namespace qlora::bench
