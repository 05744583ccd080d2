// The generation loop and the streaming detokeniser.
#include "model/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/limits.h"
#include "core/log.h"

namespace qlora::model {
namespace {

// K and V of every layer for `len` positions, sized and checked before anything is allocated:
// the documented bound on --max-new-tokens first, then the memory it takes.
KvCache allocate_kv_cache(const Llama& model, int64_t len, int64_t max_new_tokens) {
    const LlamaConfig& c = model->config();
    const uint64_t per_position = limits::saturating_mul(
        limits::saturating_mul(2 * static_cast<uint64_t>(c.num_hidden_layers),
                               static_cast<uint64_t>(c.kv_dim())),
        at::elementSize(model->dtype()));
    const uint64_t bytes = limits::saturating_mul(per_position, static_cast<uint64_t>(len));
    const std::string what = "the KV cache for " + std::to_string(len) +
                             " positions (prompt + --max-new-tokens " +
                             std::to_string(max_new_tokens) + ")";
    if (model->device().is_cpu()) limits::check_host_memory(bytes, what);
    try {
        return KvCache::allocate(c, 1, len,
                                 at::TensorOptions(model->dtype()).device(model->device()));
    } catch (const c10::Error&) {
        QLORA_RUNTIME_CHECK(false, what, " (", bytes / (1024 * 1024),
                            " MiB) cannot be allocated on ", model->device().str(),
                            "; lower --max-new-tokens");
    }
    return {};
}

}  // namespace

double GenerateResult::decode_tokens_per_second() const {
    return decode_seconds > 0.0 ? static_cast<double>(new_tokens - 1) / decode_seconds : 0.0;
}

GenerateResult generate(Llama& model, const std::vector<int64_t>& prompt,
                        const GenerateOptions& options,
                        const std::function<void(int64_t)>& on_token) {
    QLORA_CHECK(!prompt.empty(), "generation needs at least one prompt token (e.g. BOS)");
    QLORA_CHECK(options.max_new_tokens >= 0 && options.max_new_tokens <= limits::kMaxNewTokens,
                "--max-new-tokens must lie in [0, ", limits::kMaxNewTokens, "], got ",
                options.max_new_tokens);
    Sampler sampler(options.sampling);  // bad sampling parameters fail before any allocation
    using clock = std::chrono::steady_clock;
    torch::NoGradGuard no_grad;
    GenerateResult result;
    result.tokens = prompt;
    result.prompt_tokens = static_cast<int64_t>(prompt.size());
    if (options.max_new_tokens == 0) return result;

    // The last generated token is never fed back, hence the - 1.
    const int64_t capacity = result.prompt_tokens + options.max_new_tokens - 1;
    if (capacity > model->config().max_position_embeddings) {
        log_warn_once("generate-beyond-context",
                      "generating up to position " + std::to_string(capacity) +
                          ", beyond max_position_embeddings " +
                          std::to_string(model->config().max_position_embeddings));
    }
    KvCache cache = allocate_kv_cache(model, std::max<int64_t>(capacity, result.prompt_tokens),
                                      options.max_new_tokens);
    auto t0 = clock::now();
    // logits of the last position only: [V]
    at::Tensor logits =
        model->forward(at::tensor(prompt, at::kLong).view({1, -1}), 0, &cache)[0][-1];
    auto t1 = clock::now();
    int64_t pos = result.prompt_tokens;
    for (int64_t step = 0; step < options.max_new_tokens; ++step) {
        const int64_t next = sampler.sample(logits, result.tokens);
        result.tokens.push_back(next);
        ++result.new_tokens;
        if (step == 0) {
            t1 = clock::now();
            result.prefill_seconds = std::chrono::duration<double>(t1 - t0).count();
        }
        if (on_token) on_token(next);
        if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) !=
            options.stop_ids.end()) {
            result.stopped_at_eos = true;
            break;
        }
        if (step + 1 == options.max_new_tokens) break;
        logits = model->forward(at::tensor({next}, at::kLong).view({1, 1}), pos, &cache)[0][-1];
        ++pos;
    }
    result.decode_seconds = std::chrono::duration<double>(clock::now() - t1).count();
    return result;
}

std::string TextStreamer::push(const std::vector<int64_t>& ids) {
    ids_.insert(ids_.end(), ids.begin(), ids.end());
    std::string text = tokenizer_.decode(ids_);
    // Hold back while the text ends in U+FFFD: a byte-fallback character is still incomplete.
    static const std::string kReplacement = "\xEF\xBF\xBD";
    if (text.size() >= kReplacement.size() &&
        text.compare(text.size() - kReplacement.size(), kReplacement.size(), kReplacement) == 0) {
        return {};
    }
    if (text.size() <= emitted_) return {};
    std::string fresh = text.substr(emitted_);
    emitted_ = text.size();
    return fresh;
}

std::string TextStreamer::finish() {
    std::string text = tokenizer_.decode(ids_);
    std::string rest = text.size() > emitted_ ? text.substr(emitted_) : std::string();
    emitted_ = text.size();
    return rest;
}

}  // namespace qlora::model
