// Restoring a checkpoint's optimizer state with errors that name the checkpoint file: the
// optimizer itself only knows the state keys.
#pragma once

#include <string>

#include "optim/optimizer.h"

namespace qlora::train {

// optimizer.load_state_dict(state); a refusal (wrong shapes, dtypes, parameter count) becomes a
// one-line qlora::Error "<checkpoint>/trainer_state.safetensors: <reason>", the optimizer left as
// it was.
void restore_optimizer_state(optim::Optimizer& optimizer, const optim::StateDict& state,
                             const std::string& checkpoint_dir);

}  // namespace qlora::train
