// Windowed cross-entropy over a token stream.
#include "model/evaluate.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.h"
#include "io/finite_check.h"

namespace qlora::model {

EvalResult evaluate_stream(Llama& model, const std::vector<int64_t>& stream, int64_t max_seq_len,
                           int64_t skip_target) {
    QLORA_CHECK(max_seq_len >= 1, "max sequence length must be >= 1, got ", max_seq_len);
    QLORA_CHECK(stream.size() >= 2, "evaluation needs at least two tokens, got ", stream.size());
    torch::NoGradGuard no_grad;
    const int64_t n = static_cast<int64_t>(stream.size());
    at::Tensor all = at::tensor(stream, at::kLong);
    double total = 0.0;
    int64_t count = 0;
    // Window w: inputs stream[s, s + L), targets stream[s + 1, s + L + 1); the next window starts
    // at the last target, so every token but the first is a target exactly once.
    for (int64_t s = 0; s + 1 < n; s += max_seq_len) {
        const int64_t len = std::min(max_seq_len, n - 1 - s);
        at::Tensor inputs = all.narrow(0, s, len).view({1, len});
        at::Tensor targets = all.narrow(0, s + 1, len).clone();
        if (skip_target >= 0) targets.masked_fill_(targets == skip_target, -100);
        at::Tensor logits = model->forward(inputs)[0].to(at::kFloat);  // [len, V]
        total += at::cross_entropy_loss(logits, targets.to(logits.device()), {}, at::Reduction::Sum,
                                        -100)
                     .item<double>();
        count += (targets != -100).sum().item<int64_t>();
    }
    QLORA_CHECK(count > 0, "no tokens to score (every target was skipped)");
    EvalResult r;
    r.tokens = count;
    r.loss = total / static_cast<double>(count);
    r.perplexity = std::exp(r.loss);
    // Never print {"loss": null}: a NaN comes from the weights (named) or from overflow.
    if (!std::isfinite(r.loss) || !std::isfinite(r.perplexity)) {
        const std::optional<std::string> bad = io::first_nonfinite_tensor(*model);
        QLORA_RUNTIME_CHECK(false, "eval loss is not finite (", r.loss, "): ",
                            bad ? "the model's tensor '" + *bad + "' holds NaN or Inf"
                                : std::string("the logits overflowed; try --dtype float32"));
    }
    return r;
}

}  // namespace qlora::model
