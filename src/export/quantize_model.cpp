// qlora-quantize's work: stream, quantize the decoder linears, write the bnb-4bit folder.
#include "export/quantize_model.h"

#include <filesystem>
#include <fstream>

#include "core/device.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/atomic_file.h"
#include "io/bnb_format.h"
#include "io/finite_check.h"
#include "io/path_guard.h"
#include "io/safetensors.h"
#include "model/llama_layout.h"

namespace fs = std::filesystem;

namespace qlora::exporting {
namespace {

// Files a model folder carries besides weights; copied when present.
const char* kSideFiles[] = {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                            "special_tokens_map.json", "generation_config.json"};

nlohmann::ordered_json read_config(const std::string& model_dir) {
    const fs::path path = fs::path(model_dir) / "config.json";
    std::ifstream in(path);
    QLORA_CHECK(in.good(), path.string(),
                ": cannot open (expected a Hugging Face model folder with config.json)");
    try {
        nlohmann::ordered_json config = nlohmann::ordered_json::parse(in);
        QLORA_CHECK(config.is_object(), path.string(), ": must hold a JSON object");
        return config;
    } catch (const nlohmann::json::parse_error& e) {
        QLORA_FAIL(path.string(), ": not valid JSON (", e.what(), ")");
    }
}

}  // namespace

double QuantizeModelSummary::quantized_bits_per_param() const {
    return quantized_params == 0 ? 0.0
                                 : 8.0 * static_cast<double>(quantized_bytes_after) /
                                       static_cast<double>(quantized_params);
}

QuantizeModelSummary quantize_model(const QuantizeModelOptions& options) {
    QLORA_CHECK(bnb::valid_blocksize(options.quant.blocksize),
                "--blocksize must be a power of two in [32, 4096], got ", options.quant.blocksize);
    nlohmann::ordered_json config = read_config(options.model_dir);
    QLORA_CHECK(!config.contains("quantization_config"), options.model_dir,
                "/config.json: the model is already quantized (it has quantization_config)");
    io::check_output_not_input({"--out", options.out_dir}, {{"--model", options.model_dir}});
    const c10::Device device = resolve_device(options.device);
    io::SafetensorsFolder source(options.model_dir);
    io::CreatedParents parents(options.out_dir);  // removed again unless the output completes
    io::AtomicDir out(options.out_dir, options.overwrite);

    QuantizeModelSummary summary;
    {
        io::ShardedSafetensorsWriter writer(out.path(), "model", options.max_shard_bytes);
        const std::vector<std::string> names = source.names();
        Progress progress("quantize", static_cast<int64_t>(names.size()), "tensor");
        for (const std::string& name : names) {
            at::Tensor t = source.load(name);
            io::check_finite(t, name, options.model_dir, "refusing to quantize it");
            const int64_t bytes = t.nbytes();
            summary.tensors += 1;
            summary.params += t.numel();
            summary.bytes_before += bytes;
            if (model::is_quantized_weight_name(name) && t.is_floating_point()) {
                quant::Quant4Tensor q =
                    quant::Quant4Tensor::quantize(t.to(device), options.quant, name);
                summary.quantized_tensors += 1;
                summary.quantized_params += t.numel();
                summary.quantized_bytes_before += bytes;
                summary.quantized_bytes_after += q.nbytes();
                for (auto& [key, value] : io::bnb_4bit_tensors(q, name)) {
                    summary.bytes_after += value.nbytes();
                    writer.add(key, value);
                }
            } else {
                summary.bytes_after += bytes;
                writer.add(name, t);
            }
            progress.advance();
        }
        progress.finish();
        writer.finish();
    }
    QLORA_CHECK(summary.quantized_tensors > 0, options.model_dir,
                ": no decoder linear weights (model.layers.N.self_attn.q_proj.weight, ...) found "
                "to quantize");

    config["quantization_config"] =
        io::bnb_quantization_config(options.quant, options.compute_dtype);
    io::write_file_atomic((fs::path(out.path()) / "config.json").string(), config.dump(2) + "\n");
    for (const char* file : kSideFiles) {
        const fs::path from = fs::path(options.model_dir) / file;
        if (fs::exists(from)) fs::copy_file(from, fs::path(out.path()) / file);
    }
    out.commit();
    parents.keep();
    return summary;
}

}  // namespace qlora::exporting
