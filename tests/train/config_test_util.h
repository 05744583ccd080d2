// Helpers for the config tests: write a YAML file into a scratch folder and load it.
#pragma once

#include <fstream>
#include <string>

#include "support/test_support.h"

namespace qlora::train::test {

inline std::string write_text(const std::string& dir, const std::string& name,
                              const std::string& text) {
    const std::string path = dir + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

// The smallest valid config body: the two required keys.
inline const char* kMinimal =
    "model:\n"
    "  path: model\n"
    "data:\n"
    "  train: train.jsonl\n";

}  // namespace qlora::train::test
