// The config schema as one table: every YAML key with how to read it from a node and write it
// back. Loading, unknown-key suggestions and the resolved-config writer all walk this table, so a
// new key is one new row (config_fields.cpp).
#pragma once

#include <yaml-cpp/yaml.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "train/config.h"

namespace qlora::train {

struct ConfigField {
    std::string key;  // "lora.r"
    // Stores the node's value into the config; returns the problem ("expected an integer, found
    // 'abc'") instead when the node has the wrong type. A null node resets optional fields.
    std::function<std::optional<std::string>(const YAML::Node&, TrainConfig&)> read;
    std::function<void(YAML::Emitter&, const TrainConfig&)> write;
};

// In file order: sections as TrainConfig declares them, keys as each struct does.
const std::vector<ConfigField>& config_fields();
// "model", "quant", ... in order.
const std::vector<std::string>& config_sections();
// nullptr when `key` is not in the table.
const ConfigField* find_config_field(const std::string& key);

// The valid key closest to `key` by edit distance, or "" when none is close enough to be a typo.
std::string closest_key(const std::string& key, const std::vector<std::string>& candidates);

// A short description of a node for "found ..." in messages: 'abc', a sequence, null, ...
std::string describe_node(const YAML::Node& node);

}  // namespace qlora::train
