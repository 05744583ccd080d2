// Decode and prefill benchmarks: each base gets a fresh model (random init or the HF folder,
// quantized linear by linear), one warm-up run, then the median of `iters` timed runs.
#include "bench/bench_decode.h"

#include <ATen/Parallel.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <nlohmann/json.hpp>

#include "bench/bench_step.h"
#include "core/error.h"
#include "model/generate.h"
#include "model/llama_loader.h"

namespace qlora::bench {
namespace {

struct Built {
    model::Llama model{nullptr};
    int64_t weight_bytes = 0;
};

Built build_model(const InferenceBenchOptions& o, const std::string& base,
                  const c10::Device& device) {
    QLORA_CHECK(base == "nf4" || base == "fp4" || base == "fp32",
                "qlora-bench decode/prefill: --base expects nf4, fp4 or fp32, found '", base, "'");
    Built b;
    if (!o.model_dir.empty()) {
        b.model = model::load_llama(o.model_dir, model::LoadOptions{device, at::kFloat, "none"});
    } else {
        b.model = model::Llama(step_bench_config(o.shape, o.layers));
        b.model->init_random(0, at::kFloat, device);
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
    j["lm_head"] = base == "fp32" || !o.quantize_lm_head ? "fp32" : base;
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

nlohmann::ordered_json decode_case(const InferenceBenchOptions& o, const std::string& base,
                                   const c10::Device& d) {
    Built b = build_model(o, base, d);
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
    return j;
}

nlohmann::ordered_json prefill_case(const InferenceBenchOptions& o, const std::string& base,
                                    const c10::Device& d) {
    Built b = build_model(o, base, d);
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
