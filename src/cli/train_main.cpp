// qlora-train CONFIG.yaml [key=value ...] [--dry-run] [--resume auto|DIR]
// The training loop arrives with the trainer issue; until then this validates its arguments.
#include <CLI/CLI.hpp>

#include <vector>

#include "cli/run_tool.h"
#include "core/error.h"

int main(int argc, char** argv) {
    CLI::App app{"qlora-train: QLoRA fine-tuning of Llama-family models from a YAML config"};
    app.set_version_flag("--version", QLORA_VERSION);
    std::string config;
    std::vector<std::string> overrides;
    bool dry_run = false;
    std::string resume;
    app.add_option("config", config, "training config (YAML), e.g. configs/quickstart.yaml")
        ->required()
        ->check(CLI::ExistingFile);
    app.add_option("overrides", overrides, "key.sub=value overrides of config entries");
    app.add_flag("--dry-run", dry_run, "validate the config and print the memory plan only");
    app.add_option("--resume", resume, "auto (newest complete checkpoint) or a checkpoint folder");
    return qlora::cli::run_tool("qlora-train", app, argc, argv, [&] {
        QLORA_RUNTIME_CHECK(false, "training is not implemented in this build yet (config '",
                            config, "' was not run)");
    });
}
