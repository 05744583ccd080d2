// Summed shifted cross-entropy, label counting and the forward of one batch.
#include "train/loss.h"

#include "train/cross_entropy.h"

namespace qlora::train {

at::Tensor summed_loss(const at::Tensor& logits, const at::Tensor& labels) {
    const int64_t vocab = logits.size(-1);
    at::Tensor shifted_logits = logits.slice(1, 0, -1).reshape({-1, vocab});
    at::Tensor shifted_labels = labels.slice(1, 1).reshape({-1});
    return summed_cross_entropy(shifted_logits, shifted_labels, -100);
}

int64_t shifted_label_count(const data::Batch& b) {
    return b.labels.slice(1, 1).ne(-100).sum().item<int64_t>();
}

void batch_to(data::Batch& b, const c10::Device& device) {
    b.tokens = b.tokens.to(device);
    b.labels = b.labels.to(device);
    if (b.attention_mask.defined()) b.attention_mask = b.attention_mask.to(device);
    if (b.position_ids.defined()) b.position_ids = b.position_ids.to(device);
}

at::Tensor batch_loss_sum(model::LlamaImpl& model, const data::Batch& b) {
    model::ForwardOptions fo;
    fo.attention_mask = b.attention_mask;
    fo.position_ids = b.position_ids;
    return summed_loss(model.forward(b.tokens, 0, nullptr, fo), b.labels);
}

}  // namespace qlora::train
