// The Hugging Face exports: stream merged tensors into an AtomicDir, then config.json and the
// tokenizer files; hf-nf4 requantizes each merged decoder linear and measures what that costs.
#include "export/export_hf.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "convert/gguf_to_hf.h"
#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "export/quantize_model.h"
#include "io/atomic_file.h"
#include "io/bnb_format.h"
#include "io/finite_check.h"
#include "io/path_guard.h"
#include "io/safetensors.h"
#include "lora/adapter_metadata.h"
#include "model/gguf_model.h"
#include "model/llama_layout.h"
#include "quant/fake_quant.h"
#include "quant/int4_format.h"

namespace fs = std::filesystem;

namespace qlora::exporting {
namespace {

// Files a model folder carries besides weights; copied when present (as qlora-quantize does).
const char* kSideFiles[] = {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                            "special_tokens_map.json", "generation_config.json"};

const std::pair<const char*, ExportFormat> kFormats[] = {
    {"peft", ExportFormat::kPeft},          {"hf-bf16", ExportFormat::kHfBf16},
    {"hf-fp16", ExportFormat::kHfFp16},     {"hf-nf4", ExportFormat::kHfNf4},
    {"hf-int4", ExportFormat::kHfInt4},     {"gguf-f16", ExportFormat::kGgufF16},
    {"gguf-q8_0", ExportFormat::kGgufQ8_0}, {"gguf-q4_0", ExportFormat::kGgufQ4_0}};

nlohmann::ordered_json read_json(const fs::path& path) {
    std::ifstream in(path);
    QLORA_CHECK(in.good(), path.string(), ": cannot open");
    try {
        return nlohmann::ordered_json::parse(in);
    } catch (const nlohmann::json::parse_error& e) {
        QLORA_FAIL(path.string(), ": not valid JSON (", e.what(), ")");
    }
}

// config.json of the export: the base's, with the quantization and dtype of what was written.
nlohmann::ordered_json export_config(const MergedView& merged, ExportFormat format,
                                     int64_t int4_group) {
    nlohmann::ordered_json config =
        merged.gguf() != nullptr ? nlohmann::ordered_json::parse(merged.gguf()->hf_config().dump())
                                 : read_json(fs::path(merged.base_dir()) / "config.json");
    c10::ScalarType compute = at::kBFloat16;
    if (config.contains("quantization_config")) {
        const std::string name =
            config["quantization_config"].value("bnb_4bit_compute_dtype", std::string());
        if (!name.empty()) compute = parse_dtype(name);
        config.erase("quantization_config");
    }
    if (format == ExportFormat::kHfNf4) {
        config["quantization_config"] =
            io::bnb_quantization_config(merged.quant().options, compute);
    } else if (format == ExportFormat::kHfInt4) {
        // torch_dtype stays the base's: the dtype of the tensors stored unquantized.
        config["quantization_config"] = quant::int4_quantization_config(int4_group);
    } else {
        const std::string dtype = format == ExportFormat::kHfFp16 ? "float16" : "bfloat16";
        config["torch_dtype"] = dtype;
        if (config.contains("dtype")) config["dtype"] = dtype;  // transformers 5's name for it
    }
    config["tie_word_embeddings"] = merged.config().tie_word_embeddings;
    return config;
}

// The base's tokenizer and generation files: copied from a folder, rebuilt from a GGUF's metadata.
void copy_side_files(const MergedView& merged, const std::string& to_dir) {
    if (merged.gguf() != nullptr) {
        convert::write_gguf_side_files(
            *merged.gguf(), tokenizer::gguf_hf_tokenizer(merged.gguf()->reader()), to_dir);
        return;
    }
    for (const char* file : kSideFiles) {
        const fs::path from = fs::path(merged.base_dir()) / file;
        if (fs::exists(from))
            fs::copy_file(from, fs::path(to_dir) / file, fs::copy_options::overwrite_existing);
    }
}

double rel_error(const at::Tensor& approx, const at::Tensor& exact) {
    const double norm = exact.to(at::kDouble).norm().item<double>();
    const double diff = (approx.to(at::kDouble) - exact.to(at::kDouble)).norm().item<double>();
    return norm == 0.0 ? (diff == 0.0 ? 0.0 : INFINITY) : diff / norm;
}

}  // namespace

ExportFormat parse_export_format(const std::string& name) {
    for (const auto& [text, format] : kFormats) {
        if (name == text) return format;
    }
    QLORA_FAIL(
        "--format must be one of peft, hf-bf16, hf-fp16, hf-nf4, hf-int4, gguf-f16, gguf-q8_0, "
        "gguf-q4_0; got '",
        name, "'");
}

std::string export_format_name(ExportFormat format) {
    for (const auto& [text, f] : kFormats) {
        if (f == format) return text;
    }
    return "?";
}

bool is_gguf(ExportFormat format) {
    return format == ExportFormat::kGgufF16 || format == ExportFormat::kGgufQ8_0 ||
           format == ExportFormat::kGgufQ4_0;
}

uint64_t parse_shard_size(const std::string& text) {
    size_t digits = 0;
    while (digits < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[digits])) || text[digits] == '.')) {
        ++digits;
    }
    std::string unit = text.substr(digits);
    std::transform(unit.begin(), unit.end(), unit.begin(),
                   [](unsigned char c) { return std::toupper(c); });
    const std::pair<const char*, double> kUnits[] = {
        {"", 1.0},   {"B", 1.0},      {"KB", 1e3},      {"MB", 1e6},
        {"GB", 1e9}, {"KIB", 1024.0}, {"MIB", 1 << 20}, {"GIB", 1 << 30}};
    double value = 0.0;
    try {
        value = digits == 0 ? -1.0 : std::stod(text.substr(0, digits));
    } catch (const std::exception&) {
        value = -1.0;
    }
    for (const auto& [name, factor] : kUnits) {
        if (unit == name && value > 0.0) return static_cast<uint64_t>(value * factor);
    }
    QLORA_FAIL(
        "--max-shard-size must be a positive size like 5GB, 500MB, 2GiB or a byte count; got '",
        text, "'");
}

void check_output_path(const std::string& out, bool overwrite) {
    QLORA_CHECK(!out.empty(), "--out must not be empty");
    fs::path path = fs::absolute(out).lexically_normal();
    if (!path.has_filename()) path = path.parent_path();
    QLORA_CHECK(overwrite || !fs::exists(path), out,
                " already exists; choose another output or pass --overwrite");
    // The nearest existing ancestor must be a folder (the output's missing parents are created) ...
    fs::path parent = path.parent_path();
    while (!parent.empty() && !fs::exists(parent) && parent != parent.root_path())
        parent = parent.parent_path();
    QLORA_CHECK(fs::is_directory(parent), out, ": cannot create it, ", parent.string(),
                " is not a folder");
    // ... in which we can create entries: probe with a folder (root passes access(2) on read-only
    // places). The probe goes into that ancestor, so a refused output leaves no folder behind.
    const fs::path where = fs::exists(path.parent_path()) ? path.parent_path() : parent;
    const std::string probe =
        (where / (path.filename().string() + ".probe-" + std::to_string(::getpid()))).string();
    const bool created = ::mkdir(probe.c_str(), 0700) == 0;
    const std::string why = std::strerror(errno);
    if (created) ::rmdir(probe.c_str());
    QLORA_CHECK(created, out, ": cannot create it in ", where.string(), " (", why, ")");
}

std::optional<int64_t> find_qat_int4_group_size(const std::string& adapter_dir,
                                                std::string* source) {
    const std::optional<lora::AdapterMetadata> m = lora::load_adapter_metadata(adapter_dir);
    if (!m || !m->qat || m->qat->scheme.weight != quant::FakeQuantWeight::kInt4)
        return std::nullopt;
    if (source) *source = (fs::path(adapter_dir) / lora::kAdapterMetadataFile).string();
    return m->qat->scheme.group_size;
}

namespace {

// PEFT applies an adapter to the modules target_modules names; one the base lacks would be skipped
// silently, so part of the adapter would never run. A target matches a module's last name part
// ("q_proj") or its full name, as PEFT matches it.
void check_target_modules(const MergedView& merged, const lora::PeftAdapter& adapter) {
    for (const std::string& target : adapter.config.target_modules) {
        if (target == "all-linear") continue;
        const std::string tail = "." + target + ".weight";
        const bool found = std::any_of(
            merged.names().begin(), merged.names().end(),
            [&](const std::string& n) { return n.ends_with(tail) || n == target + ".weight"; });
        QLORA_CHECK(found, "adapter target_modules names '", target, "', but the base ",
                    merged.base_dir(),
                    " has no such module; PEFT would silently apply only part of the adapter");
    }
}

}  // namespace

HfExportSummary export_peft(const MergedView& merged, const HfExportOptions& options) {
    check_target_modules(merged, merged.adapter());
    check_output_path(options.out_dir, options.overwrite);
    io::CreatedParents parents(options.out_dir);  // removed again unless the export completes
    io::AtomicDir out(options.out_dir, options.overwrite);
    lora::PeftAdapter adapter = merged.adapter();
    if (adapter.config.base_model_name_or_path.empty())
        adapter.config.base_model_name_or_path = merged.base_dir();
    lora::save_peft_adapter(out.path(), adapter);
    out.commit();
    parents.keep();
    HfExportSummary summary;
    for (const auto& [name, t] : adapter.tensors) {
        summary.tensors += 1;
        summary.bytes += static_cast<uint64_t>(t.numel()) * 4;
    }
    summary.files = {options.out_dir + "/adapter_config.json",
                     options.out_dir + "/adapter_model.safetensors"};
    return summary;
}

HfExportSummary export_hf(const MergedView& merged, const HfExportOptions& options) {
    const ExportFormat format = options.format;
    QLORA_CHECK(format == ExportFormat::kHfBf16 || format == ExportFormat::kHfFp16 ||
                    format == ExportFormat::kHfNf4 || format == ExportFormat::kHfInt4,
                "export_hf: format ", export_format_name(format),
                " is not a Hugging Face folder format");
    if (format == ExportFormat::kHfInt4) {
        quant::QatScheme scheme;
        scheme.weight = quant::FakeQuantWeight::kInt4;
        scheme.group_size = options.int4_group_size;
        quant::validate(scheme);
    }
    check_output_path(options.out_dir, options.overwrite);
    io::CreatedParents parents(options.out_dir);  // removed again unless the export completes
    io::AtomicDir out(options.out_dir, options.overwrite);
    const c10::ScalarType dtype16 = format == ExportFormat::kHfFp16 ? at::kHalf : at::kBFloat16;
    HfExportSummary summary;
    std::vector<std::string> written;
    {
        io::ShardedSafetensorsWriter writer(out.path(), "model", options.max_shard_bytes);
        Progress progress(std::string("export ") + export_format_name(format),
                          static_cast<int64_t>(merged.names().size()), "tensor");
        for (const std::string& name : merged.names()) {
            at::Tensor w = merged.tensor(name);  // float32
            io::check_finite(w, name, options.out_dir,
                             "refusing to export it (the base or the adapter holds NaN/Inf)");
            summary.tensors += 1;
            summary.merged += merged.has_adapter(name) ? 1 : 0;
            if (format == ExportFormat::kHfInt4) {
                if (model::is_quantized_weight_name(name)) {
                    quant::Int4Packed q = quant::pack_int4(w, options.int4_group_size, name);
                    at::Tensor deq = quant::unpack_int4(q.qweight, q.scales, w.size(1),
                                                        options.int4_group_size, name);
                    summary.nf4_errors.push_back({name, rel_error(deq, w)});
                    for (auto& [key, value] : quant::int4_tensors(q, name)) {
                        summary.bytes += value.nbytes();
                        writer.add(key, value);
                    }
                } else {
                    // Exact: the base's own values, or the merged float32 ones.
                    at::Tensor t = merged.has_adapter(name) ? w : w.to(merged.base_dtype(name));
                    summary.bytes += t.nbytes();
                    writer.add(name, t);
                }
            } else if (format != ExportFormat::kHfNf4) {
                at::Tensor t = w.to(dtype16);
                io::check_finite(t, name, options.out_dir,
                                 std::string("refusing to export it: the merged values overflow ") +
                                     export_format_name(format));
                summary.bytes += t.nbytes();
                writer.add(name, t);
            } else if (model::is_quantized_weight_name(name)) {
                // As qlora-quantize: quantize the weight in the dtype the base keeps it in.
                at::Tensor exact = w.to(merged.base_dtype(name));
                quant::Quant4Tensor q =
                    quant::Quant4Tensor::quantize(exact, merged.quant().options, name);
                summary.nf4_errors.push_back({name, rel_error(q.dequantize(at::kFloat), exact)});
                for (auto& [key, value] : io::bnb_4bit_tensors(q, name)) {
                    summary.bytes += value.nbytes();
                    writer.add(key, value);
                }
            } else {
                at::Tensor t = w.to(merged.base_dtype(name));
                summary.bytes += t.nbytes();
                writer.add(name, t);
            }
            progress.advance();
        }
        progress.finish();
        written = writer.finish();
    }
    io::write_file_atomic((fs::path(out.path()) / "config.json").string(),
                          export_config(merged, format, options.int4_group_size).dump(2) + "\n");
    copy_side_files(merged, out.path());
    out.commit();
    parents.keep();
    for (const std::string& file : written) {
        summary.files.push_back((fs::path(options.out_dir) / fs::path(file).filename()).string());
    }
    return summary;
}

std::string format_nf4_errors(const std::vector<LayerQuantError>& errors) {
    if (errors.empty()) return "no 4-bit weights\n";
    std::string text = "relative error ||Q(W)-W||/||W|| of the requantized merged weights:\n";
    size_t width = 0;
    for (const auto& e : errors) width = std::max(width, e.name.size());
    std::vector<double> values;
    char line[64];
    for (const auto& e : errors) {
        std::snprintf(line, sizeof line, "  %.6f\n", e.rel_error);
        text += std::string("  ") + e.name + std::string(width - e.name.size(), ' ') + line;
        values.push_back(e.rel_error);
    }
    std::sort(values.begin(), values.end());
    double mean = 0.0;
    for (double v : values) mean += v;
    mean /= static_cast<double>(values.size());
    const size_t n = values.size();
    const double median = n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
    char summary[160];
    std::snprintf(summary, sizeof summary,
                  "%zu weights: mean %.6f, median %.6f, min %.6f, max %.6f\n", n, mean, median,
                  values.front(), values.back());
    return text + summary;
}

}  // namespace qlora::exporting
