// evaluate_samples and evaluate_run: the trainer's eval, outside the trainer.
#include "train/eval_protocol.h"

#include <filesystem>

#include "core/device.h"
#include "core/error.h"
#include "export/attach_adapter.h"
#include "lora/apply_lora.h"
#include "model/llama_loader.h"
#include "tokenizer/tokenizer.h"
#include "train/config.h"
#include "train/recipe.h"

namespace fs = std::filesystem;

namespace qlora::train {
namespace {

// The trainer's eval loader: its options without shuffling or length grouping.
data::DataLoader eval_loader(std::vector<data::Sample> samples, data::LoaderOptions options) {
    options.shuffle = false;
    options.group_by_length = false;
    return data::DataLoader(std::move(samples), options);
}

}  // namespace

EvalLoss evaluate_samples(model::LlamaImpl& model, const tokenizer::Tokenizer& tok,
                          const std::string& file, SampleEvalOptions options,
                          const c10::Device& device) {
    data::Dataset set = data::load_dataset(file, tok, options.dataset);
    QLORA_CHECK(!set.samples.empty(), file, ": no samples left to score after tokenization");
    data::DataLoader loader = eval_loader(std::move(set.samples), options.loader);
    return evaluate_loader(model, loader, options.max_batches, device);
}

RunEval evaluate_run(const std::string& run_dir, const std::string& device) {
    const std::string config_path = (fs::path(run_dir) / "config.resolved.yaml").string();
    QLORA_CHECK(fs::exists(config_path), run_dir,
                ": no config.resolved.yaml (expected a qlora-train run folder)");
    TrainConfig c = load_config(config_path);
    if (!device.empty()) c.hardware.device = device;
    RunEval out;
    out.adapter_dir = (fs::path(run_dir) / "adapter").string();
    QLORA_CHECK(fs::exists(fs::path(out.adapter_dir) / "adapter_config.json"), run_dir,
                ": no final adapter in adapter/ (did the run finish?)");
    QLORA_CHECK(c.data.eval || c.data.eval_split, config_path,
                ": the run has no eval data (data.eval or data.eval_split)");
    const Recipe recipe = make_recipe(c, resolve_device(c.hardware.device));
    tokenizer::Tokenizer tok(c.model.path);
    data::DataSplits splits = load_splits(c, tok);
    out.samples = static_cast<int64_t>(splits.eval.size());
    data::DataLoader loader = eval_loader(std::move(splits.eval), loader_options(c, tok));

    model::Llama model = model::load_llama(c.model.path, recipe.load);
    exporting::attach_peft_adapter(*model, out.adapter_dir);
    if (recipe.qat) {
        lora::apply_qat(*model, *recipe.qat);
        lora::set_qat_active(*model,
                             true);  // validation keeps qat.start_step below the run's steps
    }
    out.loss = evaluate_loader(*model, loader, c.eval.max_batches, recipe.device);
    return out;
}

}  // namespace qlora::train
