// Eval loss over a loader and prompt samples.
#include "train/eval_loop.h"

#include <torch/torch.h>

#include "data/chat_format.h"
#include "data/templates.h"
#include "model/generate.h"
#include "tokenizer/tokenizer.h"
#include "train/loss.h"

namespace qlora::train {

EvalLoss evaluate_loader(model::LlamaImpl& model, data::DataLoader& loader, int64_t max_batches,
                         const c10::Device& device, dist::Replicas* replicas) {
    torch::NoGradGuard no_grad;
    model.eval();
    double sum = 0.0;
    EvalLoss r;
    const int64_t batches = loader.batches_in_epoch(0);
    const int64_t limit = max_batches > 0 ? std::min(batches, max_batches) : batches;
    // Under shard_base every rank runs whole rounds of world_size batches: a rank whose batch of
    // the last round does not exist still joins each layer's gather.
    const int64_t world = replicas != nullptr && replicas->lockstep() ? replicas->world_size() : 1;
    const int64_t rounds_end = (limit + world - 1) / world * world;
    for (int64_t i = 0; i < rounds_end; ++i) {
        if (replicas != nullptr && !replicas->owns_eval_batch(i)) continue;
        if (i >= limit) {
            model.visit_layer_weights();
            continue;
        }
        data::Batch b = loader.batch_at(0, i);
        batch_to(b, device);
        sum += batch_loss_sum(model, b).item<double>();
        r.tokens += shifted_label_count(b);
    }
    if (replicas != nullptr) {
        sum = replicas->sum(sum);
        r.tokens = replicas->sum(r.tokens);
    }
    r.loss = r.tokens > 0 ? sum / static_cast<double>(r.tokens) : 0.0;
    return r;
}

std::vector<PromptSample> sample_prompts(model::Llama& model, const tokenizer::Tokenizer& tok,
                                         const std::vector<std::string>& prompts,
                                         data::Template tmpl, int64_t max_new_tokens) {
    torch::NoGradGuard no_grad;
    std::vector<PromptSample> out;
    if (prompts.empty()) return out;
    const data::ResolvedTemplate resolved = data::resolve_template(tmpl, tok);
    for (const std::string& prompt : prompts) {
        model::GenerateOptions go;
        go.max_new_tokens = max_new_tokens;
        go.stop_ids = tok.eos_ids();  // the tokenizer's EOS and generation_config.json's
        const std::vector<int64_t> ids =
            resolved.chat
                ? tok.encode_with_offsets(data::render_model_prompt(prompt, *resolved.chat),
                                          /*add_special_tokens=*/false)
                      .ids
                : tok.encode(data::render_prompt(prompt, resolved.tmpl), /*add_bos=*/true);
        const model::GenerateResult g = model::generate(model, ids, go);
        const std::vector<int64_t> fresh(g.tokens.begin() + g.prompt_tokens, g.tokens.end());
        out.push_back({prompt, tok.decode(fresh)});
    }
    return out;
}

}  // namespace qlora::train
