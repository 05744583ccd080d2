// Step benchmark. Each base runs in turn in this process: build the model on the device (each
// linear quantized as soon as it is made, so a 4-bit run never holds the dense model), attach
// LoRA to every linear, warm up, reset the peak-memory counter, then time `iters` steps.
#include "bench/bench_step.h"

#include <ATen/ATen.h>
#include <sys/resource.h>
#include <torch/csrc/autograd/profiler_legacy.h>

#include <array>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>

#include "bench/timer.h"
#include "core/device.h"
#include "core/error.h"
#include "core/peak_memory.h"
#include "lora/activation_checkpointing.h"
#include "lora/apply_lora.h"
#include "model/llama.h"
#include "optim/optimizer_factory.h"
#include "quant/quant4_tensor.h"
#include "train/cross_entropy.h"
#include "train/recipe.h"

#ifdef QLORA_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace qlora::bench {
namespace {

// The run a config with these keys trains (every other key at its documented default, e.g.
// blocksize 64 with double quant), turned into components by the recipe, so the
// benchmark measures what qlora-train runs. nf4/fp4 compute in --compute-dtype (model.dtype; auto:
// bf16 on the GPU, fp32 on the CPU).
train::Recipe bench_recipe(const StepBenchOptions& o, const std::string& base,
                           const c10::Device& device) {
    train::TrainConfig c;
    if (base == "nf4" || base == "fp4") {
        c.quant.type = quant::parse_quant_type(base);
        QLORA_CHECK(o.compute_dtype == "auto" || is_dtype_name(o.compute_dtype),
                    "qlora-bench step: --compute-dtype expects auto, fp32, bf16 or fp16, found '",
                    o.compute_dtype, "'");
        c.model.dtype = o.compute_dtype;
    } else {
        QLORA_CHECK(base == "bf16" || base == "fp16" || base == "fp32",
                    "qlora-bench step: --base expects nf4, fp4, bf16, fp16 or fp32, found '", base,
                    "'");
        c.quant.enabled = false;
        c.model.dtype = base;
    }
    c.lora.r = o.lora_r;
    c.lora.alpha = o.lora_alpha;
    c.lora.dropout = o.lora_dropout;
    c.optim.name = optim::parse_optimizer_kind(o.optimizer);
    c.train.gradient_checkpointing = o.checkpointing;
    return train::make_recipe(c, device);
}

// Random weights made on the device in the compute dtype, std 0.02 (embeddings 1.0); each linear
// but the head quantized as the recipe's loader would.
void init_on_device(model::LlamaImpl& m, const train::Recipe& r) {
    const auto opts = at::TensorOptions().device(r.device).dtype(r.dtype);
    const auto& c = m.config();
    const bool four_bit = r.load.quant != "none";
    const quant::Quant4Options q{
        four_bit ? quant::parse_quant_type(r.load.quant) : quant::QuantType::kNF4, r.load.blocksize,
        r.load.double_quant};
    m.set_embedding(at::randn({c.vocab_size, c.hidden_size}, opts));
    for (auto& l : m.linears()) {
        l->set_weight(at::randn({l->out_features(), l->in_features()}, opts).mul_(0.02));
        if (four_bit && l.get() != m.lm_head.get()) l->quantize(q);
    }
    for (auto& layer : m.layers) {
        layer->input_layernorm->weight.set_data(at::ones({c.hidden_size}, opts));
        layer->post_attention_layernorm->weight.set_data(at::ones({c.hidden_size}, opts));
    }
    m.norm->weight.set_data(at::ones({c.hidden_size}, opts));
    m.inv_freq.set_data(m.inv_freq.to(r.device));
}

// Forward + backward FLOPs of the linears and attention per step: the frozen base needs no weight
// gradient, so backward costs one matmul per linear (the input gradient), and checkpointing
// repeats the forward: (2 + 2 + 2*ckpt) * params * tokens, plus attention's QK^T and PV (causal:
// half of 4*T^2*hidden per layer forward) at the same multiplier.
double step_flops(const model::LlamaConfig& c, int64_t linear_params, int64_t tokens, int64_t seq,
                  bool checkpointing) {
    const double mult = checkpointing ? 6.0 : 4.0;
    const double attn = 2.0 * static_cast<double>(seq) * static_cast<double>(c.hidden_size) *
                        static_cast<double>(c.num_hidden_layers);  // per token, causal half
    return mult / 2.0 * (2.0 * static_cast<double>(linear_params) + attn) *
           static_cast<double>(tokens);
}

nlohmann::ordered_json run_case(const StepBenchOptions& o, const std::string& base,
                                const c10::Device& device) {
    const train::Recipe recipe = bench_recipe(o, base, device);
    const PeakMemory peak(device);
    const auto config = step_bench_config(o.shape, o.layers);
    nlohmann::ordered_json j;
    {
        at::manual_seed(0);
        model::Llama m(config);
        init_on_device(*m, recipe);
        int64_t linear_params = 0;
        for (auto& l : m->linears()) linear_params += l->out_features() * l->in_features();
        lora::apply_lora(*m, recipe.lora);
        m->train();  // LoRA dropout is on, as in training
        lora::set_gradient_checkpointing(*m, o.checkpointing);
        std::vector<at::Tensor> params;
        int64_t lora_numel = 0;
        for (auto& [name, t] : lora::adapter_parameters(*m)) {
            params.push_back(t);
            lora_numel += t.numel();
        }
        auto opt = optim::make_optimizer(optim::optimizer_kind_name(recipe.optimizer), params,
                                         recipe.optim);
        const int64_t seq = o.seq;
        at::Tensor tokens = at::randint(0, config.vocab_size, {o.micro_batch, seq + 1},
                                        at::TensorOptions().device(device).dtype(at::kLong));
        at::Tensor inputs = tokens.narrow(1, 0, seq);
        at::Tensor targets = tokens.narrow(1, 1, seq).reshape({-1});
        double last_loss = 0.0;
        auto step = [&] {
            opt->zero_grad();
            at::Tensor logits = m->forward(inputs);
            // The trainer's loss (train/cross_entropy.h), as a mean over the tokens.
            at::Tensor loss =
                train::summed_cross_entropy(logits.view({-1, config.vocab_size}), targets)
                    .div(static_cast<double>(targets.numel()));
            logits = at::Tensor();
            loss.backward();
            opt->step(1e-5);
            last_loss = loss.item<double>();
        };
        for (int i = 0; i < o.warmup; ++i) step();
        peak.reset();
        const double secs = time_call(step, device, 0, o.iters);
        if (!o.trace_prefix.empty()) {
            // One more step, untimed, under LibTorch's profiler: a Chrome trace of its ATen ops.
            const torch::autograd::profiler::RecordProfile trace(o.trace_prefix + base + ".json");
            step();
        }
        const int64_t tokens_per_step = o.micro_batch * seq;
        j["bench"] = "step";
        j["device"] = device.str();
        j["shape"] = o.shape;
        j["layers"] = config.num_hidden_layers;
        j["base"] = base;
        j["compute_dtype"] = dtype_name(recipe.dtype);
        j["seq"] = seq;
        j["micro_batch"] = o.micro_batch;
        j["lora_r"] = o.lora_r;
        j["lora_params"] = lora_numel;
        j["lora_dropout"] = recipe.lora.dropout;
        if (recipe.load.quant != "none") {
            j["blocksize"] = recipe.load.blocksize;
            j["double_quant"] = recipe.load.double_quant;
        }
        j["optimizer"] = o.optimizer;
        j["checkpointing"] = o.checkpointing;
        j["base_weight_bytes"] = m->weight_nbytes();
        j["optimizer_state_bytes"] = opt->state_bytes();
        j["step_ms"] = secs * 1e3;
        j["tokens_per_s"] = static_cast<double>(tokens_per_step) / secs;
        j["approx_tflops"] =
            step_flops(config, linear_params, tokens_per_step, seq, o.checkpointing) / secs / 1e12;
        j["peak_step_bytes"] = peak.peak_bytes();
        j["loss"] = last_loss;
    }
    peak.release_cache();
    return j;
}

}  // namespace

model::LlamaConfig step_bench_config(const std::string& shape, int64_t layers) {
    // hidden, intermediate, layers, heads, kv heads (published Llama / TinyLlama shapes)
    static const std::map<std::string, std::array<int64_t, 5>> shapes = {
        {"tiny", {256, 688, 4, 8, 8}},      {"1b", {2048, 5632, 22, 32, 4}},
        {"7b", {4096, 11008, 32, 32, 32}},  {"13b", {5120, 13824, 40, 40, 40}},
        {"65b", {8192, 22016, 80, 64, 64}},
    };
    auto it = shapes.find(shape);
    QLORA_CHECK(it != shapes.end(),
                "qlora-bench step: --shape expects tiny, 1b, 7b, 13b or 65b, found '", shape, "'");
    const auto& s = it->second;
    QLORA_CHECK(layers >= 0 && layers <= s[2], "qlora-bench step: --layers expects 0..", s[2],
                " for ", shape, ", found ", layers);
    return model::LlamaConfig::from_json({{"hidden_size", s[0]},
                                          {"intermediate_size", s[1]},
                                          {"num_hidden_layers", layers > 0 ? layers : s[2]},
                                          {"num_attention_heads", s[3]},
                                          {"num_key_value_heads", s[4]},
                                          {"vocab_size", 32000},
                                          {"max_position_embeddings", 4096}});
}

std::vector<std::string> bench_step(const StepBenchOptions& o, const c10::Device& device) {
    QLORA_CHECK(o.seq > 0 && o.micro_batch > 0 && o.iters > 0 && o.warmup >= 0,
                "qlora-bench step: --seq, --micro-batch and --iters must be positive");
    std::vector<std::string> lines;
    std::vector<nlohmann::ordered_json> cases;
    for (const auto& base : o.bases) {
        cases.push_back(run_case(o, base, device));
        lines.push_back(cases.back().dump());
    }
    if (cases.size() >= 2) {
        const auto& a = cases.front();
        const auto& b = cases.back();
        nlohmann::ordered_json s;
        s["bench"] = "step_summary";
        s["device"] = device.str();
        s["shape"] = o.shape;
        s["compare"] = a["base"].get<std::string>() + " vs " + b["base"].get<std::string>();
        s["speed_ratio"] = a["tokens_per_s"].get<double>() / b["tokens_per_s"].get<double>();
        s["peak_memory_ratio"] = static_cast<double>(a["peak_step_bytes"].get<int64_t>()) /
                                 static_cast<double>(b["peak_step_bytes"].get<int64_t>());
        s["weight_bytes_ratio"] = static_cast<double>(a["base_weight_bytes"].get<int64_t>()) /
                                  static_cast<double>(b["base_weight_bytes"].get<int64_t>());
        lines.push_back(s.dump());
    }
    return lines;
}

}  // namespace qlora::bench
