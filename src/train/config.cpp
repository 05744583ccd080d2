// load_config: read the YAML file and the command-line overrides through the schema table,
// collect every problem with its line:column, then resolve relative paths.
#include "train/config.h"

#include <yaml-cpp/yaml.h>

#include <filesystem>

#include "core/error.h"
#include "core/error_text.h"
#include "core/limits.h"
#include "lora/lora_options.h"
#include "train/config_fields.h"
#include "train/config_validate.h"
#include "train/yaml_checks.h"

namespace qlora::train {
namespace fs = std::filesystem;

namespace {

std::string mark_of(const std::string& file, const YAML::Mark& mark) {
    // yaml-cpp counts from 0; editors count from 1.
    return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::vector<std::string> all_keys() {
    std::vector<std::string> keys;
    for (const ConfigField& f : config_fields()) keys.push_back(f.key);
    return keys;
}

std::string unknown_key_message(const std::string& key,
                                const std::vector<std::string>& candidates) {
    // A key is echoed cut: a fuzzed file made one of a whole line's worth of characters.
    std::string msg = "unknown key '" + cut_middle(key, 80) + "'";
    const std::string near = closest_key(key, candidates);
    if (!near.empty()) msg += "; did you mean '" + near + "'?";
    return msg;
}

// Reads one key's value node; `where` is already recorded for it.
void read_field(const ConfigField& field, const YAML::Node& value, TrainConfig& config,
                ConfigSources& sources) {
    if (auto problem = field.read(value, config)) {
        sources.add(field.key, *problem);
    } else if (!value.IsNull()) {
        sources.given.insert(field.key);
    }
}

void read_file_tree(const YAML::Node& root, TrainConfig& config, ConfigSources& sources) {
    const std::string& file = sources.file;
    if (root.IsNull()) return;  // an empty file: all defaults (model.path etc. still required)
    if (!root.IsMap()) {
        sources.problems.push_back(mark_of(file, root.Mark()) +
                                   ": expected a mapping of sections (model, lora, ...), found " +
                                   describe_node(root));
        return;
    }
    for (auto sec = root.begin(); sec != root.end(); ++sec) {
        const std::string name = sec->first.Scalar();
        const auto& sections = config_sections();
        if (std::find(sections.begin(), sections.end(), name) == sections.end()) {
            sources.problems.push_back(mark_of(file, sec->first.Mark()) + ": " +
                                       unknown_key_message(name, sections));
            continue;
        }
        const YAML::Node body = sec->second;  // a copy: the iterator hands out a temporary
        if (body.IsNull()) continue;
        if (!body.IsMap()) {
            sources.problems.push_back(mark_of(file, body.Mark()) + ": " + name +
                                       ": expected a mapping of keys, found " +
                                       describe_node(body));
            continue;
        }
        for (auto kv = body.begin(); kv != body.end(); ++kv) {
            const std::string key = name + "." + kv->first.Scalar();
            const ConfigField* field = find_config_field(key);
            if (field == nullptr) {
                sources.problems.push_back(mark_of(file, kv->first.Mark()) + ": " +
                                           unknown_key_message(key, all_keys()));
                continue;
            }
            sources.where[key] = mark_of(file, kv->second.Mark());
            read_field(*field, kv->second, config, sources);
        }
    }
}

void apply_override(const std::string& text, TrainConfig& config, ConfigSources& sources) {
    const std::string where = "override '" + cut_middle(text, 120) + "'";
    const size_t eq = text.find('=');
    const std::string key = eq == std::string::npos ? text : text.substr(0, eq);
    if (eq == std::string::npos || key.find('.') == std::string::npos) {
        sources.problems.push_back(where + ": expected SECTION.KEY=VALUE, e.g. optim.lr=1e-4");
        return;
    }
    const ConfigField* field = find_config_field(key);
    if (field == nullptr) {
        sources.problems.push_back(where + ": " + unknown_key_message(key, all_keys()));
        return;
    }
    YAML::Node value;
    try {
        value = YAML::Load(text.substr(eq + 1));
    } catch (const YAML::Exception& e) {
        sources.problems.push_back(where + ": " + key + ": not a YAML value: " + e.msg);
        return;
    }
    sources.where[key] = where;
    sources.from_override.insert(key);
    sources.given.erase(key);  // an override of null unsets what the file gave
    read_field(*field, value, config, sources);
}

// A path is relative to where it was written: the config file's folder for the file's keys, the
// working directory for overrides and defaults.
void resolve_path(std::string& path, const std::string& key, const ConfigSources& sources,
                  const fs::path& config_dir) {
    if (path.empty()) return;
    fs::path p(path);
    if (p.is_relative()) {
        const bool from_file = sources.given.count(key) && !sources.from_override.count(key);
        p = from_file ? config_dir / p : fs::current_path() / p;
    }
    path = p.lexically_normal().string();
}

// Keys whose default depends on what else was given.
void apply_dependent_defaults(TrainConfig& c, const ConfigSources& sources,
                              const std::string& path) {
    if (sources.given.count("optim.warmup_steps") && !sources.given.count("optim.warmup_ratio")) {
        c.optim.warmup_ratio.reset();
    }
    if (!c.train.max_steps && !c.train.epochs) c.train.epochs = 1;
    if (c.output.dir.empty()) c.output.dir = "runs/" + fs::path(path).stem().string();
}

}  // namespace

TrainConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
    QLORA_CHECK(fs::is_regular_file(path), "config file not found: ", path);
    YAML::Node root;
    try {
        root = YAML::LoadFile(path);
    } catch (const YAML::Exception& e) {
        QLORA_FAIL(mark_of(path, e.mark), ": YAML syntax error: ", e.msg);
    }

    TrainConfig config;
    ConfigSources sources;
    sources.file = path;
    sources.problems = yaml_duplicate_keys(root, path);
    read_file_tree(root, config, sources);
    for (const std::string& o : overrides) apply_override(o, config, sources);
    apply_dependent_defaults(config, sources, path);
    validate_config(config, sources);
    if (!sources.problems.empty()) {
        std::string message;
        for (const std::string& p : sources.problems)
            message += (message.empty() ? "" : "\n") + cut_middle(p, limits::kMaxErrorChars);
        throw Error(message, ExitCode::kBadInput, "src/train/config.cpp");
    }

    const fs::path dir = fs::absolute(fs::path(path)).parent_path();
    resolve_path(config.model.path, "model.path", sources, dir);
    resolve_path(config.data.train, "data.train", sources, dir);
    if (config.data.eval) resolve_path(*config.data.eval, "data.eval", sources, dir);
    resolve_path(config.output.dir, "output.dir", sources, dir);
    config.source = path;
    return config;
}

void check_paths(const TrainConfig& config) {
    std::vector<std::string> missing;
    auto need = [&](const std::string& key, const std::string& p, bool folder) {
        const bool ok = folder ? fs::is_directory(p) : fs::is_regular_file(p);
        if (!ok) missing.push_back(key + ": " + (folder ? "folder" : "file") + " not found: " + p);
    };
    const bool gguf = config.model.path.ends_with(".gguf");  // a llama.cpp file, read directly
    need("model.path", config.model.path, !gguf);
    if (!gguf && fs::is_directory(config.model.path)) {
        need("model.path", (fs::path(config.model.path) / "config.json").string(), false);
    }
    need("data.train", config.data.train, false);
    if (config.data.eval) need("data.eval", *config.data.eval, false);
    if (!missing.empty()) {
        std::string message;
        for (const std::string& m : missing) message += (message.empty() ? "" : "\n") + m;
        throw Error(message, ExitCode::kBadInput, "src/train/config.cpp");
    }
}

std::vector<std::string> resolved_lora_targets(const LoraConfig& lora) {
    return lora::resolve_targets(lora.targets);
}

}  // namespace qlora::train
