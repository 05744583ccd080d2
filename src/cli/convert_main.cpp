// qlora-convert IN.gguf OUT_DIR [--max-shard-mb N]
// Writes a Hugging Face folder (float32 safetensors, config.json, generation_config.json,
// tokenizer.json, tokenizer_config.json) from a llama-architecture GGUF.
#include <CLI/CLI.hpp>
#include <cstdio>

#include "cli/run_tool.h"
#include "convert/gguf_to_hf.h"

int main(int argc, char** argv) {
    CLI::App app{"qlora-convert: a llama GGUF file -> a Hugging Face model folder (float32)"};
    app.set_version_flag("--version", QLORA_VERSION);
    qlora::convert::GgufToHfOptions options;
    uint64_t max_shard_mb = 5000;
    app.add_option("input", options.in_file, "the .gguf file")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("output", options.out_dir, "the folder to create (must not exist)")->required();
    app.add_option("--max-shard-mb", max_shard_mb,
                   "largest safetensors shard in MB (10^6 bytes); more tensors get an index")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    return qlora::cli::run_tool("qlora-convert", app, argc, argv, [&] {
        options.max_shard_bytes = max_shard_mb * 1'000'000ULL;
        const auto s = qlora::convert::convert_gguf_to_hf(options);
        std::printf("wrote %s: %lld tensors, %.1f MiB float32, %zu files\n",
                    options.out_dir.c_str(), static_cast<long long>(s.tensors),
                    static_cast<double>(s.tensor_bytes) / (1024.0 * 1024.0), s.files.size());
    });
}
