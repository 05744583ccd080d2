// TrainConfig -> component options, each key read in exactly one place.
#include "train/recipe.h"

#include "core/device.h"
#include "tokenizer/tokenizer.h"
#include "train/qat_options.h"

namespace qlora::train {

Recipe make_recipe(const TrainConfig& c, const c10::Device& device) {
    Recipe r;
    r.device = device;
    r.dtype = resolve_dtype(c.model.dtype, device);

    r.load.device = device;
    r.load.dtype = r.dtype;
    r.load.quant = c.quant.enabled ? quant::quant_type_name(c.quant.type) : "none";
    r.load.blocksize = c.quant.blocksize;
    r.load.double_quant = c.quant.double_quant;

    r.lora.r = c.lora.r;
    r.lora.alpha = c.lora.alpha;
    r.lora.dropout = c.lora.dropout;
    r.lora.use_rslora = c.lora.use_rslora;
    r.lora.targets = c.lora.targets;
    r.lora.init_seed = c.train.seed;
    if (c.qat.enabled) r.qat = qat_options(c);

    r.optimizer = c.optim.name;
    r.optim.beta1 = c.optim.betas.at(0);
    r.optim.beta2 = c.optim.betas.at(1);
    r.optim.eps = c.optim.eps;
    r.optim.weight_decay = c.optim.weight_decay;

    r.dataset.format = c.data.format;
    r.dataset.tmpl = c.data.template_name;
    r.dataset.tokenize.train_on_inputs = c.data.train_on_inputs;
    r.dataset.tokenize.max_seq_len = c.data.max_seq_len;
    r.dataset.skip_bad = c.data.on_bad_record == data::OnBadRecord::kSkip;
    return r;
}

optim::LrScheduleOptions schedule_options(const TrainConfig& c, int64_t total_steps) {
    optim::LrScheduleOptions so;
    so.kind = c.optim.schedule;
    so.base_lr = c.optim.lr;
    so.total_steps = total_steps;
    if (c.optim.warmup_steps) {
        so.warmup_steps = *c.optim.warmup_steps;
    } else if (c.optim.warmup_ratio) {
        so.warmup_ratio = *c.optim.warmup_ratio;
    }
    return so;
}

data::LoaderOptions loader_options(const TrainConfig& c, const tokenizer::Tokenizer& tok) {
    data::LoaderOptions o;
    o.micro_batch = c.train.micro_batch;
    o.max_seq_len = c.data.max_seq_len;
    o.packing = c.data.packing;
    o.group_by_length = c.data.group_by_length;
    o.shuffle = c.data.shuffle;
    o.seed = c.train.seed;
    o.pad_id = tok.pad_id() >= 0 ? tok.pad_id() : tok.eos_id();
    return o;
}

data::DataSplits load_splits(const TrainConfig& c, const tokenizer::Tokenizer& tok) {
    data::SplitSources sources;
    sources.train = c.data.train;
    sources.eval = c.data.eval;
    sources.eval_split = c.data.eval_split;
    return data::load_splits(sources, make_recipe(c, c10::kCPU).dataset, c.train.seed, tok);
}

memory::PlanInputs plan_inputs(const TrainConfig& c, const model::LlamaConfig& model,
                               const c10::Device& device) {
    const Recipe r = make_recipe(c, device);
    memory::PlanInputs in;
    in.model = model;
    in.lora = r.lora;
    in.quantize = c.quant.enabled;
    in.quant.type = c.quant.type;
    in.quant.blocksize = c.quant.blocksize;
    in.quant.double_quant = c.quant.double_quant;
    in.weight_dtype = r.dtype;
    in.optimizer = r.optimizer;
    in.optim_options = r.optim;
    in.micro_batch = c.train.micro_batch;
    in.seq_len = c.data.max_seq_len;
    in.checkpointing = c.train.gradient_checkpointing;
    in.offload_activations = c.train.offload_activations;
    in.qat = c.qat.enabled;
    in.qat_merge_aware = c.qat.mode == lora::QatMode::kMergeAware;
    in.qat_activations_int8 = c.qat.activations == lora::QatActivations::kInt8;
    return in;
}

lora::AdapterMetadata adapter_metadata(const TrainConfig& c, c10::ScalarType compute_dtype) {
    lora::AdapterMetadata m;
    m.base_quantized = c.quant.enabled;
    m.quant.type = c.quant.type;
    m.quant.blocksize = c.quant.blocksize;
    m.quant.double_quant = c.quant.double_quant;
    m.compute_dtype = compute_dtype;
    if (c.qat.enabled) m.qat = qat_options(c);
    return m;
}

lora::PeftLoraConfig peft_config(const TrainConfig& c) {
    lora::PeftLoraConfig p;
    p.r = c.lora.r;
    p.lora_alpha = c.lora.alpha;
    p.lora_dropout = c.lora.dropout;
    p.use_rslora = c.lora.use_rslora;
    p.target_modules = resolved_lora_targets(c.lora);
    p.base_model_name_or_path = c.model.path;
    return p;
}

}  // namespace qlora::train
