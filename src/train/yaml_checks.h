// Duplicate keys in a YAML mapping: YAML 1.2 forbids them, yaml-cpp keeps both and the config
// reader would let the last one win silently. Each is reported naming both lines.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

namespace qlora::train {

// "FILE:L:C: duplicate key 'lora.r' (first given at line L0)" for every repeated key, at any depth.
std::vector<std::string> yaml_duplicate_keys(const YAML::Node& root, const std::string& file);

}  // namespace qlora::train
