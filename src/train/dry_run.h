// qlora-train --dry-run: the memory plan of a config from config.json alone (no weights loaded),
// compared with hardware.memory_limit_gb, plus what the same run would need without the savings
// QLoRA relies on (so a user sees what would not fit).
#pragma once

#include <string>

#include "train/config.h"

namespace qlora::train {

// model_config: a config.json to use instead of model.path/config.json (for recipes whose
// weights are not downloaded yet). Returns the report; throws qlora::Error for bad inputs.
std::string dry_run_report(const TrainConfig& config, const std::string& model_config);

}  // namespace qlora::train
