// qlora_adapter.json: written by the trainer beside every adapter, read by the exporters.
#include "lora/adapter_metadata.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/device.h"
#include "core/error.h"
#include "core/json_value.h"
#include "io/atomic_file.h"

namespace fs = std::filesystem;

namespace qlora::lora {
namespace {

constexpr int kVersion = 1;

nlohmann::ordered_json qat_json(const QatOptions& q) {
    nlohmann::ordered_json j;
    j["weight"] = quant::fake_quant_weight_name(q.scheme.weight);
    j["group_size"] = q.scheme.group_size;
    j["mode"] = qat_mode_name(q.mode);
    j["activations"] = q.activations_int8 ? "int8" : "none";
    return j;
}

QatOptions parse_qat(const nlohmann::json& j, const std::string& file,
                     const quant::Quant4Options& quant) {
    QatOptions q;
    q.scheme.weight = quant::parse_fake_quant_weight(json_field<std::string>(j, "weight", file));
    q.scheme.group_size = json_field<int64_t>(j, "group_size", file);
    q.scheme.nf4 = quant;
    q.mode = parse_qat_mode(json_field<std::string>(j, "mode", file));
    q.activations_int8 = parse_qat_activations(json_field<std::string>(j, "activations", file)) ==
                         QatActivations::kInt8;
    quant::validate(q.scheme);
    return q;
}

}  // namespace

bool AdapterMetadata::operator==(const AdapterMetadata& o) const {
    auto same_qat = [](const std::optional<QatOptions>& a, const std::optional<QatOptions>& b) {
        if (a.has_value() != b.has_value()) return false;
        if (!a) return true;
        return a->scheme.weight == b->scheme.weight &&
               a->scheme.group_size == b->scheme.group_size && a->mode == b->mode &&
               a->activations_int8 == b->activations_int8;
    };
    return base_quantized == o.base_quantized && quant.type == o.quant.type &&
           quant.blocksize == o.quant.blocksize && quant.double_quant == o.quant.double_quant &&
           compute_dtype == o.compute_dtype && same_qat(qat, o.qat);
}

void save_adapter_metadata(const std::string& dir, const AdapterMetadata& m) {
    nlohmann::ordered_json j;
    j["format"] = "qlora-cpp adapter metadata";
    j["version"] = kVersion;
    j["base_quantized"] = m.base_quantized;
    j["quant_type"] = quant::quant_type_name(m.quant.type);
    j["blocksize"] = m.quant.blocksize;
    j["double_quant"] = m.quant.double_quant;
    j["compute_dtype"] = dtype_name(m.compute_dtype);
    j["qat"] = m.qat ? qat_json(*m.qat) : nlohmann::ordered_json();
    io::AtomicFileWriter out((fs::path(dir) / kAdapterMetadataFile).string());
    out.write(j.dump(2) + "\n");
    out.commit();
}

std::optional<AdapterMetadata> load_adapter_metadata(const std::string& dir) {
    const std::string file = (fs::path(dir) / kAdapterMetadataFile).string();
    if (!fs::exists(file)) return std::nullopt;
    std::ifstream in(file);
    const nlohmann::json j = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    QLORA_CHECK(j.is_object(), file, ": expected a JSON object (qlora-cpp adapter metadata)");
    const int version = json_field<int>(j, "version", file);
    QLORA_CHECK(version == kVersion, file, ": version ", version, " is not supported (expected ",
                kVersion, ")");
    AdapterMetadata m;
    m.base_quantized = json_field<bool>(j, "base_quantized", file);
    m.quant.type = quant::parse_quant_type(json_field<std::string>(j, "quant_type", file));
    m.quant.blocksize = json_field<int64_t>(j, "blocksize", file);
    QLORA_CHECK(bnb::valid_blocksize(m.quant.blocksize), file,
                ": blocksize must be a power of two in [32, 4096], found ", m.quant.blocksize);
    m.quant.double_quant = json_field<bool>(j, "double_quant", file);
    m.compute_dtype = parse_dtype(json_field<std::string>(j, "compute_dtype", file));
    if (j.contains("qat") && !j.at("qat").is_null())
        m.qat = parse_qat(j.at("qat"), file + ": qat", m.quant);
    return m;
}

std::string describe(const AdapterMetadata& m) {
    std::string s = m.base_quantized ? quant::quant_type_name(m.quant.type) + " blocksize " +
                                           std::to_string(m.quant.blocksize) +
                                           (m.quant.double_quant ? " double quant" : "")
                                     : std::string("dense base");
    s += ", " + dtype_name(m.compute_dtype);
    if (m.qat) {
        s += ", QAT " + quant::fake_quant_weight_name(m.qat->scheme.weight);
        if (m.qat->scheme.weight == quant::FakeQuantWeight::kInt4)
            s += " group " + std::to_string(m.qat->scheme.group_size);
        s += " " + qat_mode_name(m.qat->mode);
    }
    return s;
}

}  // namespace qlora::lora
