// MetricsWriter: every line of metrics.jsonl and every console line of a run, from one place
// (step, eval, sample and event records), so the file and the terminal cannot disagree.
#pragma once

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "core/progress.h"

namespace qlora::train {

struct StepRecord {
    int64_t step = 0;
    int64_t total_steps = 0;
    double loss = 0;
    double lr = 0;
    double grad_norm = 0;
    int64_t tokens = 0;
    double seconds = 0;    // of this step
    double elapsed_s = 0;  // since the run (or the resume) started
    double peak_memory_mb = 0;
    std::optional<bool> qat;  // set when QAT is configured: whether it was on for this step
};

struct EvalRecord {
    int64_t step = 0;
    double loss = 0;
    int64_t tokens = 0;  // label tokens scored
};

class MetricsWriter {
  public:
    // Opens output_dir/metrics.jsonl, appending when resuming. `total_steps` sizes the progress
    // line. `enabled` false (every rank but 0 of a distributed run): nothing is written or printed.
    MetricsWriter(const std::string& output_dir, bool append, int64_t total_steps,
                  int64_t log_every, bool enabled = true);

    void step(const StepRecord& r);
    void eval(const EvalRecord& r);
    void sample(int64_t step, const std::string& prompt, const std::string& text);
    // A one-off event ({"step", "event", ...}) written as given.
    void event(const nlohmann::ordered_json& record);
    // Ends the progress line (a terminal shows one line with ETA instead of step lines).
    void finish();

  private:
    void write(const nlohmann::ordered_json& record);

    std::ofstream out_;
    std::string path_;
    Progress progress_;
    int64_t log_every_;
    bool enabled_;
};

}  // namespace qlora::train
