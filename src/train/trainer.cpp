// The training loop: gradient accumulation with the loss normalised by the label tokens of the
// whole window, clipping, schedule, metrics, eval, checkpoints and exact resume.
#include "train/trainer.h"

#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/progress.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "data/templates.h"
#include "dist/replicas.h"
#include "export/peft_adapter.h"
#include "io/atomic_file.h"
#include "lora/apply_lora.h"
#include "lora/checkpoint.h"
#include "model/generate.h"
#include "model/llama_loader.h"
#include "optim/grad_clip.h"
#include "optim/lr_schedule.h"
#include "optim/optimizer_factory.h"
#include "tokenizer/sentencepiece_tokenizer.h"
#include "train/qat_options.h"
#include "train/train_state.h"

#ifdef QLORA_WITH_CUDA
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

namespace fs = std::filesystem;

namespace qlora::train {
namespace {

std::atomic<bool> g_interrupted{false};

void on_sigint(int) { g_interrupted.store(true); }

// Sum of token cross-entropies where labels != -100, predicting token t+1 from position t.
// logits [B, T, V]; labels [B, T] (unshifted) -> scalar float32.
at::Tensor summed_loss(const at::Tensor& logits, const at::Tensor& labels) {
    const int64_t vocab = logits.size(-1);
    at::Tensor shifted_logits = logits.slice(1, 0, -1).reshape({-1, vocab}).to(at::kFloat);
    at::Tensor shifted_labels = labels.slice(1, 1).reshape({-1});
    return at::cross_entropy_loss(shifted_logits, shifted_labels, {}, at::Reduction::Sum, -100);
}

int64_t shifted_label_count(const data::Batch& b) {
    return b.labels.slice(1, 1).ne(-100).sum().item<int64_t>();
}

double peak_memory_mb(const c10::Device& device) {
#ifdef QLORA_WITH_CUDA
    if (device.is_cuda()) {
        auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index());
        return static_cast<double>(
                   stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak) /
               (1024.0 * 1024.0);
    }
#endif
    (void)device;
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace

void install_interrupt_handler() { std::signal(SIGINT, on_sigint); }

struct Trainer::State {
    TrainConfig config;
    std::string resume;
    c10::Device device{c10::kCPU};
    c10::ScalarType dtype = at::kFloat;
    std::unique_ptr<tokenizer::Tokenizer> tok;
    std::unique_ptr<data::DataLoader> loader;
    std::unique_ptr<data::DataLoader> eval_loader;
    model::Llama model{nullptr};
    std::vector<at::Tensor> params;
    std::unique_ptr<optim::Optimizer> optimizer;
    std::unique_ptr<optim::LrSchedule> schedule;
    int64_t total_steps = 0;
    TrainState state;
    std::ofstream metrics;  // opened on rank 0 only: writes elsewhere go nowhere
    std::string output_dir;
    bool qat_on = false;  // fake quantization switched on (from qat.start_step)
    // Data parallelism under torchrun; a single process otherwise (then every call is a no-op).
    std::unique_ptr<dist::Replicas> replicas;
};

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
    world_options.timeout = std::chrono::milliseconds(static_cast<int64_t>(c.hardware.dist_timeout_s * 1000));
    s.replicas = std::make_unique<dist::Replicas>(resolve_device(c.hardware.device), c.train.grad_accum,
                                                  c.hardware.parallel, world_options);
    s.device = s.replicas->device();
    s.dtype = c.model.dtype == "auto" ? default_compute_dtype(s.device) : parse_dtype(c.model.dtype);
    s.output_dir = c.output.dir;
    at::manual_seed(c.train.seed);

    // Resume target, decided before anything is written.
    std::optional<std::string> resume_from;
    if (s.resume == "auto") {
        resume_from = latest_checkpoint(s.output_dir);
    } else if (!s.resume.empty()) {
        resume_from = s.resume;
    } else {
        QLORA_CHECK(!latest_checkpoint(s.output_dir), "output.dir ", s.output_dir,
                    " already holds checkpoints; pass --resume auto to continue that run, or choose another "
                    "output.dir");
    }

    s.tok = std::make_unique<tokenizer::Tokenizer>(c.model.path);
    data::DataSplits splits = data::load_splits(c.data, c.train.seed, *s.tok);
    QLORA_CHECK(!splits.train.samples.empty(), c.data.train, ": no training samples left after tokenization");
    data::LoaderOptions lo = data::loader_options(c, *s.tok);
    s.loader = std::make_unique<data::DataLoader>(std::move(splits.train.samples), lo);
    if (!splits.eval.empty()) {
        data::LoaderOptions eo = lo;
        eo.shuffle = false;
        eo.group_by_length = false;
        s.eval_loader = std::make_unique<data::DataLoader>(std::move(splits.eval), eo);
    }
    const int64_t per_epoch = s.replicas->steps_per_epoch(s.loader->batches_in_epoch(0));
    s.total_steps = c.train.max_steps ? *c.train.max_steps : c.train.epochs.value_or(1) * per_epoch;

    model::LoadOptions load;
    load.device = s.device;
    load.dtype = s.dtype;
    load.quant = c.quant.enabled ? c.quant.type : "none";
    load.blocksize = c.quant.blocksize;
    load.double_quant = c.quant.double_quant;
    s.model = model::load_llama(c.model.path, load);

    lora::LoraOptions lopt;
    lopt.r = c.lora.r;
    lopt.alpha = c.lora.alpha;
    lopt.dropout = c.lora.dropout;
    lopt.use_rslora = c.lora.use_rslora;
    lopt.targets = c.lora.targets;
    lopt.init_seed = c.train.seed;
    lora::apply_lora(*s.model, lopt);
    lora::set_gradient_checkpointing(*s.model, c.train.gradient_checkpointing);
    if (c.qat.enabled) {
        lora::apply_qat(*s.model, qat_options(c));
        log_info("QAT: ", describe_qat(c));
    }
    for (auto& [name, t] : lora::adapter_parameters(*s.model)) s.params.push_back(t);
    s.replicas->init_parameters(s.params);

    optim::OptimOptions oo;
    oo.beta1 = c.optim.betas.at(0);
    oo.beta2 = c.optim.betas.at(1);
    oo.eps = c.optim.eps;
    oo.weight_decay = c.optim.weight_decay;
    s.optimizer = optim::make_optimizer(c.optim.name, s.params, oo);

    optim::LrScheduleOptions so;
    so.kind = optim::parse_schedule_kind(c.optim.schedule);
    so.base_lr = c.optim.lr;
    so.total_steps = s.total_steps;
    if (c.optim.warmup_steps) {
        so.warmup_steps = *c.optim.warmup_steps;
    } else if (c.optim.warmup_ratio) {
        so.warmup_ratio = *c.optim.warmup_ratio;
    }
    s.schedule = std::make_unique<optim::LrSchedule>(so);

    if (resume_from) {
        LoadedCheckpoint ck = load_checkpoint(*resume_from);
        auto live = lora::adapter_parameters(*s.model);
        QLORA_CHECK(ck.adapter.tensors.size() == live.size(), *resume_from, ": holds ", ck.adapter.tensors.size(),
                    " adapter tensors, the configured model has ", live.size(), " (was the config changed?)");
        at::NoGradGuard no_grad;
        for (auto& [name, t] : live) {
            auto it = ck.adapter.tensors.find(name);
            QLORA_CHECK(it != ck.adapter.tensors.end(), *resume_from, ": adapter lacks '", name, "'");
            QLORA_CHECK(it->second.sizes() == t.sizes(), *resume_from, ": '", name, "' has shape ",
                        it->second.sizes(), ", the model expects ", t.sizes());
            t.copy_(it->second);
        }
        const int64_t window = c.train.grad_accum * s.replicas->world_size();
        QLORA_CHECK(ck.state.window_micro_batches == 0 || ck.state.window_micro_batches == window, *resume_from,
                    ": was trained on ", ck.state.world_size, " rank(s) with ", ck.state.window_micro_batches,
                    " micro-batches per step; this run has ", s.replicas->world_size(), " x grad_accum ",
                    c.train.grad_accum, " = ", window, ", so its data shards cannot continue exactly; set "
                    "train.grad_accum so that world size x grad_accum = ", ck.state.window_micro_batches);
        s.optimizer->load_state_dict(ck.state.optimizer);
        s.state = ck.state;
        s.loader->restore(s.state.cursor);
        if (s.state.cpu_rng.defined()) {
            at::Generator gen = at::detail::getDefaultCPUGenerator();
            gen.set_state(s.state.cpu_rng);
        }
#ifdef QLORA_WITH_CUDA
        if (s.state.cuda_rng.defined() && s.device.is_cuda()) {
            at::Generator gen = at::cuda::detail::getDefaultCUDAGenerator(s.device.index());
            gen.set_state(s.state.cuda_rng);
        }
#endif
        log_info("resumed from ", *resume_from, " at step ", s.state.step);
    }

    s.replicas->on_main(
        [&] {
            fs::create_directories(s.output_dir);
            save_resolved_config(c, (fs::path(s.output_dir) / "config.resolved.yaml").string());
            s.metrics.open(fs::path(s.output_dir) / "metrics.jsonl", resume_from ? std::ios::app : std::ios::trunc);
            QLORA_RUNTIME_CHECK(s.metrics.good(), "cannot write ", s.output_dir, "/metrics.jsonl");
        },
        "the output folder");

    int64_t trainable = 0;
    for (const auto& p : s.params) trainable += p.numel();
    log_info("model ", c.model.path, ": ", s.model->weight_nbytes() / (1024 * 1024), " MiB of weights (",
             c.quant.enabled ? c.quant.type : "dense", "), ", trainable, " trainable LoRA parameters in ",
             s.params.size(), " tensors; ", s.total_steps, " steps on ", s.device.str(), " in ",
             dtype_name(s.dtype));
}

TrainResult Trainer::train() {
    State& s = *s_;
    const TrainConfig& c = s.config;
    TrainResult result;
    s.model->train();

    auto adapter_snapshot = [&] {
        exporting::PeftAdapter a;
        a.config.r = c.lora.r;
        a.config.lora_alpha = c.lora.alpha;
        a.config.lora_dropout = c.lora.dropout;
        a.config.use_rslora = c.lora.use_rslora;
        a.config.target_modules = resolved_lora_targets(c.lora);
        a.config.base_model_name_or_path = c.model.path;
        for (auto& [name, t] : lora::adapter_parameters(*s.model)) a.tensors[name] = t.detach().cpu().clone();
        return a;
    };
    auto snapshot_state = [&] {
        s.state.cursor = s.loader->state();
        s.state.world_size = s.replicas->world_size();
        s.state.window_micro_batches = c.train.grad_accum * s.replicas->world_size();
        s.state.optimizer = s.optimizer->state_dict();
        s.state.cpu_rng = at::detail::getDefaultCPUGenerator().get_state();
#ifdef QLORA_WITH_CUDA
        if (s.device.is_cuda()) s.state.cuda_rng = at::cuda::detail::getDefaultCUDAGenerator(s.device.index()).get_state();
#endif
    };
    auto to_device = [&](data::Batch& b) {
        b.tokens = b.tokens.to(s.device);
        b.labels = b.labels.to(s.device);
        if (b.attention_mask.defined()) b.attention_mask = b.attention_mask.to(s.device);
        if (b.position_ids.defined()) b.position_ids = b.position_ids.to(s.device);
    };

    Progress progress("train", s.total_steps, "step", s.replicas->is_main() ? -1 : 0);
    auto t_start = std::chrono::steady_clock::now();
    while (s.state.step < s.total_steps) {
        s.qat_on = switch_qat(*s.model, c, s.state.step, s.qat_on, s.metrics);
        auto t0 = std::chrono::steady_clock::now();
        // The window's micro-batches first: the loss divides by all their label tokens.
        // Under data parallelism this rank's share of the global window; the counts are global.
        std::vector<data::Batch> window = s.replicas->next_window(*s.loader);
        int64_t window_labels = 0, window_tokens = 0;
        for (const data::Batch& b : window) {
            window_labels += shifted_label_count(b);
            window_tokens += b.num_tokens;
        }
        window_labels = s.replicas->sum(window_labels);
        window_tokens = s.replicas->sum(window_tokens);
        double loss_sum = 0.0;
        if (window_labels > 0) {
            for (data::Batch& b : window) {
                to_device(b);
                model::ForwardOptions fo;
                fo.attention_mask = b.attention_mask;
                fo.position_ids = b.position_ids;
                at::Tensor logits = s.model->forward(b.tokens, 0, nullptr, fo);
                at::Tensor loss = summed_loss(logits, b.labels);
                loss_sum += loss.item<double>();
                (loss / static_cast<double>(window_labels)).backward();
            }
        }
        loss_sum = s.replicas->sum(loss_sum);
        s.replicas->sync_gradients(s.params);  // before clipping: every rank clips the same sum
        const double loss = window_labels > 0 ? loss_sum / static_cast<double>(window_labels) : 0.0;
        const double grad_norm = optim::clip_grad_norm(
            s.params, c.optim.max_grad_norm > 0 ? c.optim.max_grad_norm : std::numeric_limits<double>::infinity());
        const double lr = s.schedule->lr(s.state.step);
        if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
            s.optimizer->zero_grad();
            QLORA_RUNTIME_CHECK(c.train.skip_nonfinite, "non-finite ", std::isfinite(loss) ? "gradient norm" : "loss",
                                " at step ", s.state.step + 1, " (loss ", loss, ", grad_norm ", grad_norm,
                                "); stopping without saving. Lower optim.lr, or set train.skip_nonfinite: true");
            log_warn("step ", s.state.step + 1, ": non-finite loss or gradient, update skipped");
        } else {
            s.optimizer->step(lr);
            s.optimizer->zero_grad();
        }
        s.state.step += 1;
        s.state.losses.push_back(loss);

        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        nlohmann::ordered_json m;
        m["step"] = s.state.step;
        m["loss"] = loss;
        m["lr"] = lr;
        m["grad_norm"] = grad_norm;
        m["tokens"] = window_tokens;
        m["tokens_per_s"] = static_cast<double>(window_tokens) / dt;
        m["peak_memory_mb"] = peak_memory_mb(s.device);
        m["elapsed_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
        if (c.qat.enabled) m["qat"] = s.qat_on;
        s.metrics << m.dump() << '\n' << std::flush;
        char extra[160];
        std::snprintf(extra, sizeof(extra), "loss=%.4f lr=%.2e grad_norm=%.3f tok/s=%.0f mem=%.0fMiB", loss, lr,
                      grad_norm, static_cast<double>(window_tokens) / dt, peak_memory_mb(s.device));
        progress.update(s.state.step, extra);
        if (s.replicas->is_main() && !progress.enabled() &&
            (s.state.step % c.train.log_every == 0 || s.state.step == s.total_steps)) {
            std::printf("step=%lld/%lld %s\n", static_cast<long long>(s.state.step),
                        static_cast<long long>(s.total_steps), extra);
            std::fflush(stdout);
        }

        const bool last = s.state.step == s.total_steps;
        if (s.eval_loader && ((c.eval.every > 0 && s.state.step % c.eval.every == 0) || last)) {
            torch::NoGradGuard no_grad;
            s.model->eval();
            double sum = 0.0;
            int64_t count = 0;
            const int64_t batches = s.eval_loader->batches_in_epoch(0);
            const int64_t limit = c.eval.max_batches > 0 ? std::min(batches, c.eval.max_batches) : batches;
            for (int64_t i = 0; i < limit; ++i) {
                if (!s.replicas->owns_eval_batch(i)) continue;  // dealt round-robin over ranks
                data::Batch b = s.eval_loader->batch_at(0, i);
                to_device(b);
                model::ForwardOptions fo;
                fo.attention_mask = b.attention_mask;
                fo.position_ids = b.position_ids;
                sum += summed_loss(s.model->forward(b.tokens, 0, nullptr, fo), b.labels).item<double>();
                count += shifted_label_count(b);
            }
            sum = s.replicas->sum(sum);
            count = s.replicas->sum(count);
            // Sample generations: greedy, from each configured prompt in the training template.
            for (const std::string& prompt : s.replicas->is_main() ? c.eval.prompts : std::vector<std::string>{}) {
                model::GenerateOptions go;
                go.max_new_tokens = c.eval.max_new_tokens;
                go.stop_ids = {s.tok->eos_id()};
                std::vector<int64_t> ids = s.tok->encode(
                    data::render_prompt(prompt, data::parse_template(c.data.template_name)), /*add_bos=*/true);
                model::GenerateResult g = model::generate(s.model, ids, go);
                std::vector<int64_t> fresh(g.tokens.begin() + g.prompt_tokens, g.tokens.end());
                nlohmann::ordered_json sample;
                sample["step"] = s.state.step;
                sample["prompt"] = prompt;
                sample["sample"] = s.tok->decode(fresh);
                s.metrics << sample.dump() << '\n' << std::flush;
                std::printf("sample step=%lld prompt=%s\n  -> %s\n", static_cast<long long>(s.state.step),
                            nlohmann::json(prompt).dump().c_str(), s.tok->decode(fresh).c_str());
            }
            s.model->train();
            const double eval_loss = count > 0 ? sum / static_cast<double>(count) : 0.0;
            nlohmann::ordered_json e;
            e["step"] = s.state.step;
            e["eval_loss"] = eval_loss;
            e["eval_perplexity"] = std::exp(eval_loss);
            e["eval_tokens"] = count;
            s.metrics << e.dump() << '\n' << std::flush;
            if (s.replicas->is_main()) {
                std::printf("eval step=%lld eval_loss=%.4f eval_perplexity=%.3f\n",
                            static_cast<long long>(s.state.step), eval_loss, std::exp(eval_loss));
            }
            std::fflush(stdout);
        }

        // Every rank stops at the same step, whichever of them saw the signal.
        const bool interrupted = s.replicas->any(g_interrupted.load());
        if ((c.output.save_every > 0 && s.state.step % c.output.save_every == 0 && !last) || interrupted) {
            snapshot_state();
            s.replicas->on_main(
                [&] {
                    std::string path = save_checkpoint(s.output_dir, adapter_snapshot(), s.state, c.output.keep);
                    log_info("saved checkpoint ", path);
                },
                "a checkpoint");
        }
        if (interrupted && !last) {
            progress.finish();
            log_info("interrupted: checkpoint saved at step ", s.state.step, "; continue with --resume auto");
            result.steps = s.state.step;
            result.losses = s.state.losses;
            result.interrupted = true;
            return result;
        }
    }
    progress.finish();

    const std::string adapter_dir = (fs::path(s.output_dir) / "adapter").string();
    s.replicas->on_main(
        [&] {
            io::AtomicDir dir(adapter_dir, /*overwrite=*/true);
            exporting::save_peft_adapter(dir.path(), adapter_snapshot());
            dir.commit();
            log_info("final adapter: ", adapter_dir);
        },
        "the final adapter");
    result.steps = s.state.step;
    result.losses = s.state.losses;
    result.adapter_dir = adapter_dir;
    return result;
}

}  // namespace qlora::train
