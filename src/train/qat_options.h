// The qat config section turned into what the model takes, and the trainer's switch that turns
// fake quantization on at qat.start_step.
#pragma once

#include <string>

#include "lora/lora_options.h"
#include "model/llama.h"
#include "train/config.h"
#include "train/metrics_writer.h"

namespace qlora::train {

// The scheme and mode of c.qat (validated by load_config); nf4 takes quant.blocksize and
// quant.double_quant, the format the hf-nf4 export writes.
lora::QatOptions qat_options(const TrainConfig& c);
// One line for logs: "int4 group 32, activations int8, merge_aware, from step 10".
std::string describe_qat(const TrainConfig& c);

// Before an optimizer step, with `steps_done` steps behind: switches fake quantization on in
// `model` once steps_done reaches qat.start_step, writing {"step", "event": "qat_on", "qat"} to
// `metrics` and the log. Returns whether QAT is on (`on`: whether it already was).
bool switch_qat(model::LlamaImpl& model, const TrainConfig& c, int64_t steps_done, bool on,
                MetricsWriter& metrics);

}  // namespace qlora::train
