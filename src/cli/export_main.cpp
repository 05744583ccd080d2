// qlora-export --base MODEL --adapter ADAPTER --out OUT --format F [--merge-base nf4|fp]
//   [--group-size G] [--eval-data FILE] [--overwrite] [--max-shard-size 5GB]
// Writes what the ecosystem serves (docs/ARCHITECTURE.md lists the formats): the PEFT adapter, a
// merged Hugging Face folder (bf16, fp16, bitsandbytes NF4, our int4 per-group layout) or a GGUF
// file for llama.cpp.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <optional>
#include <string>

#include "cli/cli_checks.h"
#include "cli/run_tool.h"
#include "core/device.h"
#include "core/error.h"
#include "export/export_eval.h"
#include "export/export_hf.h"
#include "export/gguf_export.h"
#include "export/merge.h"
#include "io/path_guard.h"

using namespace qlora;
using namespace qlora::exporting;

namespace {

const char* kDescription =
    "qlora-export: merge a LoRA adapter into its base and write it for serving\n"
    "formats:\n"
    "  peft       the adapter alone, checked against the base (PeftModel.from_pretrained)\n"
    "  hf-bf16    merged Hugging Face folder in bfloat16 (AutoModelForCausalLM.from_pretrained)\n"
    "  hf-fp16    the same in float16\n"
    "  hf-nf4     merged weights requantized to the bitsandbytes 4-bit layout qlora-quantize "
    "writes\n"
    "  hf-int4    merged decoder linears in int4 per group (the int4 QAT scheme, Q4_0 "
    "arithmetic):\n"
    "             <module>.qweight uint8 + <module>.scales fp16; qlora-eval/qlora-generate load "
    "it.\n"
    "             Group size: --group-size, else the run's qat.group_size (qat.weight int4), else "
    "32\n"
    "  gguf-f16, gguf-q8_0, gguf-q4_0\n"
    "             one GGUF v3 file for llama.cpp; --out is the FILE (must end in .gguf)\n"
    "The merge is W = deq(NF4(W0)) + s*B*A, the weights the adapter was trained against; the\n"
    "quant settings come from the qlora_adapter.json qlora-train writes beside every adapter and\n"
    "checkpoint, else nf4/blocksize 64/double quant. --merge-base fp adds s*B*A to the original\n"
    "weights instead.";

void print_summary(const std::string& out, ExportFormat format, const HfExportSummary& s) {
    std::printf(
        "wrote %s (%s): %lld tensors, %lld merged with the adapter, %.2f MiB in %zu file(s)\n",
        out.c_str(), export_format_name(format).c_str(), static_cast<long long>(s.tensors),
        static_cast<long long>(s.merged), static_cast<double>(s.bytes) / (1024.0 * 1024.0),
        s.files.size());
    if (format == ExportFormat::kHfNf4 || format == ExportFormat::kHfInt4) {
        std::fputs(format_nf4_errors(s.nf4_errors).c_str(), stdout);
    }
}

void export_gguf_file(const MergedView& merged, ExportFormat format, const std::string& out,
                      bool overwrite) {
    GgufExportInputs in;
    in.config = merged.config();
    in.tokenizer_model =
        merged.base_dir();  // tokenizer.model, and tokenizer_config.json when present
    in.tensor_names = merged.names();
    in.load_tensor = [&merged](const std::string& name) { return merged.tensor(name); };
    in.type = parse_gguf_type(export_format_name(format).substr(5));
    in.out_file = out;
    in.overwrite = overwrite;
    const GgufExportSummary s = export_gguf(in);
    std::string types;
    for (const auto& [type, n] : s.tensors_by_type) {
        types += std::string(types.empty() ? "" : ", ") + type + " " + std::to_string(n);
    }
    std::printf("wrote %s (%s): %lld tensors (%s), %.2f MiB\n", out.c_str(),
                export_format_name(format).c_str(), static_cast<long long>(s.tensors),
                types.c_str(), static_cast<double>(s.bytes) / (1024.0 * 1024.0));
    for (const std::string& f : s.fallbacks) std::printf("  kept F16: %s\n", f.c_str());
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{kDescription};
    app.set_version_flag("--version", QLORA_VERSION);
    std::string base, adapter, out, format_name, merge_base, eval_data, eval_format, shard = "5GB";
    std::string device_name = "cpu";
    int64_t max_seq_len = 0;
    int64_t group_size = 0;
    int threads = 0;
    bool overwrite = false;
    app.add_option("--base", base,
                   "the base Hugging Face model folder (dense, or 4-bit from qlora-quantize), or "
                   "the .gguf file the adapter was trained on")
        ->required()
        ->check(cli::ModelPath());
    app.add_option("--adapter", adapter,
                   "PEFT LoRA adapter folder (qlora-train's adapter/ or checkpoints/step-N/, "
                   "or one PEFT saved)")
        ->required();
    app.add_option("--out", out,
                   "output folder (a .gguf file for gguf-*); must not exist unless --overwrite")
        ->required();
    app.add_option("--format", format_name,
                   "peft, hf-bf16, hf-fp16, hf-nf4, hf-int4, gguf-f16, gguf-q8_0 or gguf-q4_0")
        ->required()
        ->check(CLI::IsMember({"peft", "hf-bf16", "hf-fp16", "hf-nf4", "hf-int4", "gguf-f16",
                               "gguf-q8_0", "gguf-q4_0"}));
    app.add_option("--group-size", group_size,
                   "hf-int4: elements per scale, a power of two in [32, 256] (default: "
                   "the run's qat.group_size when it trained int4 QAT, else 32)");
    app.add_option("--merge-base", merge_base,
                   "nf4: deq(NF4(W0)) + s*B*A, as trained (default; fp when the run "
                   "trained without quantization); fp: W0 + s*B*A")
        ->check(CLI::IsMember({"nf4", "fp"}));
    app.add_option("--eval-data", eval_data,
                   "score base, base+adapter, merged 16-bit and merged 4-bit on this "
                   ".txt/.jsonl file and print the table")
        ->check(CLI::ExistingFile);
    app.add_option("--eval-format", eval_format, "text or jsonl (default: from the extension)")
        ->check(CLI::IsMember({"text", "jsonl"}));
    app.add_option("--max-seq-len", max_seq_len, "eval window (default: max_position_embeddings)")
        ->check(CLI::PositiveNumber);
    app.add_flag("--overwrite", overwrite, "replace an existing output");
    app.add_option("--max-shard-size", shard,
                   "largest safetensors shard of hf-* (5GB, 500MB, 2GiB, bytes)")
        ->capture_default_str();
    app.add_option("--device", device_name, "where --eval-data runs: cpu, cuda, cuda:N")
        ->capture_default_str();
    app.add_option("--threads", threads, "CPU threads for LibTorch (default: one per core)")
        ->check(CLI::NonNegativeNumber);
    return cli::run_tool("qlora-export", app, argc, argv, [&] {
        if (threads > 0) at::set_num_threads(threads);
        const ExportFormat format = parse_export_format(format_name);
        HfExportOptions options;
        options.out_dir = out;
        options.format = format;
        options.overwrite = overwrite;
        options.max_shard_bytes = parse_shard_size(shard);
        QLORA_CHECK(group_size == 0 || format == ExportFormat::kHfInt4,
                    "--group-size applies to hf-int4 only, not ", format_name);
        if (format == ExportFormat::kHfInt4) {
            std::string run_config;
            const std::optional<int64_t> trained = find_qat_int4_group_size(adapter, &run_config);
            options.int4_group_size = group_size > 0 ? group_size : trained.value_or(32);
            if (group_size > 0 && trained && *trained != group_size) {
                std::printf(
                    "warning: --group-size %lld differs from the QAT group size %lld of %s: the "
                    "export is not "
                    "the quantization the run trained through\n",
                    static_cast<long long>(group_size), static_cast<long long>(*trained),
                    run_config.c_str());
            }
            std::string from = "default; the run did not train int4 QAT";
            if (group_size > 0) {
                from = "--group-size";
            } else if (trained) {
                from = std::string("the QAT group size of ") + run_config;
            }
            std::printf("hf-int4 group size %lld (%s)\n",
                        static_cast<long long>(options.int4_group_size), from.c_str());
        }
        MergeOptions merge;
        if (!merge_base.empty()) merge.base = parse_merge_base(merge_base);
        QLORA_CHECK(!is_gguf(format) || out.ends_with(".gguf"), "--out for ", format_name,
                    " is the output file and must end in .gguf, got '", out, "'");
        io::check_output_not_input(
            {"--out", out}, {{"--base", base}, {"--adapter", adapter}, {"--eval-data", eval_data}});
        check_output_path(out, overwrite);  // before any work
        MergedView merged(base, adapter, merge);
        if (format == ExportFormat::kPeft) {
            print_summary(out, format, export_peft(merged, options));
        } else if (is_gguf(format)) {
            export_gguf_file(merged, format, out, overwrite);
        } else {
            print_summary(out, format, export_hf(merged, options));
        }
        if (!eval_data.empty()) {
            ExportEvalOptions eval;
            eval.data = eval_data;
            eval.format = eval_format;
            eval.max_seq_len = max_seq_len;
            eval.merged_dtype = format == ExportFormat::kHfFp16 ? at::kHalf : at::kBFloat16;
            eval.device = resolve_device(device_name);
            std::fputs(format_export_eval(evaluate_export(merged, eval)).c_str(), stdout);
            if (format == ExportFormat::kHfInt4) {
                std::printf(
                    "note: the 4-bit row above is the nf4 requantization; score the hf-int4 folder "
                    "with "
                    "qlora-eval --model %s\n",
                    out.c_str());
            }
        }
    });
}
