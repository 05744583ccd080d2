// Puts a PEFT LoRA adapter folder (ours or one PEFT saved) onto a loaded Llama for inference:
// adapters on the modules it names, its tensors copied in, eval mode.
#pragma once

#include <string>

#include "model/llama.h"

namespace qlora::exporting {

// Throws qlora::Error naming the folder and tensor when the adapter does not fit the model
// (unknown module, wrong shape, missing tensor).
void attach_peft_adapter(model::LlamaImpl& model, const std::string& adapter_dir);

}  // namespace qlora::exporting
