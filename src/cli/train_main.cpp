// qlora-train CONFIG.yaml [key=value ...] [--dry-run [--model-config FILE]] [--resume auto|DIR]
#include <CLI/CLI.hpp>
#include <cstdio>
#include <optional>
#include <vector>

#include "cli/run_tool.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/world_env.h"
#include "io/path_guard.h"
#include "train/config.h"
#include "train/dry_run.h"
#include "train/run_lock.h"
#include "train/trainer.h"

int main(int argc, char** argv) {
    CLI::App app{"qlora-train: QLoRA fine-tuning of Llama-family models from a YAML config"};
    app.set_version_flag("--version", QLORA_VERSION);
    std::string config_path;
    std::vector<std::string> overrides;
    bool dry_run = false;
    std::string model_config;
    std::string resume;
    app.add_option("config", config_path, "training config (YAML), e.g. configs/quickstart.yaml")
        ->required();
    app.add_option("overrides", overrides,
                   "key.sub=value overrides of config entries, e.g. optim.lr=1e-4");
    app.add_flag("--dry-run", dry_run,
                 "validate the config and data files, print the memory plan, train nothing");
    app.add_option(
        "--model-config", model_config,
        "with --dry-run: a config.json to plan with when the model is not downloaded yet");
    app.add_option("--resume", resume,
                   "auto (newest complete checkpoint in output.dir) or a checkpoint folder");
    return qlora::cli::run_tool("qlora-train", app, argc, argv, [&] {
        qlora::train::TrainConfig config = qlora::train::load_config(config_path, overrides);
        qlora::io::check_output_not_input({"output.dir", config.output.dir},
                                          {{"model.path", config.model.path},
                                           {"data.train", config.data.train},
                                           {"data.eval", config.data.eval.value_or("")}});
        if (dry_run) {
            std::fputs(qlora::train::dry_run_report(config, model_config).c_str(), stdout);
            return;
        }
        // Missing inputs are refused before the lock creates output.dir (nothing left behind).
        qlora::train::check_paths(config);
        // Before any work, held to the end. Under torchrun every rank runs this main, but rank 0
        // alone writes output.dir: it alone takes the lock (a second launch's rank 0 is refused).
        std::optional<qlora::train::RunLock> lock;
        const std::optional<qlora::dist::WorldEnv> world = qlora::dist::read_world_env();
        if (!world || world->rank == 0) lock.emplace(config.output.dir);
        qlora::train::install_interrupt_handler();
        qlora::train::Trainer trainer(config, resume);
        trainer.setup();
        qlora::train::TrainResult r = trainer.train();
        if (r.interrupted) {
            std::printf("interrupted at step %lld: checkpoint saved; continue with --resume auto\n",
                        static_cast<long long>(r.steps));
        } else {
            std::printf("done: %lld steps, final loss %.4f, adapter in %s\n",
                        static_cast<long long>(r.steps), r.losses.empty() ? 0.0 : r.losses.back(),
                        r.adapter_dir.c_str());
        }
    });
}
