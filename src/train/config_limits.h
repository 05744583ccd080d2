// Bounds on the sizes and finiteness of the floats of a training config (core/limits.h), checked
// with the rest of validate_config: an absurd train.grad_accum would buffer micro-batches until
// memory runs out, an absurd max_seq_len sizes activations, a .nan learning rate passes `lr > 0`
// written the wrong way round.
#pragma once

#include "train/config.h"
#include "train/config_validate.h"

namespace qlora::train {

void validate_config_limits(const TrainConfig& config, ConfigSources& sources);

}  // namespace qlora::train
