// qlora-export's Hugging Face formats (DESIGN.md section 11): the PEFT adapter re-saved after
// validation, merged 16-bit folders (hf-bf16, hf-fp16) and the merged weights requantized in the
// bitsandbytes-4bit layout (hf-nf4) or in our int4 per-group layout matching int4 QAT (hf-int4,
// quant/int4_format.h). Folders appear only when complete (io::AtomicDir).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "export/merge.h"

namespace qlora::exporting {

enum class ExportFormat {
    kPeft,
    kHfBf16,
    kHfFp16,
    kHfNf4,
    kHfInt4,
    kGgufF16,
    kGgufQ8_0,
    kGgufQ4_0
};
// "peft", "hf-bf16", "hf-fp16", "hf-nf4", "hf-int4", "gguf-f16", "gguf-q8_0", "gguf-q4_0".
ExportFormat parse_export_format(const std::string& name);
std::string export_format_name(ExportFormat format);
bool is_gguf(ExportFormat format);

// "5GB" (10^9), "500MB", "2GiB" (2^30), "100KB", or a plain byte count; throws qlora::Error.
uint64_t parse_shard_size(const std::string& text);

struct HfExportOptions {
    std::string out_dir;
    ExportFormat format = ExportFormat::kHfBf16;
    bool overwrite = false;
    uint64_t max_shard_bytes = 5'000'000'000ULL;
    int64_t int4_group_size = 32;  // hf-int4 only: power of two in [32, 256]
};

// The int4 group size of the run that trained the adapter: qat.group_size of its
// qlora_adapter.json when it trained with int4 QAT;
// unset otherwise. `source` receives the file read.
std::optional<int64_t> find_qat_int4_group_size(const std::string& adapter_dir,
                                                std::string* source = nullptr);

// hf-nf4/hf-int4: how far one requantized merged weight is from the merged weight, ||Q(W)-W|| /
// ||W||.
struct LayerQuantError {
    std::string name;
    double rel_error = 0.0;
};

struct HfExportSummary {
    std::vector<std::string> files;  // full paths inside the final folder
    int64_t tensors = 0;             // tensors of the model (a 4-bit weight counts once)
    int64_t merged = 0;              // of which the adapter changed
    uint64_t bytes = 0;              // tensor data written
    std::vector<LayerQuantError>
        nf4_errors;  // hf-nf4 and hf-int4 (4-bit weights), in checkpoint order
};

// Refuses an existing output (unless overwrite) and an output whose parent cannot hold it, before
// any work; qlora::Error naming the path.
void check_output_path(const std::string& out, bool overwrite);

// peft: the adapter (already checked against the base by MergedView) written anew.
HfExportSummary export_peft(const MergedView& merged, const HfExportOptions& options);
// hf-bf16 / hf-fp16 / hf-nf4 / hf-int4: streams merged.tensor() one at a time into shards + index,
// then config.json (quantization_config removed, or the bnb one for hf-nf4, or the qlora_int4 one
// for hf-int4; torch_dtype set for the 16-bit formats) and the tokenizer files.
// hf-int4 stores each decoder linear as <module>.qweight/.scales (quant::pack_int4 of the merged
// float32 weight, so it dequantizes to fake_quantize_weight(W, int4 group G) bit for bit) and every
// other tensor in the base's dtype, or float32 when the adapter changed it (an lm_head adapter):
// exact, so the loaded export evaluates like the QAT model in float32.
HfExportSummary export_hf(const MergedView& merged, const HfExportOptions& options);

// The per-layer table and a summary line (mean, median, max).
std::string format_nf4_errors(const std::vector<LayerQuantError>& errors);

}  // namespace qlora::exporting
