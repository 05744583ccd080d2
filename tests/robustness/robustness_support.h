// Helpers of the robustness suite: a private copy of stories260K to damage, file digests to prove
// an input survived, tiny adapters, and reading a tool's single error line.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <vector>

#include "support/test_support.h"

namespace qlora::test {

// scratch/<name>/model: config.json, model.safetensors and tokenizer.model of stories260K.
std::string copy_stories_model(const std::string& scratch, const std::string& name = "model");
// Rewrites model.safetensors of `model_dir` with tensor `name` set to `value` at element 0.
void poison_tensor(const std::string& model_dir, const std::string& name, float value,
                   const std::string& file = "model.safetensors");
// Replaces config.json keys of `model_dir` (a JSON object text merged over the original).
void patch_config(const std::string& model_dir, const std::string& json_patch);
// A PEFT adapter on q_proj of the 5 layers of stories260K (r 2), written to `dir`.
void write_small_adapter(const std::string& dir, float value = 0.01f);
// "<relative path> <size> <first 64 bits of content hash>" for every file under `root`, sorted.
std::vector<std::string> tree_digest(const std::string& root);
// The whole content of a file.
std::string read_text(const std::string& path);
// The lines of `output` that contain "error:"; a tool's error must be exactly one.
std::vector<std::string> error_lines(const std::string& output);

}  // namespace qlora::test
