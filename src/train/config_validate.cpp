// Range and name checks for every config key; messages say what was expected and what was found.
#include "train/config_validate.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/device.h"
#include "core/error.h"
#include "model/llama_layout.h"
#include "train/config_limits.h"

namespace qlora::train {

const std::string& ConfigSources::location(const std::string& key) const {
    auto it = where.find(key);
    return it == where.end() ? file : it->second;
}

void ConfigSources::add(const std::string& key, const std::string& message) {
    problems.push_back(location(key) + ": " + key + ": " + message);
}

namespace {

std::string num(double v) {
    std::ostringstream out;
    out << v;
    return out.str();
}

// Runs one of the library's parse_* functions only to learn whether it accepts the name.
template <typename Parse>
void check_parses(ConfigSources& s, const std::string& key, const std::string& value,
                  const char* valid, Parse parse) {
    try {
        parse(value);
    } catch (const Error&) {
        s.add(key, std::string("expected one of ") + valid + ", found '" + value + "'");
    }
}

void check_positive(ConfigSources& s, const std::string& key, int64_t v) {
    if (v <= 0) s.add(key, "expected an integer > 0, found " + std::to_string(v));
}

void check_non_negative(ConfigSources& s, const std::string& key, int64_t v) {
    if (v < 0) s.add(key, "expected an integer >= 0, found " + std::to_string(v));
}

bool power_of_two(int64_t v) { return v > 0 && (v & (v - 1)) == 0; }

bool valid_device(const std::string& d) {
    if (d == "auto" || d == "cpu" || d == "cuda") return true;
    if (d.rfind("cuda:", 0) != 0 || d.size() == 5) return false;
    return std::all_of(d.begin() + 5, d.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// "all-linear" and every LoRA target of the layout table (lm_head included).
std::string lora_target_list() {
    std::string s = "all-linear";
    for (const std::string& n : model::lora_target_names()) s += ", " + n;
    return s;
}

bool is_lora_target(const std::string& t) {
    const auto& names = model::lora_target_names();
    return t == "all-linear" || std::find(names.begin(), names.end(), t) != names.end();
}

void validate_model_quant_lora(const TrainConfig& c, ConfigSources& s) {
    if (c.model.path.empty())
        s.add("model.path", "missing; expected a Hugging Face model folder or a .gguf file");
    if (c.model.dtype != "auto") {
        check_parses(s, "model.dtype", c.model.dtype, "auto, float32, bfloat16, float16",
                     [](const std::string& v) { parse_dtype(v); });
    }
    if (!power_of_two(c.quant.blocksize) || c.quant.blocksize < 32 || c.quant.blocksize > 4096) {
        s.add("quant.blocksize",
              "expected a power of two in [32, 4096], found " + std::to_string(c.quant.blocksize));
    }
    check_positive(s, "lora.r", c.lora.r);
    if (!(c.lora.alpha > 0))
        s.add("lora.alpha", "expected a number > 0, found " + num(c.lora.alpha));
    if (!(c.lora.dropout >= 0 && c.lora.dropout < 1)) {
        s.add("lora.dropout", "expected a number in [0, 1), found " + num(c.lora.dropout));
    }
    if (c.lora.targets.empty())
        s.add("lora.targets", "expected all-linear or module names, found an empty list");
    for (const std::string& t : c.lora.targets) {
        if (!is_lora_target(t)) {
            s.add("lora.targets", "expected one of " + lora_target_list() + ", found '" + t + "'");
        }
    }
    const bool has_all = std::find(c.lora.targets.begin(), c.lora.targets.end(), "all-linear") !=
                         c.lora.targets.end();
    if (has_all && c.lora.targets.size() > 1) {
        s.add("lora.targets", "all-linear already names every projection; give it alone");
    }
}

void validate_data(const TrainConfig& c, ConfigSources& s) {
    const DataConfig& d = c.data;
    if (d.train.empty()) s.add("data.train", "missing; expected a .jsonl, .json or .txt file");
    if (d.eval && d.eval_split) {
        s.add("data.eval_split", "exclusive with data.eval (found both); set one of them");
    }
    if (d.eval_split && !(*d.eval_split > 0 && *d.eval_split < 1)) {
        s.add("data.eval_split", "expected a fraction in (0, 1), found " + num(*d.eval_split));
    }
    if (d.max_seq_len < 2) {
        s.add("data.max_seq_len",
              "expected an integer >= 2, found " + std::to_string(d.max_seq_len));
    }
}

void validate_loop_optim(const TrainConfig& c, ConfigSources& s) {
    const LoopConfig& t = c.train;
    if (t.max_steps) check_positive(s, "train.max_steps", *t.max_steps);
    if (t.epochs) check_positive(s, "train.epochs", *t.epochs);
    if (t.max_steps && t.epochs) {
        s.add("train.epochs", "exclusive with train.max_steps (found both); set the other to null");
    }
    check_positive(s, "train.micro_batch", t.micro_batch);
    check_positive(s, "train.grad_accum", t.grad_accum);
    check_positive(s, "train.log_every", t.log_every);
    if (t.offload_activations && !t.gradient_checkpointing) {
        s.add("train.offload_activations",
              "offloads the checkpointed layer inputs, so it needs train.gradient_checkpointing: "
              "true, found false");
    }
    if (c.hardware.parallel == dist::ParallelSetting::kShardBase) {
        if (!t.gradient_checkpointing) {
            s.add("hardware.parallel",
                  "shard_base needs train.gradient_checkpointing: true (without it autograd keeps "
                  "every gathered layer until the backward: the whole base), found false");
        }
        if (!c.quant.enabled)
            s.add("hardware.parallel",
                  "shard_base splits the 4-bit base: it needs quant.enabled: "
                  "true, found false");
    }

    const OptimConfig& o = c.optim;
    if (!(o.lr > 0) || !std::isfinite(o.lr))
        s.add("optim.lr", "expected a number > 0, found " + num(o.lr));
    if (!(o.weight_decay >= 0)) {
        s.add("optim.weight_decay", "expected a number >= 0, found " + num(o.weight_decay));
    }
    if (o.betas.size() != 2) {
        s.add("optim.betas",
              "expected 2 numbers [beta1, beta2], found " + std::to_string(o.betas.size()));
    }
    for (double b : o.betas) {
        if (!(b >= 0 && b < 1)) s.add("optim.betas", "expected values in [0, 1), found " + num(b));
    }
    if (!(o.eps > 0)) s.add("optim.eps", "expected a number > 0, found " + num(o.eps));
    if (!(o.max_grad_norm >= 0)) {
        s.add("optim.max_grad_norm",
              "expected a number >= 0 (0 disables clipping), found " + num(o.max_grad_norm));
    }
    if (o.warmup_ratio && !(*o.warmup_ratio >= 0 && *o.warmup_ratio <= 1)) {
        s.add("optim.warmup_ratio", "expected a fraction in [0, 1], found " + num(*o.warmup_ratio));
    }
    if (o.warmup_steps) check_non_negative(s, "optim.warmup_steps", *o.warmup_steps);
    if (o.warmup_ratio && o.warmup_steps) {
        s.add("optim.warmup_steps",
              "exclusive with optim.warmup_ratio (found both); set the other to null");
    }
}

// Values always; combinations only when QAT is on (a disabled section may hold anything valid).
void validate_qat(const TrainConfig& c, ConfigSources& s) {
    const QatConfig& q = c.qat;
    if (!power_of_two(q.group_size) || q.group_size < 32 || q.group_size > 256) {
        s.add("qat.group_size",
              "expected a power of two in [32, 256], found " + std::to_string(q.group_size));
    }
    check_non_negative(s, "qat.start_step", q.start_step);
    if (!q.enabled) return;

    const bool four_bit_base = c.quant.enabled;
    using quant::FakeQuantWeight;
    const std::string weight = quant::fake_quant_weight_name(q.weight);
    if (q.weight != FakeQuantWeight::kNF4 && four_bit_base) {
        s.add("qat.weight",
              weight +
                  " fake-quantizes a 16-bit base; expected quant.enabled: false, found "
                  "quant.enabled: true (an NF4 base takes qat.weight: nf4)");
    }
    if (q.weight == FakeQuantWeight::kNF4 && four_bit_base &&
        c.quant.type != quant::QuantType::kNF4) {
        s.add("qat.weight", "nf4 over a 4-bit base needs quant.type: nf4, found quant.type: " +
                                quant::quant_type_name(c.quant.type) +
                                " (or set quant.enabled: false to fake-quantize a 16-bit base)");
    }
    if (q.weight == FakeQuantWeight::kNF4 && four_bit_base && q.mode == lora::QatMode::kLora) {
        s.add(
            "qat.mode",
            "lora over an NF4 base is plain QLoRA (the base is already NF4); expected merge_aware, "
            "or quant.enabled: false to fake-quantize a 16-bit base, found lora");
    }
    if (q.mode == lora::QatMode::kMergeAware && c.lora.dropout > 0) {
        s.add("lora.dropout",
              "qat.mode merge_aware trains through the merged weight, where LoRA dropout has no "
              "input path; expected 0, found " +
                  num(c.lora.dropout));
    }
    if (c.train.max_steps && q.start_step >= *c.train.max_steps) {
        s.add("qat.start_step",
              "expected < train.max_steps (" + std::to_string(*c.train.max_steps) +
                  ") so that fake quantization switches on, found " + std::to_string(q.start_step));
    }
}

void validate_rest(const TrainConfig& c, ConfigSources& s) {
    check_non_negative(s, "eval.every", c.eval.every);
    check_non_negative(s, "eval.max_batches", c.eval.max_batches);
    check_positive(s, "eval.max_new_tokens", c.eval.max_new_tokens);
    check_non_negative(s, "output.save_every", c.output.save_every);
    check_non_negative(s, "output.keep", c.output.keep);

    validate_qat(c, s);

    if (!valid_device(c.hardware.device)) {
        s.add("hardware.device",
              "expected auto, cpu, cuda or cuda:N, found '" + c.hardware.device + "'");
    }
    if (c.hardware.memory_limit_gb && !(*c.hardware.memory_limit_gb > 0)) {
        s.add("hardware.memory_limit_gb",
              "expected a number > 0, found " + num(*c.hardware.memory_limit_gb));
    }
    if (c.hardware.world_size &&
        (*c.hardware.world_size < 1 || *c.hardware.world_size > (1 << 20))) {
        s.add("hardware.world_size", "expected an integer in [1, 1048576], found " +
                                         std::to_string(*c.hardware.world_size));
    }
    if (!(c.hardware.dist_timeout_s >= 1 && c.hardware.dist_timeout_s <= 86400)) {
        s.add("hardware.dist_timeout_s",
              "expected seconds in [1, 86400], found " + num(c.hardware.dist_timeout_s));
    }
}

}  // namespace

void validate_config(const TrainConfig& config, ConfigSources& sources) {
    validate_model_quant_lora(config, sources);
    validate_data(config, sources);
    validate_loop_optim(config, sources);
    validate_rest(config, sources);
    validate_config_limits(config, sources);
}

}  // namespace qlora::train
