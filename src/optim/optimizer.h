// The interface every optimizer offers the trainer: step with the schedule's lr, zero_grad, a flat
// state dict (saved into trainer_state.safetensors for resume) and the bytes its states occupy.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <string>

namespace qlora::optim {

// Flat name -> CPU tensor map; every entry is a plain tensor so a safetensors file can hold it.
using StateDict = std::map<std::string, at::Tensor>;

// Hyperparameters shared by the AdamW family (the lr is not here: step() receives it).
struct OptimOptions {
    double beta1 = 0.9;
    double beta2 = 0.999;
    double eps = 1e-8;
    double weight_decay = 0.0;
    // Paged variants put a tensor's states in managed memory only from this many elements (bnb:
    // 1e5).
    int64_t paged_min_numel = 100'000;
    // 8-bit variants keep tensors below this many elements in fp32 states (bnb: min_8bit_size).
    int64_t min_8bit_numel = 4096;
};

// Throws qlora::Error naming the bad field (betas in [0, 1), eps > 0, weight_decay >= 0, ...).
void validate(const OptimOptions& options);

class Optimizer {
  public:
    virtual ~Optimizer() = default;

    // One update of every parameter that has a gradient, with learning rate lr.
    virtual void step(double lr) = 0;
    // Zeroes gradients in place (keeps their memory; accumulation adds into them).
    virtual void zero_grad() = 0;
    // CPU copies of all states and step counters.
    virtual StateDict state_dict() const = 0;
    // Restores what state_dict() produced for the same parameter list and optimizer kind; throws
    // qlora::Error naming the first missing or mismatched entry.
    virtual void load_state_dict(const StateDict& state) = 0;
    // Bytes held by optimizer states (m and v, codes and absmax), wherever they live.
    virtual int64_t state_bytes() const = 0;
    // The name it was made with ("paged_adamw_8bit", ...).
    virtual const std::string& name() const = 0;
};

}  // namespace qlora::optim
