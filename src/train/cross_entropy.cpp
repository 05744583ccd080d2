// The fused cross-entropy's autograd function: forward saves the logits as they are and each row's
// logsumexp (float32); backward writes the logits' gradient in the logits' dtype in one pass.
//   d/dx[r, j] of g · Σ_r (lse_r - x[r, label_r]) = g · (softmax(x[r])_j - [j == label_r]).
#include "train/cross_entropy.h"

#include <torch/torch.h>

#include "core/error.h"
#include "kernels/cross_entropy_cpu.h"

namespace qlora::train {

namespace {

kernels::LogitRows rows_of(const at::Tensor& logits, const at::Tensor& labels, int64_t ignore) {
    kernels::LogitRows x;
    x.data = logits.data_ptr();
    x.bf16 = logits.scalar_type() == at::kBFloat16;
    x.rows = logits.size(0);
    x.vocab = logits.size(1);
    x.ld = logits.stride(0);
    x.labels = labels.data_ptr<int64_t>();
    x.ignore_index = ignore;
    return x;
}

class FusedCrossEntropy : public torch::autograd::Function<FusedCrossEntropy> {
  public:
    // logits [N, V] float32/bf16 on the CPU, labels [N] int64 contiguous, already checked.
    static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& logits,
                              const at::Tensor& labels, int64_t ignore) {
        const auto f32 = at::TensorOptions().dtype(at::kFloat);
        at::Tensor loss = at::empty({logits.size(0)}, f32), lse = at::empty({logits.size(0)}, f32);
        kernels::cross_entropy_forward(rows_of(logits, labels, ignore), loss.data_ptr<float>(),
                                       lse.data_ptr<float>());
        ctx->save_for_backward({logits, labels, lse});
        ctx->saved_data["ignore"] = ignore;
        return loss.sum();
    }

    static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                   torch::autograd::variable_list grad_outputs) {
        const auto saved = ctx->get_saved_variables();
        const at::Tensor &logits = saved[0], &labels = saved[1], &lse = saved[2];
        const auto scale = grad_outputs[0].item<float>();
        at::Tensor dx = at::empty(logits.sizes(), logits.options());  // [N, V], contiguous
        kernels::cross_entropy_backward(rows_of(logits, labels, ctx->saved_data["ignore"].toInt()),
                                        lse.data_ptr<float>(), scale, dx.data_ptr(), dx.stride(0));
        return {dx, at::Tensor(), at::Tensor()};
    }
};

}  // namespace

bool fused_cross_entropy(const at::Tensor& logits) {
    return logits.is_cpu() && logits.dim() == 2 && logits.stride(1) == 1 &&
           (logits.scalar_type() == at::kFloat || logits.scalar_type() == at::kBFloat16);
}

at::Tensor summed_cross_entropy(const at::Tensor& logits, const at::Tensor& labels,
                                int64_t ignore_index) {
    QLORA_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
                "cross-entropy: expected logits [N, V] and labels [N], got ", logits.sizes(),
                " and ", labels.sizes());
    const at::Tensor counted = labels.ne(ignore_index);
    const at::Tensor outside = counted & (labels.lt(0) | labels.ge(logits.size(1)));
    if (outside.any().item<bool>()) {
        const int64_t bad = labels.masked_select(outside)[0].item<int64_t>();
        QLORA_CHECK(false, "cross-entropy: label ", bad, " is outside the vocabulary [0, ",
                    logits.size(1), ") and is not the ignore index ", ignore_index);
    }
    if (!fused_cross_entropy(logits)) {
        return at::cross_entropy_loss(logits.to(at::kFloat), labels, {}, at::Reduction::Sum,
                                      ignore_index);
    }
    return FusedCrossEntropy::apply(logits, labels.to(at::kLong).contiguous(), ignore_index);
}

}  // namespace qlora::train
