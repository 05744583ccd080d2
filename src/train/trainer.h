// Trainer: the QLoRA fine-tuning loop behind qlora-train (DESIGN.md sections 8-10), in torchtune's
// recipe shape: setup() builds everything from the config, train() runs to the end (or SIGINT),
// saving checkpoints/step-N/ along the way and the final PEFT adapter in output.dir/adapter/.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "train/config.h"

namespace qlora::train {

struct TrainResult {
    int64_t steps = 0;           // optimizer steps done in total (resumed ones included)
    std::vector<double> losses;  // train loss of every step
    std::string adapter_dir;     // output.dir/adapter (empty when interrupted)
    bool interrupted = false;    // SIGINT: a checkpoint was saved, the run can be resumed
};

class Trainer {
  public:
    // resume: "" (fresh start; refuses an output.dir that already holds checkpoints), "auto" (the
    // newest complete checkpoint in output.dir, or a fresh start) or a checkpoint folder.
    Trainer(TrainConfig config, std::string resume);
    ~Trainer();

    void setup();
    TrainResult train();

  private:
    struct State;
    std::unique_ptr<State> s_;
};

// SIGINT asks the running trainer to save a checkpoint after the current step and stop.
void install_interrupt_handler();

}  // namespace qlora::train
