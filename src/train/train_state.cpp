// Saving, finding and loading training checkpoints.
#include "train/train_state.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <regex>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"

namespace fs = std::filesystem;

namespace qlora::train {
namespace {

const std::regex kStepDir(R"(step-([0-9]+))");

// Complete checkpoints, oldest first: (step, path).
std::vector<std::pair<int64_t, fs::path>> checkpoints(const std::string& output_dir) {
    std::vector<std::pair<int64_t, fs::path>> out;
    const fs::path root = fs::path(output_dir) / "checkpoints";
    if (!fs::is_directory(root)) return out;
    for (const auto& entry : fs::directory_iterator(root)) {
        std::smatch m;
        const std::string name = entry.path().filename().string();
        if (!entry.is_directory() || !std::regex_match(name, m, kStepDir)) continue;
        if (!fs::exists(entry.path() / "trainer_state.json")) continue;  // not ours / incomplete
        out.emplace_back(std::stoll(m[1].str()), entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

std::string save_checkpoint(const std::string& output_dir, const exporting::PeftAdapter& adapter,
                            const TrainState& state, int64_t keep) {
    const fs::path root = fs::path(output_dir) / "checkpoints";
    fs::create_directories(root);
    const std::string final_path = (root / ("step-" + std::to_string(state.step))).string();
    io::AtomicDir dir(final_path, /*overwrite=*/true);
    exporting::save_peft_adapter(dir.path(), adapter);

    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& [name, t] : state.optimizer) tensors.emplace_back("optimizer." + name, t);
    if (state.cpu_rng.defined()) tensors.emplace_back("rng.cpu", state.cpu_rng);
    if (state.cuda_rng.defined()) tensors.emplace_back("rng.cuda", state.cuda_rng);
    io::save_safetensors((fs::path(dir.path()) / "trainer_state.safetensors").string(), tensors);

    nlohmann::ordered_json j;
    j["step"] = state.step;
    j["epoch"] = state.cursor.epoch;
    j["batch_index"] = state.cursor.index;
    j["losses"] = state.losses;
    j["world_size"] = state.world_size;
    j["window_micro_batches"] = state.window_micro_batches;
    io::write_file_atomic((fs::path(dir.path()) / "trainer_state.json").string(), j.dump(1) + "\n");
    dir.commit();

    if (keep > 0) {
        auto all = checkpoints(output_dir);
        for (size_t i = 0; i + static_cast<size_t>(keep) < all.size(); ++i) {
            try {
                io::remove_tree(all[i].second.string());
            } catch (const std::exception& e) {
                log_warn("could not remove old checkpoint ", all[i].second.string(), ": ", e.what());
            }
        }
    }
    return final_path;
}

std::optional<std::string> latest_checkpoint(const std::string& output_dir) {
    auto all = checkpoints(output_dir);
    if (all.empty()) return std::nullopt;
    return all.back().second.string();
}

LoadedCheckpoint load_checkpoint(const std::string& dir) {
    LoadedCheckpoint out;
    const fs::path json_path = fs::path(dir) / "trainer_state.json";
    std::ifstream in(json_path);
    QLORA_CHECK(in.good(), json_path.string(), ": cannot open (not a complete qlora-train checkpoint)");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
        out.state.step = j.at("step").get<int64_t>();
        out.state.cursor.epoch = j.at("epoch").get<int64_t>();
        out.state.cursor.index = j.at("batch_index").get<int64_t>();
        out.state.losses = j.at("losses").get<std::vector<double>>();
        out.state.world_size = j.value("world_size", int64_t{1});
        out.state.window_micro_batches = j.value("window_micro_batches", int64_t{0});
    } catch (const nlohmann::json::exception& e) {
        QLORA_FAIL(json_path.string(), ": malformed trainer state (", e.what(), ")");
    }
    out.adapter = exporting::load_peft_adapter(dir);
    io::SafetensorsReader reader((fs::path(dir) / "trainer_state.safetensors").string());
    for (const std::string& name : reader.names()) {
        if (name.rfind("optimizer.", 0) == 0) {
            out.state.optimizer[name.substr(10)] = reader.load(name);
        } else if (name == "rng.cpu") {
            out.state.cpu_rng = reader.load(name);
        } else if (name == "rng.cuda") {
            out.state.cuda_rng = reader.load(name);
        }
    }
    return out;
}

}  // namespace qlora::train
