// Saving, finding and loading training checkpoints.
#include "train/train_state.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/json_value.h"
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
        if (m[1].length() > 18) continue;  // beyond int64: not a step we wrote
        out.emplace_back(std::stoll(m[1].str()), entry.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

// A skipped non-finite step records a NaN loss, which JSON writes as null.
std::vector<double> read_losses(const std::string& path, const nlohmann::json& j) {
    QLORA_CHECK(j.is_array(), path, ": malformed trainer state: 'losses' must be an array, found ",
                j.type_name());
    std::vector<double> out;
    out.reserve(j.size());
    for (const auto& x : j) {
        QLORA_CHECK(x.is_number() || x.is_null(), path,
                    ": malformed trainer state: 'losses' must hold numbers, found ", x.type_name());
        out.push_back(x.is_null() ? std::nan("") : x.get<double>());
    }
    return out;
}

void check_counters(const std::string& path, const TrainState& s) {
    QLORA_CHECK(s.step >= 0 && s.cursor.epoch >= 0 && s.cursor.index >= 0, path,
                ": malformed trainer state: step, epoch and batch_index must be >= 0, found step ",
                s.step, ", epoch ", s.cursor.epoch, ", batch_index ", s.cursor.index);
    QLORA_CHECK(static_cast<int64_t>(s.losses.size()) <= s.step, path,
                ": malformed trainer state: ", s.losses.size(), " losses for ", s.step, " steps");
}

// The byte size of torch's CPU generator state in this build (it depends on the LibTorch version).
int64_t cpu_rng_state_bytes() { return at::detail::getDefaultCPUGenerator().get_state().numel(); }

// An RNG state must be the uint8 vector torch's generator wrote (expected_bytes < 0: any length).
void check_rng_state(const std::string& path, const char* name, const at::Tensor& t,
                     int64_t expected_bytes) {
    if (!t.defined()) return;
    QLORA_CHECK(t.scalar_type() == at::kByte && t.dim() == 1 &&
                    (expected_bytes < 0 || t.numel() == expected_bytes),
                path, ": malformed trainer state: '", name, "' must be a uint8 vector of ",
                expected_bytes < 0 ? std::string("generator state bytes")
                                   : std::to_string(expected_bytes) + " bytes",
                ", found ", t.scalar_type(), " ", t.sizes());
}

}  // namespace

std::string save_checkpoint(const std::string& output_dir, const lora::PeftAdapter& adapter,
                            const lora::AdapterMetadata& metadata, const TrainState& state,
                            int64_t keep) {
    const fs::path root = fs::path(output_dir) / "checkpoints";
    fs::create_directories(root);
    const std::string final_path = (root / ("step-" + std::to_string(state.step))).string();
    io::AtomicDir dir(final_path, /*overwrite=*/true);
    lora::save_peft_adapter(dir.path(), adapter);
    lora::save_adapter_metadata(dir.path(), metadata);

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
                log_warn("could not remove old checkpoint ", all[i].second.string(), ": ",
                         e.what());
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
    QLORA_CHECK(in.good(), json_path.string(),
                ": cannot open (not a complete qlora-train checkpoint)");
    nlohmann::json j;
    try {
        j = nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
        QLORA_FAIL(json_path.string(), ": malformed trainer state (", e.what(), ")");
    }
    const std::string where = json_path.string() + ": malformed trainer state";
    out.state.step = json_field<int64_t>(j, "step", where);
    out.state.cursor.epoch = json_field<int64_t>(j, "epoch", where);
    out.state.cursor.index = json_field<int64_t>(j, "batch_index", where);
    QLORA_CHECK(j.is_object() && j.contains("losses"), where, ": \"losses\" is missing");
    out.state.losses = read_losses(json_path.string(), j.at("losses"));
    out.state.world_size = json_field_or<int64_t>(j, "world_size", 1, where);
    out.state.window_micro_batches = json_field_or<int64_t>(j, "window_micro_batches", 0, where);
    check_counters(json_path.string(), out.state);
    out.adapter = lora::load_peft_adapter(dir);
    const std::string tensors_path = (fs::path(dir) / "trainer_state.safetensors").string();
    io::SafetensorsReader reader(tensors_path);
    for (const std::string& name : reader.names()) {
        if (name.rfind("optimizer.", 0) == 0) {
            out.state.optimizer[name.substr(10)] = reader.load(name);
        } else if (name == "rng.cpu") {
            out.state.cpu_rng = reader.load(name);
        } else if (name == "rng.cuda") {
            out.state.cuda_rng = reader.load(name);
        }
    }
    check_rng_state(tensors_path, "rng.cpu", out.state.cpu_rng, cpu_rng_state_bytes());
    check_rng_state(tensors_path, "rng.cuda", out.state.cuda_rng, -1);
    return out;
}

}  // namespace qlora::train
