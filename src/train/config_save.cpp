// The resolved config: every key of the schema, defaults included, so a run folder records
// exactly what trained it and `qlora-train runs/x/config.resolved.yaml` repeats the run.
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/config.h"
#include "train/config_fields.h"

namespace qlora::train {

std::string to_yaml(const TrainConfig& config) {
    YAML::Emitter out;
    out << YAML::BeginMap;
    std::string open_section;
    for (const ConfigField& field : config_fields()) {
        const size_t dot = field.key.find('.');
        const std::string section = field.key.substr(0, dot);
        if (section != open_section) {
            if (!open_section.empty()) out << YAML::EndMap;
            out << YAML::Key << section << YAML::Value << YAML::BeginMap;
            open_section = section;
        }
        out << YAML::Key << field.key.substr(dot + 1) << YAML::Value;
        field.write(out, config);
    }
    if (!open_section.empty()) out << YAML::EndMap;
    out << YAML::EndMap;
    QLORA_RUNTIME_CHECK(out.good(), "to_yaml: YAML emitter failed: ", out.GetLastError());
    return std::string(out.c_str()) + "\n";
}

void save_resolved_config(const TrainConfig& config, const std::string& path) {
    const std::filesystem::path p(path);
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    QLORA_RUNTIME_CHECK(file.good(), "cannot write the resolved config to ", path);
    file << "# Resolved by qlora-train from "
         << (config.source.empty() ? "(memory)" : config.source)
         << ": every key, defaults included.\n"
         << to_yaml(config);
    file.close();
    QLORA_RUNTIME_CHECK(file.good(), "failed writing the resolved config to ", path);
}

}  // namespace qlora::train
