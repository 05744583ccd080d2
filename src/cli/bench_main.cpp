// qlora-bench: kernel and training-step benchmarks, one JSON line per case, each with a baseline
// measured in the same run (DESIGN.md section 12).
#include <CLI/CLI.hpp>
#include <iostream>

#include "bench/bench_decode.h"
#include "bench/bench_dequant.h"
#include "bench/bench_matmul.h"
#include "bench/bench_step.h"
#include "cli/cli_checks.h"
#include "cli/run_tool.h"
#include "core/device.h"
#include "core/error.h"
#include "quant/quant4_matmul.h"

int main(int argc, char** argv) {
    CLI::App app{"qlora-bench: benchmarks (one JSON line per case, baseline from the same run)"};
    app.set_version_flag("--version", QLORA_VERSION);
    app.require_subcommand(1);
    std::string device = "auto";
    app.add_option("--device", device,
                   "auto, cpu, cuda, cuda:N; 'all' runs cpu and (if present) cuda")
        ->capture_default_str();
    int64_t tile_kib = qlora::quant::quant4_matmul_tuning().tile_bytes / 1024;
    app.add_option("--tile-kib", tile_kib,
                   "KiB of one dequantized 4-bit tile in the CPU's tiled matmuls (prefill, step)")
        ->check(CLI::Range(int64_t{4}, int64_t{1} << 20))
        ->capture_default_str();

    qlora::bench::DequantBenchOptions dq;
    auto* dequant =
        app.add_subcommand("dequant", "NF4(+DQ) dequantize GB/s vs a plain copy of the output");
    dequant->add_option("--rows", dq.rows, "weight rows")->capture_default_str();
    dequant->add_option("--cols", dq.cols, "weight columns")->capture_default_str();
    dequant->add_option("--blocksize", dq.blocksize)->capture_default_str();
    dequant->add_flag("--double-quant,!--no-double-quant", dq.double_quant)->capture_default_str();
    dequant->add_option("--iters", dq.iters, "timed iterations (median reported)")
        ->capture_default_str();

    qlora::bench::MatmulBenchOptions mm;
    auto* matmul = app.add_subcommand(
        "matmul", "CPU tiled 4-bit matmuls (forward, input gradient) vs the dense GEMM");
    matmul->add_option("--rows", mm.rows, "rows of x (tokens)")->capture_default_str();
    matmul->add_option("--in", mm.in, "W's columns")->capture_default_str();
    matmul->add_option("--out", mm.out, "W's rows")->capture_default_str();
    matmul->add_option("--dtype", mm.dtype, "float32 or bfloat16")->capture_default_str();
    matmul->add_option("--matrices", mm.matrices, "distinct weights cycled through")
        ->capture_default_str();
    matmul->add_option("--iters", mm.iters, "timed sweeps (median reported)")
        ->capture_default_str();
    matmul->add_option("--warmup", mm.warmup)->capture_default_str();

    qlora::bench::StepBenchOptions st;
    auto* step = app.add_subcommand("step",
                                    "one QLoRA training step (NF4 base + LoRA) vs the same with a "
                                    "16-bit base: time, tokens/s, peak memory");
    step->add_option("--shape", st.shape, "tiny, 1b, 7b, 13b or 65b (random weights)")
        ->capture_default_str();
    step->add_option("--layers", st.layers, "keep only this many decoder layers (0: all)")
        ->capture_default_str();
    step->add_option("--seq", st.seq, "tokens per sequence")->capture_default_str();
    step->add_option("--micro-batch", st.micro_batch)->capture_default_str();
    step->add_option("--lora-r", st.lora_r)->capture_default_str();
    step->add_option("--lora-dropout", st.lora_dropout, "LoRA dropout (0: none)")
        ->check(qlora::cli::FiniteRange(0.0, 0.99))
        ->capture_default_str();
    step->add_option("--optimizer", st.optimizer)->capture_default_str();
    step->add_flag("--checkpointing,!--no-checkpointing", st.checkpointing)->capture_default_str();
    step->add_option("--base", st.bases, "bases to run; the first is compared with the last")
        ->capture_default_str();
    step->add_option("--compute-dtype", st.compute_dtype,
                     "model.dtype of a 4-bit base: auto (bf16 on cuda, fp32 on cpu), fp32, bf16")
        ->capture_default_str();
    step->add_option("--iters", st.iters, "timed steps (median reported)")->capture_default_str();
    step->add_option("--warmup", st.warmup)->capture_default_str();
    step->add_option("--trace", st.trace_prefix,
                     "after timing, trace one more step of each base into <TRACE><base>.json "
                     "(LibTorch's profiler, Chrome trace format)");

    // decode and prefill share their options: a 4-bit base vs dense fp32 in the same process.
    qlora::bench::InferenceBenchOptions inf;
    auto add_inference = [&](CLI::App* sub) {
        sub->add_option("--shape", inf.shape, "tiny, 1b, 7b, 13b or 65b (random weights)")
            ->capture_default_str();
        sub->add_option("--layers", inf.layers, "keep only this many decoder layers (0: all)")
            ->capture_default_str();
        sub->add_option("--model", inf.model_dir, "an HF Llama folder instead of random weights");
        sub->add_option("--base", inf.bases,
                        "nf4, fp4, fp32, nf4-int8 or fp4-int8 (int8 activations in the 4-bit "
                        "matmuls), nf4-bf16, fp4-bf16 or bf16 (the model in bfloat16); the first "
                        "is compared with the last")
            ->capture_default_str();
        sub->add_flag("--quantize-lm-head,!--dense-lm-head", inf.quantize_lm_head,
                      "4-bit lm_head too (llama.cpp quantizes output.weight)")
            ->capture_default_str();
        sub->add_option("--blocksize", inf.blocksize)->capture_default_str();
        sub->add_flag("--double-quant,!--no-double-quant", inf.double_quant)->capture_default_str();
        sub->add_option("--threads", inf.threads, "intra-op threads (0: LibTorch's default)")
            ->capture_default_str();
        sub->add_option("--iters", inf.iters, "timed runs (median reported)")
            ->capture_default_str();
    };
    auto* decode = app.add_subcommand(
        "decode", "tokens/s of KV-cached greedy decoding, 4-bit vs dense fp32 base");
    add_inference(decode);
    decode->add_option("--tokens", inf.tokens, "generated tokens per run")->capture_default_str();
    auto* prefill =
        app.add_subcommand("prefill", "tokens/s of one prompt forward, 4-bit vs dense fp32 base");
    add_inference(prefill);
    prefill->add_option("--prompt", inf.prompt, "prompt tokens")->capture_default_str();

    return qlora::cli::run_tool("qlora-bench", app, argc, argv, [&] {
        qlora::quant::quant4_matmul_tuning().tile_bytes = tile_kib * 1024;
        std::vector<c10::Device> devices;
        if (device == "all") {
            devices.emplace_back(c10::kCPU);
            if (qlora::cuda_available()) devices.emplace_back(c10::kCUDA, 0);
        } else {
            devices.push_back(qlora::resolve_device(device));
        }
        for (const auto& d : devices) {
            if (dequant->parsed()) {
                for (const auto& line : qlora::bench::bench_dequant(dq, d))
                    std::cout << line << std::endl;
            }
            const auto print = [](const std::string& line) { std::cout << line << std::endl; };
            if (matmul->parsed()) {
                QLORA_CHECK(d.is_cpu(),
                            "qlora-bench matmul: the tiled 4-bit matmuls are CPU "
                            "kernels; got --device ",
                            d.str());
                print(qlora::bench::bench_matmul(mm));
            }
            if (decode->parsed()) qlora::bench::bench_decode(inf, d, print);
            if (prefill->parsed()) qlora::bench::bench_prefill(inf, d, print);
            if (step->parsed()) {
                for (const auto& line : qlora::bench::bench_step(st, d))
                    std::cout << line << std::endl;
            }
        }
    });
}
