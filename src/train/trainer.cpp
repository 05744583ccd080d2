// The training loop: setup builds every component from the recipe; train() runs accumulation
// windows (train_step.h), evals (eval_loop.h) and checkpoints, writing every record through one
// MetricsWriter, and resumes exactly from a checkpoint.
#include "train/trainer.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/Generator.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/peak_memory.h"
#include "dist/replicas.h"
#include "io/atomic_file.h"
#include "lora/activation_checkpointing.h"
#include "lora/apply_lora.h"
#include "lora/peft_adapter.h"
#include "model/llama_loader.h"
#include "model/vocab_check.h"
#include "tokenizer/tokenizer.h"
#include "train/eval_loop.h"
#include "train/jsonl_repair.h"
#include "train/metrics_writer.h"
#include "train/qat_options.h"
#include "train/recipe.h"
#include "train/resume_checks.h"
#include "train/train_state.h"
#include "train/train_step.h"

#ifdef QLORA_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#endif

namespace fs = std::filesystem;

namespace qlora::train {
namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted.store(true); }

}  // namespace

void install_interrupt_handler() { std::signal(SIGINT, on_sigint); }

struct Trainer::State {
    TrainConfig config;
    std::string resume;
    Recipe recipe;
    std::optional<std::string> resume_from;  // the checkpoint to continue, decided before writing
    std::unique_ptr<tokenizer::Tokenizer> tok;
    std::unique_ptr<data::DataLoader> loader;
    std::unique_ptr<data::DataLoader> eval_loader;
    model::Llama model{nullptr};
    std::vector<at::Tensor> params;
    std::unique_ptr<optim::Optimizer> optimizer;
    std::unique_ptr<optim::LrSchedule> schedule;
    int64_t total_steps = 0;
    TrainState state;
    std::unique_ptr<MetricsWriter> metrics;  // writes on rank 0 only
    bool qat_on = false;                     // fake quantization switched on (from qat.start_step)
    // Data parallelism under torchrun; a single process otherwise (then every call is a no-op).
    std::unique_ptr<dist::Replicas> replicas;

    void choose_resume();
    void build_data();
    void build_model();
    void build_optimizer();
    void restore_checkpoint();
    void open_outputs();
    lora::PeftAdapter adapter_snapshot();
    void snapshot_state();
    void save_adapter(const std::string& dir);
    void evaluate();
    void save_checkpoint_now();
    WindowOptions window_options() const;
    void record_step(const WindowResult& w, double lr, double step_s, double elapsed_s,
                     double peak_mib);
    bool after_step();  // evaluation and checkpoints due at this step; true: interrupted, stop
    std::string save_final_adapter();
};

void Trainer::State::choose_resume() {
    const std::string& out = config.output.dir;
    if (resume == "auto") {
        resume_from = latest_checkpoint(out);
    } else if (!resume.empty()) {
        resume_from = resume;
    } else {
        QLORA_CHECK(!latest_checkpoint(out), "output.dir ", out,
                    " already holds checkpoints; pass --resume auto to continue that run, or "
                    "choose another "
                    "output.dir");
    }
}

void Trainer::State::build_data() {
    const TrainConfig& c = config;
    tok = std::make_unique<tokenizer::Tokenizer>(c.model.path);
    data::DataSplits splits = load_splits(c, *tok);
    QLORA_CHECK(!splits.train.samples.empty(), c.data.train,
                ": no training samples left after tokenization");
    const data::LoaderOptions lo = loader_options(c, *tok);
    loader = std::make_unique<data::DataLoader>(std::move(splits.train.samples), lo);
    if (!splits.eval.empty()) {
        data::LoaderOptions eo = lo;
        eo.shuffle = false;
        eo.group_by_length = false;
        eval_loader = std::make_unique<data::DataLoader>(std::move(splits.eval), eo);
    }
    const int64_t per_epoch = replicas->steps_per_epoch(loader->batches_in_epoch(0));
    total_steps = c.train.max_steps ? *c.train.max_steps : c.train.epochs.value_or(1) * per_epoch;
}

void Trainer::State::build_model() {
    model::LoadOptions load = recipe.load;
    // shard_base: the whole base never reaches the device. It is quantized in host memory, and
    // only this rank's slices and the replicated rest move there.
    if (replicas->lockstep()) load.device = c10::kCPU;
    model = model::load_llama(config.model.path, load);
    model::check_vocab_fits(tok->vocab_size(), config.model.path, model->config(),
                            config.model.path);
    lora::apply_lora(*model, recipe.lora);
    lora::set_gradient_checkpointing(*model, config.train.gradient_checkpointing,
                                     config.train.offload_activations);
    if (recipe.qat) {
        lora::apply_qat(*model, *recipe.qat);
        log_info("QAT: ", describe_qat(config));
    }
    replicas->shard_base(*model);
    if (load.device != recipe.device) model->to_device(recipe.device);
    for (auto& [name, t] : lora::adapter_parameters(*model)) params.push_back(t);
    replicas->init_parameters(params);  // rank 0's LoRA init on every rank
}

void Trainer::State::build_optimizer() {
    optimizer =
        optim::make_optimizer(optim::optimizer_kind_name(recipe.optimizer), params, recipe.optim);
    schedule = std::make_unique<optim::LrSchedule>(schedule_options(config, total_steps));
}

void Trainer::State::restore_checkpoint() {
    const std::string& from = *resume_from;
    LoadedCheckpoint ck = load_checkpoint(from);
    auto live = lora::adapter_parameters(*model);
    QLORA_CHECK(ck.adapter.tensors.size() == live.size(), from, ": holds ",
                ck.adapter.tensors.size(), " adapter tensors, the configured model has ",
                live.size(), " (was the config changed?)");
    at::NoGradGuard no_grad;
    for (auto& [name, t] : live) {
        auto it = ck.adapter.tensors.find(name);
        QLORA_CHECK(it != ck.adapter.tensors.end(), from, ": adapter lacks '", name, "'");
        QLORA_CHECK(it->second.sizes() == t.sizes(), from, ": '", name, "' has shape ",
                    it->second.sizes(), ", the model expects ", t.sizes());
        t.copy_(it->second);
    }
    const int64_t window = config.train.grad_accum * replicas->world_size();
    QLORA_CHECK(ck.state.window_micro_batches == 0 || ck.state.window_micro_batches == window, from,
                ": was trained on ", ck.state.world_size, " rank(s) with ",
                ck.state.window_micro_batches, " micro-batches per step; this run has ",
                replicas->world_size(), " x grad_accum ", config.train.grad_accum, " = ", window,
                ", so its data shards cannot continue exactly; set "
                "train.grad_accum so that world size x grad_accum = ",
                ck.state.window_micro_batches);
    restore_optimizer_state(*optimizer, ck.state.optimizer, from);
    state = ck.state;
    loader->restore(state.cursor);
    if (state.cpu_rng.defined()) {
        at::Generator gen = at::detail::getDefaultCPUGenerator();
        gen.set_state(state.cpu_rng);
    }
#ifdef QLORA_WITH_CUDA
    if (state.cuda_rng.defined() && recipe.device.is_cuda()) {
        at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(recipe.device.index());
        gen.set_state(state.cuda_rng);
    }
#endif
    log_info("resumed from ", from, " at step ", state.step);
}

void Trainer::State::open_outputs() {
    const std::string& out = config.output.dir;
    replicas->on_main(
        [&] {
            fs::create_directories(out);
            save_resolved_config(config, (fs::path(out) / "config.resolved.yaml").string());
            if (resume_from)
                drop_partial_last_line(
                    (fs::path(out) / "metrics.jsonl").string());  // killed mid-line
        },
        "the output folder");
    metrics = std::make_unique<MetricsWriter>(out, resume_from.has_value(), total_steps,
                                              config.train.log_every, replicas->is_main());
}

lora::PeftAdapter Trainer::State::adapter_snapshot() {
    lora::PeftAdapter a;
    a.config = peft_config(config);
    for (auto& [name, t] : lora::adapter_parameters(*model))
        a.tensors[name] = t.detach().cpu().clone();
    return a;
}

void Trainer::State::snapshot_state() {
    state.cursor = loader->state();
    state.world_size = replicas->world_size();
    state.window_micro_batches = config.train.grad_accum * replicas->world_size();
    state.optimizer = optimizer->state_dict();
    state.cpu_rng = at::detail::getDefaultCPUGenerator().get_state();
#ifdef QLORA_WITH_CUDA
    if (recipe.device.is_cuda()) {
        state.cuda_rng =
            at::cuda::detail::getDefaultCUDAGenerator(recipe.device.index()).get_state();
    }
#endif
}

void Trainer::State::save_adapter(const std::string& dir) {
    lora::save_peft_adapter(dir, adapter_snapshot());
    lora::save_adapter_metadata(dir, adapter_metadata(config, recipe.dtype));
}

void Trainer::State::evaluate() {
    const EvalLoss e = evaluate_loader(*model, *eval_loader, config.eval.max_batches, recipe.device,
                                       replicas.get());
    // Rank 0 writes the samples; under shard_base every rank generates them too, since each
    // decoding step gathers every layer (greedy, so all ranks stop at the same token).
    const std::vector<std::string> prompts = replicas->is_main() || replicas->lockstep()
                                                 ? config.eval.prompts
                                                 : std::vector<std::string>{};
    for (const PromptSample& s : sample_prompts(model, *tok, prompts, config.data.template_name,
                                                config.eval.max_new_tokens)) {
        metrics->sample(state.step, s.prompt, s.text);
    }
    model->train();
    metrics->eval({state.step, e.loss, e.tokens});
}

void Trainer::State::save_checkpoint_now() {
    snapshot_state();
    replicas->on_main(
        [&] {
            const std::string path =
                save_checkpoint(config.output.dir, adapter_snapshot(),
                                adapter_metadata(config, recipe.dtype), state, config.output.keep);
            log_info("saved checkpoint ", path);
        },
        "a checkpoint");
}

Trainer::Trainer(TrainConfig config, std::string resume) : s_(std::make_unique<State>()) {
    s_->config = std::move(config);
    s_->resume = std::move(resume);
}

Trainer::~Trainer() = default;

void Trainer::setup() {
    State& s = *s_;
    const TrainConfig& c = s.config;
    check_paths(c);
    dist::WorldOptions world_options;
    world_options.timeout =
        std::chrono::milliseconds(static_cast<int64_t>(c.hardware.dist_timeout_s * 1000));
    s.replicas = std::make_unique<dist::Replicas>(
        resolve_device(c.hardware.device), c.train.grad_accum, c.hardware.parallel, world_options);
    s.recipe = make_recipe(c, s.replicas->device());
    at::manual_seed(c.train.seed);
    s.choose_resume();
    s.build_data();
    s.build_model();
    s.build_optimizer();
    if (s.resume_from) s.restore_checkpoint();
    s.open_outputs();

    int64_t trainable = 0;
    for (const auto& p : s.params) trainable += p.numel();
    log_info("model ", c.model.path, ": ", s.model->weight_nbytes() / (1024 * 1024),
             " MiB of weights (", c.quant.enabled ? quant::quant_type_name(c.quant.type) : "dense",
             "), ", trainable, " trainable LoRA parameters in ", s.params.size(), " tensors; ",
             s.total_steps, " steps on ", s.recipe.device.str(), " in ",
             dtype_name(s.recipe.dtype));
}

WindowOptions Trainer::State::window_options() const {
    WindowOptions wo;
    wo.grad_accum = config.train.grad_accum;
    wo.max_grad_norm = config.optim.max_grad_norm;
    wo.skip_nonfinite = config.train.skip_nonfinite;
    wo.device = recipe.device;
    wo.replicas = replicas.get();
    return wo;
}

void Trainer::State::record_step(const WindowResult& w, double lr, double step_s, double elapsed_s,
                                 double peak_mib) {
    state.losses.push_back(w.loss);
    StepRecord r{state.step, total_steps, w.loss,    lr,       w.grad_norm,
                 w.tokens,   step_s,      elapsed_s, peak_mib, std::nullopt};
    if (config.qat.enabled) r.qat = qat_on;
    metrics->step(r);
}

bool Trainer::State::after_step() {
    const TrainConfig& c = config;
    const bool last = state.step == total_steps;
    if (eval_loader && ((c.eval.every > 0 && state.step % c.eval.every == 0) || last)) evaluate();
    // Every rank stops at the same step, whichever of them saw the signal.
    const bool interrupted = replicas->any(g_interrupted.load());
    if ((c.output.save_every > 0 && state.step % c.output.save_every == 0 && !last) ||
        interrupted) {
        save_checkpoint_now();
    }
    return interrupted && !last;
}

std::string Trainer::State::save_final_adapter() {
    const std::string adapter_dir = (fs::path(config.output.dir) / "adapter").string();
    replicas->on_main(
        [&] {
            io::AtomicDir dir(adapter_dir, /*overwrite=*/true);
            save_adapter(dir.path());
            dir.commit();
            log_info("final adapter: ", adapter_dir);
        },
        "the final adapter");
    return adapter_dir;
}

TrainResult Trainer::train() {
    State& s = *s_;
    const TrainConfig& c = s.config;
    s.model->train();
    const PeakMemory peak(s.recipe.device);
    const WindowOptions wo = s.window_options();
    using clock = std::chrono::steady_clock;
    const auto t_start = clock::now();
    // Step 0 of a fresh run: the base model (B = 0), the "before" of every fine-tune.
    if (s.eval_loader && c.eval.on_start && s.state.step == 0) s.evaluate();
    while (s.state.step < s.total_steps) {
        s.qat_on = switch_qat(*s.model, c, s.state.step, s.qat_on, *s.metrics);
        const auto t0 = clock::now();
        const double lr = s.schedule->lr(s.state.step);
        const WindowResult w =
            run_window(*s.model, *s.loader, s.params, *s.optimizer, lr, s.state.step + 1, wo);
        s.state.step += 1;
        const auto now = clock::now();
        s.record_step(w, lr, std::chrono::duration<double>(now - t0).count(),
                      std::chrono::duration<double>(now - t_start).count(), peak.peak_mib());
        if (s.after_step()) {
            s.metrics->finish();
            log_info("interrupted: checkpoint saved at step ", s.state.step,
                     "; continue with --resume auto");
            return {s.state.step, s.state.losses, "", true};
        }
    }
    s.metrics->finish();
    const std::string adapter_dir = s.save_final_adapter();
    return {s.state.step, s.state.losses, adapter_dir, false};
}

}  // namespace qlora::train
