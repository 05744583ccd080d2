// stories260K (llama2.c's 260K-parameter model, HF layout) loaded for the LoRA model tests, and a
// fixed batch of its reference story tokens.
#pragma once

#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "lora/apply_lora.h"
#include "model/llama_loader.h"
#include "optim/optimizer_factory.h"
#include "support/test_support.h"

namespace qlora::lora::test {

inline model::Llama load_stories(bool nf4) {
    model::LoadOptions opts;
    opts.quant = nf4 ? "nf4" : "none";
    return model::load_llama(qlora::test::shared_data("stories260K/hf"), opts);
}

// [batch, len + 1] tokens of the first reference story (inputs = [:, :-1], labels = [:, 1:]);
// row b starts b·len/2 tokens in, so rows differ.
inline at::Tensor story_batch(int64_t batch, int64_t len) {
    std::ifstream in(
        qlora::test::shared_data("stories260K/reference/stories260K_reference_outputs.json"));
    auto ids = nlohmann::json::parse(in).at(0).at("token_ids").get<std::vector<int64_t>>();
    at::Tensor all = at::tensor(ids, at::kLong);
    std::vector<at::Tensor> rows;
    for (int64_t b = 0; b < batch; ++b) rows.push_back(all.narrow(0, b * len / 2, len + 1));
    return at::stack(rows);
}

// Mean next-token cross-entropy of the model on `batch` [B, T + 1].
inline at::Tensor lm_loss(model::Llama& model, const at::Tensor& batch) {
    const int64_t t = batch.size(1) - 1;
    at::Tensor logits = model->forward(batch.narrow(1, 0, t));  // [B, T, V]
    return at::cross_entropy_loss(logits.reshape({-1, logits.size(-1)}).to(at::kFloat),
                                  batch.narrow(1, 1, t).reshape({-1}));
}

// `steps` optimizer steps on the adapters of `model` over `batch`; the loss before each step.
inline std::vector<double> train_adapters(model::Llama& model, const at::Tensor& batch, int steps,
                                          double lr,
                                          const std::string& optimizer_name = "adamw_32bit",
                                          const optim::OptimOptions& options = {}) {
    std::vector<at::Tensor> params;
    for (auto& [name, t] : adapter_parameters(*model)) params.push_back(t);
    auto optimizer = optim::make_optimizer(optimizer_name, params, options);
    std::vector<double> losses;
    for (int step = 0; step < steps; ++step) {
        optimizer->zero_grad();
        at::Tensor loss = lm_loss(model, batch);
        loss.backward();
        optimizer->step(lr);
        losses.push_back(loss.item<double>());
    }
    return losses;
}

}  // namespace qlora::lora::test
