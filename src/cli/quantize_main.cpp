// qlora-quantize --model MODEL --out DIR [--quant nf4|fp4] [--blocksize N] [--[no-]double-quant]
// Writes a Hugging Face bitsandbytes-4bit checkpoint and prints a size summary.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/run_tool.h"
#include "core/device.h"
#include "export/quantize_model.h"

int main(int argc, char** argv) {
    CLI::App app{"qlora-quantize: write a Hugging Face bitsandbytes-4bit (NF4/FP4) checkpoint"};
    app.set_version_flag("--version", QLORA_VERSION);
    qlora::exporting::QuantizeModelOptions options;
    std::string quant = "nf4";
    std::string compute_dtype = "bfloat16";
    app.add_option("--model", options.model_dir,
                   "Hugging Face model folder (config.json + safetensors)")
        ->required()
        ->check(CLI::ExistingDirectory);
    app.add_option("--out", options.out_dir, "output folder (must not exist unless --overwrite)")
        ->required();
    app.add_option("--quant", quant, "4-bit data type")
        ->check(CLI::IsMember({"nf4", "fp4"}))
        ->capture_default_str();
    app.add_option("--blocksize", options.quant.blocksize,
                   "elements per absmax block (power of two, 32..4096)")
        ->capture_default_str();
    app.add_flag(
           "--double-quant,!--no-double-quant", options.quant.double_quant,
           "quantize the absmax values too (8-bit, blocks of 256): 4.127 instead of 4.5 bits/param")
        ->capture_default_str();
    app.add_option("--compute-dtype", compute_dtype,
                   "bnb_4bit_compute_dtype recorded in config.json")
        ->capture_default_str();
    app.add_option("--device", options.device, "where to quantize: auto, cpu, cuda, cuda:N")
        ->capture_default_str();
    app.add_flag("--overwrite", options.overwrite, "replace an existing output folder");
    return qlora::cli::run_tool("qlora-quantize", app, argc, argv, [&] {
        options.quant.type = qlora::quant::parse_quant_type(quant);
        options.compute_dtype = qlora::parse_dtype(compute_dtype);
        auto s = qlora::exporting::quantize_model(options);
        const double mib = 1024.0 * 1024.0;
        std::printf("wrote %s: %lld of %lld tensors quantized to %s (blocksize %lld%s)\n",
                    options.out_dir.c_str(), static_cast<long long>(s.quantized_tensors),
                    static_cast<long long>(s.tensors), quant.c_str(),
                    static_cast<long long>(options.quant.blocksize),
                    options.quant.double_quant ? ", double quant" : "");
        std::printf("  quantized linears: %.2f MiB -> %.2f MiB, %.3f bits/param over %lld params\n",
                    static_cast<double>(s.quantized_bytes_before) / mib,
                    static_cast<double>(s.quantized_bytes_after) / mib,
                    s.quantized_bits_per_param(), static_cast<long long>(s.quantized_params));
        std::printf(
            "  whole model:       %.2f MiB -> %.2f MiB (%.1f%%)\n",
            static_cast<double>(s.bytes_before) / mib, static_cast<double>(s.bytes_after) / mib,
            100.0 * static_cast<double>(s.bytes_after) / static_cast<double>(s.bytes_before));
    });
}
