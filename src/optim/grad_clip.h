// Global-norm gradient clipping over all parameters, as torch.nn.utils.clip_grad_norm_.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace qlora::optim {

// Returns the L2 norm of all gradients together (parameters without a gradient are skipped), taken
// before clipping. When it is finite and above max_norm (> 0), every gradient is scaled in place by
// max_norm / (norm + 1e-6), torch's coefficient. A non-finite norm (inf/nan) is returned with the
// gradients untouched, so the trainer can skip the step or stop. max_norm <= 0 only measures.
double clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm);

}  // namespace qlora::optim
