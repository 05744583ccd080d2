// Benchmark (disabled by default): peak RSS of one QLoRA training step on a random 1B-shaped Llama
// (TinyLlama shapes, seq 256) with an NF4 base vs a dense fp32 base. Each case runs in its own
// process (peak RSS only grows), re-invoking this binary with QLORA_RSS_BASE set.
//   build-lora/tests/test_memory --gtest_also_run_disabled_tests --gtest_filter='*StepPeakRss*'
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>

#include "lora/activation_checkpointing.h"
#include "lora/apply_lora.h"
#include "memory/memory_plan.h"
#include "optim/optimizer_factory.h"
#include "support/test_support.h"

namespace qlora::memory {
namespace {

model::LlamaConfig one_b_config() {
    return model::LlamaConfig::from_json({{"hidden_size", 2048},
                                          {"intermediate_size", 5632},
                                          {"num_hidden_layers", 22},
                                          {"num_attention_heads", 32},
                                          {"num_key_value_heads", 4},
                                          {"vocab_size", 32000}});
}

// A /proc/self/status field in KiB: VmHWM (peak, as getrusage's ru_maxrss) or VmRSS (now).
int64_t status_kib(const std::string& field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
    }
    return -1;
}

// Linux: writing 5 to clear_refs resets VmHWM to the current RSS, so the step's own peak shows.
bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    out << "5";
    return static_cast<bool>(out.flush());
}

// Random weights, each linear quantized right after it is made (as the streaming loader does), so
// the dense model never exists at once in the NF4 case.
void init_weights(model::LlamaImpl& m, bool nf4) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
    const auto& c = m.config();
    m.set_embedding(at::randn({c.vocab_size, c.hidden_size}, gen));
    for (auto& l : m.linears()) {
        l->set_weight(at::randn({l->out_features(), l->in_features()}, gen) * 0.02);
        if (nf4 && l.get() != m.lm_head.get()) l->quantize(quant::Quant4Options{});
    }
}

// The child: one step, then the peak.
TEST(MemoryBench, DISABLED_OneStepChild) {
    const char* base = std::getenv("QLORA_RSS_BASE");
    if (base == nullptr) GTEST_SKIP() << "run by DISABLED_StepPeakRss with QLORA_RSS_BASE=nf4|fp32";
    const bool nf4 = std::string(base) == "nf4";
    const int64_t seq = 256;
    model::Llama m(one_b_config());
    init_weights(*m, nf4);
    lora::LoraOptions lopt;
    lopt.r = 16;
    lopt.alpha = 32.0;
    lora::apply_lora(*m, lopt);
    lora::set_gradient_checkpointing(*m, true);
    std::vector<at::Tensor> params;
    for (auto& [name, t] : lora::adapter_parameters(*m)) params.push_back(t);
    auto opt = optim::make_optimizer("adamw_32bit", params);
    const int64_t load_peak = status_kib("VmHWM");
    const bool reset = reset_peak_rss();
    const int64_t before_step = status_kib("VmRSS");
    at::Tensor tokens = at::randint(0, 32000, {1, seq + 1}, at::kLong);
    const auto t0 = std::chrono::steady_clock::now();
    at::Tensor logits = m->forward(tokens.narrow(1, 0, seq));
    at::Tensor loss =
        at::cross_entropy_loss(logits.view({seq, -1}), tokens.narrow(1, 1, seq).reshape({-1}));
    logits = at::Tensor();
    loss.backward();
    opt->step(1e-4);
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "RSS_RESULT base=%s weights_bytes=%lld load_peak_kib=%lld rss_before_step_kib=%lld "
        "step_peak_kib=%lld (reset %s) process_peak_ru_maxrss_kib=%ld step_s=%.1f loss=%.4f\n",
        base, static_cast<long long>(m->weight_nbytes()), static_cast<long long>(load_peak),
        static_cast<long long>(before_step), static_cast<long long>(status_kib("VmHWM")),
        reset ? "ok" : "failed", ru.ru_maxrss, secs, loss.item<double>());
}

TEST(MemoryBench, DISABLED_StepPeakRss) {
    char exe[4096] = {};
    ASSERT_GT(readlink("/proc/self/exe", exe, sizeof(exe) - 1), 0);
    for (const char* base : {"nf4", "fp32"}) {
        auto r = test::run_command(
            std::string("QLORA_RSS_BASE=") + base + " " + exe +
            " --gtest_also_run_disabled_tests --gtest_filter=MemoryBench.DISABLED_OneStepChild");
        const auto pos = r.output.find("RSS_RESULT");
        ASSERT_NE(pos, std::string::npos) << r.output;
        std::printf("%s\n", r.output.substr(pos, r.output.find('\n', pos) - pos).c_str());
    }
    PlanInputs in;
    in.model = one_b_config();
    in.lora.r = 16;
    in.weight_dtype = at::kFloat;
    in.optimizer = optim::OptimizerKind::kAdamw32bit;
    in.seq_len = 256;
    std::printf("plan, NF4 base:\n%s", plan_memory(in).describe().c_str());
    in.quantize = false;
    std::printf("plan, dense fp32 base:\n%s", plan_memory(in).describe().c_str());
}

}  // namespace
}  // namespace qlora::memory
