// Helpers of the robustness suite (robustness_support.h).
#include "robustness/robustness_support.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/safetensors.h"
#include "lora/peft_adapter.h"

namespace fs = std::filesystem;

namespace qlora::test {

std::string copy_stories_model(const std::string& scratch, const std::string& name) {
    const std::string src = shared_data("stories260K/hf");
    const std::string dst = scratch + "/" + name;
    fs::create_directories(dst);
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.model"}) {
        fs::copy_file(src + "/" + f, dst + "/" + f, fs::copy_options::overwrite_existing);
    }
    return dst;
}

void poison_tensor(const std::string& model_dir, const std::string& name, float value,
                   const std::string& file) {
    const std::string path = model_dir + "/" + file;
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    {
        io::SafetensorsReader reader(path);
        for (const std::string& n : reader.names()) {
            at::Tensor t = reader.load(n);
            if (n == name) t.view(-1)[0] = value;
            tensors.emplace_back(n, t);
        }
    }
    io::save_safetensors(path, tensors, {{"format", "pt"}});
}

void patch_config(const std::string& model_dir, const std::string& json_patch) {
    const std::string path = model_dir + "/config.json";
    nlohmann::json j = nlohmann::json::parse(read_text(path));
    j.merge_patch(nlohmann::json::parse(json_patch));
    std::ofstream(path) << j.dump(2);
}

void write_small_adapter(const std::string& dir, float value) {
    lora::PeftAdapter adapter;
    adapter.config.r = 2;
    adapter.config.lora_alpha = 4;
    adapter.config.target_modules = {"q_proj"};
    for (int l = 0; l < 5; ++l) {
        const std::string m = "model.layers." + std::to_string(l) + ".self_attn.q_proj";
        adapter.tensors[lora::lora_name(m, 'A')] = at::full({2, 64}, value);
        adapter.tensors[lora::lora_name(m, 'B')] = at::full({64, 2}, value);
    }
    fs::create_directories(dir);
    lora::save_peft_adapter(dir, adapter);
}

std::string read_text(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream out;
    out << in.rdbuf();
    return out.str();
}

std::vector<std::string> tree_digest(const std::string& root) {
    std::vector<std::string> out;
    if (!fs::exists(root)) return out;
    for (const auto& e : fs::recursive_directory_iterator(root)) {
        if (!e.is_regular_file()) continue;
        const std::string bytes = read_text(e.path().string());
        out.push_back(fs::relative(e.path(), root).string() + " " + std::to_string(bytes.size()) +
                      " " + std::to_string(std::hash<std::string>{}(bytes)));
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<std::string> error_lines(const std::string& output) {
    std::vector<std::string> out;
    std::istringstream in(output);
    std::string line;
    while (std::getline(in, line)) {
        if (line.find("error:") != std::string::npos) out.push_back(line);
    }
    return out;
}

}  // namespace qlora::test
