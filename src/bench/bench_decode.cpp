// Decode and prefill benchmarks: each base gets a fresh model (random init or the HF folder,
// quantized linear by linear), one warm-up run, then the median of `iters` timed runs.
#include "bench/bench_decode.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "bench/bench_step.h"
#include "core/device.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/llama_loader.h"
#include "quant/quant4_matmul.h"

namespace qlora::bench {
namespace {

struct Built {
    model::Llama model{nullptr};
    int64_t weight_bytes = 0;
};

// A base name: nf4 | fp4 | fp32, nf4-int8 | fp4-int8 (the 4-bit base with the opt-in
// int8-activation matmuls, quant/quant4_matmul.h), or nf4-bf16 | fp4-bf16 | bf16 (the model in
// bfloat16: activations, cache and dense weights; the bf16 tiled matmuls).
struct BaseSpec {
    std::string weights;  // nf4 | fp4 | fp32 (dense in the model's dtype)
    bool int8_activations = false;
    c10::ScalarType dtype = at::kFloat;
};

BaseSpec parse_base(const std::string& base) {
    static const std::map<std::string, BaseSpec> bases = {
        {"nf4", {"nf4", false, at::kFloat}},         {"fp4", {"fp4", false, at::kFloat}},
        {"fp32", {"fp32", false, at::kFloat}},       {"nf4-int8", {"nf4", true, at::kFloat}},
        {"fp4-int8", {"fp4", true, at::kFloat}},     {"nf4-bf16", {"nf4", false, at::kBFloat16}},
        {"fp4-bf16", {"fp4", false, at::kBFloat16}}, {"bf16", {"fp32", false, at::kBFloat16}}};
    const auto it = bases.find(base);
    QLORA_CHECK(it != bases.end(),
                "qlora-bench decode/prefill: --base expects nf4, fp4, fp32, nf4-int8, fp4-int8, "
                "nf4-bf16, fp4-bf16 or bf16, found '",
                base, "'");
    return it->second;
}

// Turns the int8-activation GEMV on for one case and back off after it.
struct Int8Scope {
    bool saved = quant::quant4_matmul_tuning().int8_activations;
    explicit Int8Scope(bool on) { quant::quant4_matmul_tuning().int8_activations = on; }
    ~Int8Scope() { quant::quant4_matmul_tuning().int8_activations = saved; }
    Int8Scope(const Int8Scope&) = delete;
    Int8Scope& operator=(const Int8Scope&) = delete;
};

Built build_model(const InferenceBenchOptions& o, const std::string& name,
                  const c10::Device& device) {
    const BaseSpec spec = parse_base(name);
    const std::string& base = spec.weights;
    Built b;
    if (!o.model_dir.empty()) {
        b.model = model::load_llama(o.model_dir, model::LoadOptions{device, spec.dtype, "none"});
    } else {
        b.model = model::Llama(step_bench_config(o.shape, o.layers));
        b.model->init_random(0, spec.dtype, device);
    }
    if (base != "fp32") {
        const quant::Quant4Options q{quant::parse_quant_type(base), o.blocksize, o.double_quant};
        b.model->quantize_linears(q);
        const bool tied = b.model->config().tie_word_embeddings;
        if (o.quantize_lm_head && !tied) b.model->lm_head->quantize(q);
    }
    b.weight_bytes = b.model->weight_nbytes();
    return b;
}

double median_seconds(const std::function<double()>& run, int iters) {
    run();  // warm-up: first-touch of buffers, thread pool start
    std::vector<double> s;
    for (int i = 0; i < iters; ++i) s.push_back(run());
    std::sort(s.begin(), s.end());
    return s[s.size() / 2];
}

nlohmann::ordered_json common(const InferenceBenchOptions& o, const std::string& bench,
                              const std::string& base, const Built& b, const c10::Device& device) {
    nlohmann::ordered_json j;
    j["bench"] = bench;
    j["device"] = device.str();
    j["model"] = o.model_dir.empty() ? "random " + o.shape : o.model_dir;
    j["layers"] = b.model->config().num_hidden_layers;
    j["base"] = base;
    const BaseSpec spec = parse_base(base);
    j["compute_dtype"] = dtype_name(spec.dtype);
    j["lm_head"] = spec.weights != "fp32" && o.quantize_lm_head
                       ? spec.weights
                       : (spec.dtype == at::kBFloat16 ? "bf16" : "fp32");
    j["int8_activations"] = spec.int8_activations && quant::quant4_matmul_tuning().int8_activations;
    j["threads"] = at::get_num_threads();
    j["weight_bytes"] = b.weight_bytes;
    return j;
}

// The profile: seconds of one pass over every projection (q/k/v/o/gate/up/down of every layer and
// lm_head) with a `rows`-row input, i.e. the matmul share of a forward of that many tokens; the
// rest of a token's time is attention, norms, RoPE, sampling and framework overhead.
double linears_seconds(Built& b, int64_t rows) {
    torch::NoGradGuard no_grad;
    std::vector<at::Tensor> inputs;
    auto linears = b.model->linears();
    for (auto& l : linears) inputs.push_back(at::randn({rows, l->in_features()}));
    return median_seconds(
        [&] {
            const auto t0 = std::chrono::steady_clock::now();
            for (size_t i = 0; i < linears.size(); ++i) (void)linears[i]->forward(inputs[i]);
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        },
        2);
}

std::vector<int64_t> random_prompt(int64_t length, int64_t vocab) {
    at::Tensor t = at::randint(0, vocab, {length}, at::kLong);
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + length);
}

// Logits of every position of ids fed one token at a time through the KV cache: the decode path
// (one-row GEMVs), [T, vocab] float32.
at::Tensor stepwise_logits(Built& b, const std::vector<int64_t>& ids, const c10::Device& d) {
    torch::NoGradGuard no_grad;
    const auto n = static_cast<int64_t>(ids.size());
    auto cache = model::KvCache::allocate(b.model->config(), 1, n,
                                          at::TensorOptions(b.model->dtype()).device(d));
    std::vector<at::Tensor> rows;
    for (int64_t t = 0; t < n; ++t) {
        const at::Tensor token = at::full({1, 1}, ids[static_cast<size_t>(t)], at::kLong).to(d);
        rows.push_back(b.model->lm_head(b.model->hidden_states(token, t, &cache)).view({-1}));
    }
    return at::stack(rows).to(at::kFloat).cpu();
}

// What the int8 activations cost in accuracy on this model: the decode-path logits of the prompt
// followed by `tokens` random ids, with int8 activations against the exact GEMV (same weights).
void add_int8_error(nlohmann::ordered_json& j, Built& b, const std::vector<int64_t>& prompt,
                    int64_t tokens, const c10::Device& d) {
    std::vector<int64_t> ids = prompt;
    for (int64_t id : random_prompt(tokens, b.model->config().vocab_size)) ids.push_back(id);
    const at::Tensor approx = stepwise_logits(b, ids, d);
    at::Tensor exact;
    {
        Int8Scope off(false);
        exact = stepwise_logits(b, ids, d);
    }
    const at::Tensor diff = (approx - exact).to(at::kDouble);
    j["int8_logits_rel_rms_error"] = diff.pow(2).mean().sqrt().item<double>() /
                                     exact.to(at::kDouble).pow(2).mean().sqrt().item<double>();
    j["int8_logits_max_abs_error"] = diff.abs().max().item<double>();
    j["int8_top1_agreement"] =
        approx.argmax(-1).eq(exact.argmax(-1)).to(at::kDouble).mean().item<double>();
}

nlohmann::ordered_json decode_case(const InferenceBenchOptions& o, const std::string& base,
                                   const c10::Device& d) {
    Built b = build_model(o, base, d);
    Int8Scope int8(parse_base(base).int8_activations);
    const auto prompt = random_prompt(8, b.model->config().vocab_size);
    model::GenerateOptions g;
    g.max_new_tokens = o.tokens + 1;  // the first new token belongs to the prefill
    const double secs = median_seconds(
        [&] {
            const model::GenerateResult r = model::generate(b.model, prompt, g);
            return r.decode_seconds / static_cast<double>(std::max<int64_t>(1, r.new_tokens - 1));
        },
        o.iters);
    nlohmann::ordered_json j = common(o, "decode", base, b, d);
    j["tokens"] = o.tokens;
    j["ms_per_token"] = secs * 1e3;
    j["tokens_per_s"] = 1.0 / secs;
    if (d.is_cpu()) j["linears_ms_per_token"] = linears_seconds(b, 1) * 1e3;
    if (parse_base(base).int8_activations) add_int8_error(j, b, prompt, o.tokens, d);
    return j;
}

nlohmann::ordered_json prefill_case(const InferenceBenchOptions& o, const std::string& base,
                                    const c10::Device& d) {
    Built b = build_model(o, base, d);
    Int8Scope int8(parse_base(base).int8_activations);  // only GEMV-sized inputs use it
    const auto prompt = random_prompt(o.prompt, b.model->config().vocab_size);
    const at::Tensor tokens = at::tensor(prompt, at::kLong).view({1, -1}).to(d);
    const double secs = median_seconds(
        [&] {
            torch::NoGradGuard no_grad;
            auto cache = model::KvCache::allocate(b.model->config(), 1, o.prompt,
                                                  at::TensorOptions(b.model->dtype()).device(d));
            const auto t0 = std::chrono::steady_clock::now();
            at::Tensor h = b.model->hidden_states(tokens, 0, &cache);  // [1, T, hidden]
            at::Tensor logits =
                b.model->lm_head(h.narrow(1, o.prompt - 1, 1));  // last position, as llama-bench
            if (d.is_cuda()) torch::cuda::synchronize(d.index());
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        },
        o.iters);
    nlohmann::ordered_json j = common(o, "prefill", base, b, d);
    j["prompt"] = o.prompt;
    j["seconds"] = secs;
    j["tokens_per_s"] = static_cast<double>(o.prompt) / secs;
    // lm_head runs on one row in the prefill; the profile pass runs it on all rows, so it is
    // reported separately.
    if (d.is_cpu()) j["linears_seconds_all_rows"] = linears_seconds(b, o.prompt);
    return j;
}

std::vector<std::string> run_all(const InferenceBenchOptions& o, const c10::Device& device,
                                 const char* bench,
                                 nlohmann::ordered_json (*one)(const InferenceBenchOptions&,
                                                               const std::string&,
                                                               const c10::Device&),
                                 const LineSink& emit) {
    QLORA_CHECK(o.prompt > 0 && o.tokens > 0 && o.iters > 0 && !o.bases.empty(), "qlora-bench ",
                bench, ": --prompt, --tokens and --iters must be positive and --base non-empty");
    if (o.threads > 0) at::set_num_threads(o.threads);
    std::vector<std::string> lines;
    std::vector<nlohmann::ordered_json> cases;
    for (const auto& base : o.bases) {
        cases.push_back(one(o, base, device));
        lines.push_back(cases.back().dump());
        if (emit) emit(lines.back());
    }
    if (cases.size() >= 2) {
        nlohmann::ordered_json s;
        s["bench"] = std::string(bench) + "_summary";
        s["compare"] = o.bases.front() + " vs " + o.bases.back();
        s["speed_ratio"] = cases.front()["tokens_per_s"].get<double>() /
                           cases.back()["tokens_per_s"].get<double>();
        s["weight_bytes_ratio"] =
            static_cast<double>(cases.front()["weight_bytes"].get<int64_t>()) /
            static_cast<double>(cases.back()["weight_bytes"].get<int64_t>());
        lines.push_back(s.dump());
        if (emit) emit(lines.back());
    }
    return lines;
}

}  // namespace

std::vector<std::string> bench_decode(const InferenceBenchOptions& o, const c10::Device& device,
                                      const LineSink& emit) {
    return run_all(o, device, "decode", decode_case, emit);
}

std::vector<std::string> bench_prefill(const InferenceBenchOptions& o, const c10::Device& device,
                                       const LineSink& emit) {
    return run_all(o, device, "prefill", prefill_case, emit);
}

}  // namespace qlora::bench
