// Value checks of a loaded config (ranges, names, exclusive keys), reported against where each
// key was written so every problem of a file comes back at once.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "train/config.h"

namespace qlora::train {

// What the loader learned about each key while reading: where it was written and the problems so
// far.
struct ConfigSources {
    std::string file;  // the config file, for keys left at defaults
    std::map<std::string, std::string>
        where;                    // "lora.r" -> "configs/x.yaml:12:6" or "override 'lora.r=0'"
    std::set<std::string> given;  // keys written in the file or an override
    std::set<std::string> from_override;  // the subset given on the command line
    std::vector<std::string> problems;    // "WHERE: message", in the order found

    const std::string& location(const std::string& key) const;
    void add(const std::string& key, const std::string& message);
};

// Appends a problem for every bad value in `config`.
void validate_config(const TrainConfig& config, ConfigSources& sources);

}  // namespace qlora::train
