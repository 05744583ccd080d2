// The sampler on the CPU in float32, step for step as llama2.c's run.c (softmax, sample_mult,
// sample_topp with its (1 - p) / (V - 1) pre-filter), plus HF's repetition penalty and top-k.
#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "core/error.h"

namespace qlora::model {

Sampler::Sampler(const SamplingOptions& options)
    : options_(options), state_(options.seed != 0 ? options.seed : 0x9E3779B97F4A7C15ULL) {
    // Written so that NaN fails every check (a comparison with NaN is false).
    QLORA_CHECK(std::isfinite(options.temperature) && options.temperature >= 0.0,
                "temperature must be a finite number >= 0, got ", options.temperature);
    QLORA_CHECK(options.top_k >= 0, "top-k must be >= 0, got ", options.top_k);
    QLORA_CHECK(std::isfinite(options.top_p),
                "top-p must be a finite number (<= 0 or >= 1 disables it), got ", options.top_p);
    QLORA_CHECK(std::isfinite(options.repetition_penalty) && options.repetition_penalty > 0.0,
                "repetition penalty must be a finite number > 0, got ", options.repetition_penalty);
}

uint32_t Sampler::random_u32() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return static_cast<uint32_t>((state_ * 0x2545F4914F6CDD1DULL) >> 32);
}

float Sampler::random_f32() { return static_cast<float>(random_u32() >> 8) / 16777216.0f; }

namespace {

// NaN logits (a broken model) can be chosen by nothing: they become -inf.
void replace_nan(float* p, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(p[i])) p[i] = -std::numeric_limits<float>::infinity();
    }
}

// The first index holding the largest value; 0 when every value is -inf.
int64_t argmax(const float* p, int64_t n) { return std::max_element(p, p + n) - p; }

}  // namespace

int64_t Sampler::sample(const at::Tensor& logits, const std::vector<int64_t>& history) {
    at::Tensor l = logits.detach().to(at::kCPU, at::kFloat).contiguous().view(-1);
    const int64_t n = l.numel();
    QLORA_CHECK(n > 0, "sampler: empty logits (a model with vocab_size 0?)");
    const float* src = l.data_ptr<float>();
    probs_.assign(src, src + n);
    float* p = probs_.data();
    replace_nan(p, n);

    if (options_.repetition_penalty != 1.0) {
        // CTRL / transformers: a seen token's logit is divided by the penalty when positive,
        // multiplied when negative, so it always becomes less likely.
        const float penalty = static_cast<float>(options_.repetition_penalty);
        std::unordered_set<int64_t> seen(history.begin(), history.end());
        for (int64_t id : seen) {
            if (id >= 0 && id < n) p[id] = p[id] > 0.0f ? p[id] / penalty : p[id] * penalty;
        }
        replace_nan(p, n);  // 0 * inf, or a denormal penalty overflowing
    }
    if (options_.temperature == 0.0 || n == 1) return argmax(p, n);

    // A denormal temperature overflows every logit to +-inf; the +inf ones then share the mass.
    const float temperature = static_cast<float>(options_.temperature);
    if (!(temperature > 0.0f)) return argmax(p, n);  // a double too small for a float
    for (int64_t i = 0; i < n; ++i) p[i] /= temperature;
    replace_nan(p, n);
    if (options_.top_k > 0 && options_.top_k < n) {
        // Keep the k largest logits (ties at the k-th value are kept too).
        std::vector<float> sorted(p, p + n);
        std::nth_element(sorted.begin(), sorted.begin() + (options_.top_k - 1), sorted.end(),
                         std::greater<float>());
        const float kth = sorted[options_.top_k - 1];
        for (int64_t i = 0; i < n; ++i) {
            if (p[i] < kth) p[i] = -std::numeric_limits<float>::infinity();
        }
    }
    // softmax, as run.c: subtract the max, expf, normalise. The max term gives exp(0) = 1, so the
    // sum is >= 1; +inf logits (overflow) count as equal maxima.
    const float max = *std::max_element(p, p + n);
    if (max == -std::numeric_limits<float>::infinity()) return 0;  // nothing finite to choose from
    const bool infinite_max = std::isinf(max);
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) {
        p[i] = infinite_max ? (p[i] == max ? 1.0f : 0.0f) : std::exp(p[i] - max);
        sum += p[i];
    }
    for (int64_t i = 0; i < n; ++i) p[i] /= sum;

    const float coin = random_f32();
    const float top_p = static_cast<float>(options_.top_p);
    if (top_p <= 0.0f || top_p >= 1.0f) {
        float cdf = 0.0f;  // sample_mult
        for (int64_t i = 0; i < n; ++i) {
            cdf += p[i];
            if (coin < cdf) return i;
        }
        return n - 1;  // rounding, as run.c
    }
    // sample_topp: tokens below (1 - p) / (n - 1) cannot be in the nucleus, so skip sorting them.
    const float cutoff = (1.0f - top_p) / static_cast<float>(n - 1);
    order_.clear();
    for (int64_t i = 0; i < n; ++i) {
        if (p[i] >= cutoff) order_.emplace_back(p[i], static_cast<int32_t>(i));
    }
    // The largest probability is >= 1/n >= cutoff, so the list is never empty; if rounding ever
    // made it so, the most likely token is the nucleus.
    if (order_.empty()) return argmax(p, n);
    std::sort(order_.begin(), order_.end(), [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    });
    float cumulative = 0.0f;
    size_t last = order_.size() - 1;
    for (size_t i = 0; i < order_.size(); ++i) {
        cumulative += order_[i].first;
        if (cumulative > top_p) {
            last = i;
            break;
        }
    }
    const float r = coin * cumulative;
    float cdf = 0.0f;
    for (size_t i = 0; i <= last; ++i) {
        cdf += order_[i].first;
        if (r < cdf) return order_[i].second;
    }
    return order_[last].second;
}

}  // namespace qlora::model
