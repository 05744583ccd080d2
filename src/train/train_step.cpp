// The accumulation window: read every micro-batch first (the loss divides by all their label
// tokens), then forward + backward each, clip and update.
#include "train/train_step.h"

#include <cmath>
#include <limits>

#include "core/error.h"
#include "core/log.h"
#include "optim/grad_clip.h"
#include "train/loss.h"
#include "train/nonfinite_report.h"

namespace qlora::train {

WindowResult run_window(model::LlamaImpl& model, data::DataLoader& loader, std::vector<at::Tensor>& params,
                        optim::Optimizer& optimizer, double lr, int64_t step, const WindowOptions& o) {
    WindowResult r;
    std::vector<data::Batch> window;
    window.reserve(static_cast<size_t>(o.grad_accum));
    for (int64_t i = 0; i < o.grad_accum; ++i) {
        window.push_back(loader.next());
        r.label_tokens += shifted_label_count(window.back());
        r.tokens += window.back().num_tokens;
    }
    double loss_sum = 0.0;
    if (r.label_tokens > 0) {
        for (data::Batch& b : window) {
            batch_to(b, o.device);
            at::Tensor loss = batch_loss_sum(model, b);
            loss_sum += loss.item<double>();
            (loss / static_cast<double>(r.label_tokens)).backward();
        }
        r.loss = loss_sum / static_cast<double>(r.label_tokens);
    }
    const double clip = o.max_grad_norm > 0 ? o.max_grad_norm : std::numeric_limits<double>::infinity();
    r.grad_norm = optim::clip_grad_norm(params, clip);
    if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
        optimizer.zero_grad();
        QLORA_RUNTIME_CHECK(o.skip_nonfinite, nonfinite_step_message(model, step, r.loss, r.grad_norm));
        log_warn("step ", step, ": non-finite loss or gradient, update skipped");
        return r;
    }
    optimizer.step(lr);
    optimizer.zero_grad();
    r.updated = true;
    return r;
}

}  // namespace qlora::train
