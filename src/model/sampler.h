// Next-token choice from logits: greedy, or repetition penalty -> temperature -> top-k -> softmax
// -> top-p, drawn with llama2.c's xorshift64* generator, so a seed reproduces run.c's samples.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace qlora::model {

struct SamplingOptions {
    double temperature = 0.0;         // 0: greedy (argmax)
    double top_p = 1.0;               // nucleus mass; <= 0 or >= 1 disables it
    int64_t top_k = 0;                // keep the k most likely tokens; 0 disables it
    double repetition_penalty = 1.0;  // HF/CTRL rule over tokens seen so far; 1 disables it
    uint64_t seed = 42;  // 0 is replaced by a fixed non-zero state (xorshift needs one)
};

class Sampler {
  public:
    explicit Sampler(const SamplingOptions& options);

    // logits: [V] (any float dtype, any device); history: prompt + generated ids so far.
    int64_t sample(const at::Tensor& logits, const std::vector<int64_t>& history);

    // run.c's random_u32 / random_f32: xorshift64* and the top 24 bits as a float in [0, 1).
    uint32_t random_u32();
    float random_f32();

    const SamplingOptions& options() const { return options_; }

  private:
    SamplingOptions options_;
    uint64_t state_;
    std::vector<float> probs_;                      // [V] scratch
    std::vector<std::pair<float, int32_t>> order_;  // (prob, id) scratch for top-k/top-p
};

}  // namespace qlora::model
