// Walks a YAML tree for repeated mapping keys (train/yaml_checks.h).
#include "train/yaml_checks.h"

#include <map>

namespace qlora::train {
namespace {

std::string line_col(const YAML::Mark& m) {
    return std::to_string(m.line + 1) + ":" +
           std::to_string(m.column + 1);  // yaml-cpp counts from 0
}

// Recursion depth is bounded by yaml-cpp's own parser (it refuses deeper nesting first).
void walk(const YAML::Node& node, const std::string& prefix, const std::string& file,
          std::vector<std::string>& out) {
    if (node.IsSequence()) {
        for (size_t i = 0; i < node.size(); ++i)
            walk(node[i], prefix + "[" + std::to_string(i) + "]", file, out);
        return;
    }
    if (!node.IsMap()) return;
    std::map<std::string, YAML::Mark> first;
    for (auto it = node.begin(); it != node.end(); ++it) {
        if (!it->first.IsScalar()) continue;
        const std::string key =
            prefix.empty() ? it->first.Scalar() : prefix + "." + it->first.Scalar();
        auto [pos, inserted] = first.emplace(key, it->first.Mark());
        if (!inserted) {
            out.push_back(file + ":" + line_col(it->first.Mark()) + ": duplicate key '" + key +
                          "' (first given at line " + std::to_string(pos->second.line + 1) +
                          "); remove one of them");
        }
        walk(it->second, key, file, out);
    }
}

}  // namespace

std::vector<std::string> yaml_duplicate_keys(const YAML::Node& root, const std::string& file) {
    std::vector<std::string> out;
    walk(root, "", file, out);
    return out;
}

}  // namespace qlora::train
