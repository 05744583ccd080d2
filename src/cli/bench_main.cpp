// qlora-bench: kernel and training-step benchmarks, one JSON line per case, each with a baseline
// measured in the same run (DESIGN.md section 12).
#include <CLI/CLI.hpp>

#include <iostream>

#include "bench/bench_dequant.h"
#include "cli/run_tool.h"
#include "core/device.h"

int main(int argc, char** argv) {
    CLI::App app{"qlora-bench: benchmarks (one JSON line per case, baseline from the same run)"};
    app.set_version_flag("--version", QLORA_VERSION);
    app.require_subcommand(1);
    std::string device = "auto";
    app.add_option("--device", device, "auto, cpu, cuda, cuda:N; 'all' runs cpu and (if present) cuda")
        ->capture_default_str();

    qlora::bench::DequantBenchOptions dq;
    auto* dequant = app.add_subcommand("dequant", "NF4(+DQ) dequantize GB/s vs a plain copy of the output");
    dequant->add_option("--rows", dq.rows, "weight rows")->capture_default_str();
    dequant->add_option("--cols", dq.cols, "weight columns")->capture_default_str();
    dequant->add_option("--blocksize", dq.blocksize)->capture_default_str();
    dequant->add_flag("--double-quant,!--no-double-quant", dq.double_quant)->capture_default_str();
    dequant->add_option("--iters", dq.iters, "timed iterations (median reported)")->capture_default_str();

    return qlora::cli::run_tool("qlora-bench", app, argc, argv, [&] {
        std::vector<c10::Device> devices;
        if (device == "all") {
            devices.emplace_back(c10::kCPU);
            if (qlora::cuda_available()) devices.emplace_back(c10::kCUDA, 0);
        } else {
            devices.push_back(qlora::resolve_device(device));
        }
        for (const auto& d : devices) {
            if (dequant->parsed()) {
                for (const auto& line : qlora::bench::bench_dequant(dq, d)) std::cout << line << std::endl;
            }
        }
    });
}
