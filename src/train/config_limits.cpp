// Size bounds and float finiteness of a training config (train/config_limits.h).
#include "train/config_limits.h"

#include <cmath>
#include <optional>
#include <string>

#include "core/limits.h"

namespace qlora::train {
namespace {

void check_at_most(ConfigSources& s, const std::string& key, int64_t value, int64_t max) {
    if (value > max) {
        s.add(key, "expected an integer <= " + std::to_string(max) + " (documented limit), found " +
                       std::to_string(value));
    }
}

void check_finite(ConfigSources& s, const std::string& key, double value) {
    if (!std::isfinite(value))
        s.add(key, "expected a finite number, found " + std::to_string(value));
}

void check_finite(ConfigSources& s, const std::string& key, const std::optional<double>& value) {
    if (value) check_finite(s, key, *value);
}

}  // namespace

void validate_config_limits(const TrainConfig& c, ConfigSources& s) {
    check_at_most(s, "data.max_seq_len", c.data.max_seq_len, limits::kMaxSeqLen);
    check_at_most(s, "train.micro_batch", c.train.micro_batch, limits::kMaxMicroBatch);
    check_at_most(s, "train.grad_accum", c.train.grad_accum, limits::kMaxGradAccum);
    check_at_most(s, "eval.max_new_tokens", c.eval.max_new_tokens, limits::kMaxNewTokens);
    check_at_most(s, "lora.r", c.lora.r, 65536);
    if (c.train.micro_batch > 0 && c.data.max_seq_len > 0 &&
        c.train.micro_batch > limits::kMaxSeqLen * 64 / c.data.max_seq_len) {
        s.add("train.micro_batch",
              "micro_batch x max_seq_len = " + std::to_string(c.train.micro_batch) + " x " +
                  std::to_string(c.data.max_seq_len) + " tokens exceeds the documented limit of " +
                  std::to_string(limits::kMaxSeqLen * 64) + " tokens per micro-batch");
    }
    check_finite(s, "lora.alpha", c.lora.alpha);
    check_finite(s, "lora.dropout", c.lora.dropout);
    check_finite(s, "data.eval_split", c.data.eval_split);
    check_finite(s, "optim.lr", c.optim.lr);
    check_finite(s, "optim.weight_decay", c.optim.weight_decay);
    for (double b : c.optim.betas) check_finite(s, "optim.betas", b);
    check_finite(s, "optim.eps", c.optim.eps);
    check_finite(s, "optim.max_grad_norm", c.optim.max_grad_norm);
    check_finite(s, "optim.warmup_ratio", c.optim.warmup_ratio);
    check_finite(s, "hardware.memory_limit_gb", c.hardware.memory_limit_gb);
}

}  // namespace qlora::train
