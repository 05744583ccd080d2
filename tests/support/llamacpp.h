// llama.cpp as a peer in tests: scripts/check_llamacpp.py (llama-cpp-python of the setup venv)
// tokenizes and scores token ids, and our side of the same comparisons (logits straight from a
// GGUF, the mean next-token NLL computed as the script computes it).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "model/llama_loader.h"
#include "support/test_support.h"

namespace qlora::test {

inline std::string llamacpp_script() {
    return python() + " " + QLORA_SOURCE_DIR + "/scripts/check_llamacpp.py";
}

// The first n tokens of a shared text by llama.cpp's tokenizer of `gguf` (BOS first when the
// file asks for one), written to ids_file for the script and returned for our forward.
inline std::vector<int64_t> tokenize_with_llamacpp(const std::string& gguf, const std::string& text,
                                                   int n, const std::string& ids_file) {
    auto r = run_command(llamacpp_script() + " tokenize " + gguf + " " +
                         shared_data("text/" + text) + " " + std::to_string(n) + " " + ids_file);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    std::ifstream in(ids_file);
    std::vector<int64_t> ids;
    for (std::string id; std::getline(in, id, ',');) ids.push_back(std::stoll(id));
    EXPECT_EQ(ids.size(), static_cast<size_t>(n)) << r.output;
    return ids;
}

// Our float32 logits [T, vocab] on the ids, the model loaded straight from the GGUF.
inline at::Tensor our_logits(const std::string& gguf, const std::vector<int64_t>& ids) {
    torch::NoGradGuard no_grad;
    at::Tensor tokens = at::tensor(ids, at::kLong).unsqueeze(0);
    return model::load_llama(gguf)->forward(tokens)[0].to(at::kFloat).contiguous();
}

// Mean -log p(ids[t+1] | ids[..t]) over t = 0..T-2, in float64 as the script computes it.
inline double mean_nll(const at::Tensor& logits, const std::vector<int64_t>& ids) {
    const auto t = static_cast<int64_t>(ids.size());
    at::Tensor log_p = at::log_softmax(logits.slice(0, 0, t - 1).to(at::kDouble), -1);
    at::Tensor next = at::tensor(std::vector<int64_t>(ids.begin() + 1, ids.end()), at::kLong);
    return -log_p.gather(1, next.unsqueeze(1)).mean().item<double>();
}

// llama.cpp's mean NLL over ids_file, from the script's "llama.cpp mean NLL: <x>" line (found by
// its marker: llama.cpp may log warnings around it). NaN when the run failed.
inline double llamacpp_nll(const std::string& gguf, const std::string& ids_file) {
    auto r = run_command(llamacpp_script() + " nll " + gguf + " " + ids_file);
    EXPECT_EQ(r.exit_code, 0) << r.output;
    const std::string marker = "llama.cpp mean NLL: ";
    const auto at = r.output.rfind(marker);
    if (r.exit_code != 0 || at == std::string::npos) {
        ADD_FAILURE() << "no NLL in: " << r.output;
        return std::nan("");
    }
    return std::stod(r.output.substr(at + marker.size()));
}

}  // namespace qlora::test
