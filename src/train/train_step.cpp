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

WindowResult run_window(model::LlamaImpl& model, data::DataLoader& loader,
                        std::vector<at::Tensor>& params, optim::Optimizer& optimizer, double lr,
                        int64_t step, const WindowOptions& o) {
    WindowResult r;
    std::vector<data::Batch> window;
    if (o.replicas != nullptr) {
        window = o.replicas->next_window(loader);
    } else {
        for (int64_t i = 0; i < o.grad_accum; ++i) window.push_back(loader.next());
    }
    for (const data::Batch& b : window) {
        r.label_tokens += shifted_label_count(b);
        r.tokens += b.num_tokens;
    }
    if (o.replicas != nullptr) {
        r.label_tokens = o.replicas->sum(r.label_tokens);
        r.tokens = o.replicas->sum(r.tokens);
    }
    double loss_sum = 0.0;
    if (r.label_tokens > 0) {
        for (data::Batch& b : window) {
            batch_to(b, o.device);
            at::Tensor loss = batch_loss_sum(model, b);
            loss_sum += loss.item<double>();
            (loss / static_cast<double>(r.label_tokens)).backward();
        }
    }
    if (o.replicas != nullptr) {
        loss_sum = o.replicas->sum(loss_sum);
        o.replicas->sync_gradients(params);  // before clipping: every rank clips the same sum
    }
    if (r.label_tokens > 0) r.loss = loss_sum / static_cast<double>(r.label_tokens);
    const double clip =
        o.max_grad_norm > 0 ? o.max_grad_norm : std::numeric_limits<double>::infinity();
    r.grad_norm = optim::clip_grad_norm(params, clip);
    if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
        optimizer.zero_grad();
        QLORA_RUNTIME_CHECK(o.skip_nonfinite,
                            nonfinite_step_message(model, step, r.loss, r.grad_norm));
        log_warn("step ", step, ": non-finite loss or gradient, update skipped");
        return r;
    }
    optimizer.step(lr);
    optimizer.zero_grad();
    r.updated = true;
    return r;
}

}  // namespace qlora::train
