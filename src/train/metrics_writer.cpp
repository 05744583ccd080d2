// metrics.jsonl lines and console lines.
#include "train/metrics_writer.h"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/error.h"

namespace qlora::train {

MetricsWriter::MetricsWriter(const std::string& output_dir, bool append, int64_t total_steps,
                             int64_t log_every, bool enabled)
    : path_((std::filesystem::path(output_dir) / "metrics.jsonl").string()),
      progress_("train", total_steps, "step", enabled ? -1 : 0),
      log_every_(log_every),
      enabled_(enabled) {
    if (!enabled_) return;
    out_.open(path_, append ? std::ios::app : std::ios::trunc);
    QLORA_RUNTIME_CHECK(out_.good(), "cannot write ", path_);
}

void MetricsWriter::write(const nlohmann::ordered_json& record) {
    if (!enabled_) return;
    out_ << record.dump() << '\n' << std::flush;
    QLORA_RUNTIME_CHECK(out_.good(), "cannot write ", path_, " (disk full?)");
}

void MetricsWriter::step(const StepRecord& r) {
    const double tok_s = r.seconds > 0 ? static_cast<double>(r.tokens) / r.seconds : 0.0;
    nlohmann::ordered_json m;
    m["step"] = r.step;
    m["loss"] = r.loss;
    m["lr"] = r.lr;
    m["grad_norm"] = r.grad_norm;
    m["tokens"] = r.tokens;
    m["tokens_per_s"] = tok_s;
    m["peak_memory_mb"] = r.peak_memory_mb;
    m["elapsed_s"] = r.elapsed_s;
    if (r.qat) m["qat"] = *r.qat;
    write(m);
    char extra[160];
    std::snprintf(extra, sizeof(extra), "loss=%.4f lr=%.2e grad_norm=%.3f tok/s=%.0f mem=%.0fMiB",
                  r.loss, r.lr, r.grad_norm, tok_s, r.peak_memory_mb);
    progress_.update(r.step, extra);
    if (enabled_ && !progress_.enabled() && (r.step % log_every_ == 0 || r.step == r.total_steps)) {
        std::printf("step=%lld/%lld %s\n", static_cast<long long>(r.step),
                    static_cast<long long>(r.total_steps), extra);
        std::fflush(stdout);
    }
}

void MetricsWriter::eval(const EvalRecord& r) {
    nlohmann::ordered_json e;
    e["step"] = r.step;
    e["eval_loss"] = r.loss;
    e["eval_perplexity"] = std::exp(r.loss);
    e["eval_tokens"] = r.tokens;
    write(e);
    if (!enabled_) return;
    std::printf("eval step=%lld eval_loss=%.4f eval_perplexity=%.3f\n",
                static_cast<long long>(r.step), r.loss, std::exp(r.loss));
    std::fflush(stdout);
}

void MetricsWriter::sample(int64_t step, const std::string& prompt, const std::string& text) {
    nlohmann::ordered_json s;
    s["step"] = step;
    s["prompt"] = prompt;
    s["sample"] = text;
    write(s);
    if (!enabled_) return;
    std::printf("sample step=%lld prompt=%s\n  -> %s\n", static_cast<long long>(step),
                nlohmann::json(prompt).dump().c_str(), text.c_str());
    std::fflush(stdout);
}

void MetricsWriter::event(const nlohmann::ordered_json& record) { write(record); }

void MetricsWriter::finish() { progress_.finish(); }

}  // namespace qlora::train
