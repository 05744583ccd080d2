// qlora-bench decode / prefill: CPU (or CUDA) inference speed of a Llama with a 4-bit base beside
// the same model with a dense float32 base, each built in turn in this process. The model is a
// random Llama of a named shape (bench_step.h's shapes; default TinyLlama-1.1B) or an HF folder
// (the one scripts/bench-llamacpp.sh also converts for llama.cpp).
//   decode:  model::generate (KV cache, greedy) after a short prompt; tokens/s of the decode steps.
//   prefill: one cached forward of a `prompt`-token prompt with logits of the last position only
//            (what llama-bench's pp test measures); tokens/s = prompt / seconds.
#pragma once

#include <c10/core/Device.h>

#include <functional>
#include <string>
#include <vector>

namespace qlora::bench {

struct InferenceBenchOptions {
    std::string shape = "1b";  // tiny | 1b | 7b | 13b | 65b; ignored with model_dir
    int64_t layers = 0;        // >0: keep only this many decoder layers
    std::string model_dir;     // an HF folder to load instead of random weights
    // nf4 | fp4 | fp32, or nf4-int8 | fp4-int8 (int8 activations in the decode GEMVs, inference
    // only; the case also reports its logits error against the exact GEMV); first compared with
    // last.
    std::vector<std::string> bases = {"nf4", "fp32"};
    bool quantize_lm_head = true;  // 4-bit lm_head too (llama.cpp quantizes output.weight as well)
    int64_t blocksize = 64;
    bool double_quant = true;
    int64_t prompt = 256;  // prefill: prompt tokens; decode: 8-token prompt
    int64_t tokens = 32;   // decode: generated tokens per run
    int threads = 0;       // >0: at::set_num_threads
    int iters = 3;         // timed runs (median)
};

// One JSON line per base, then a summary line (first base vs last). `emit`, when set, also gets
// each line as soon as it is measured (a long run killed midway keeps what it finished).
using LineSink = std::function<void(const std::string&)>;
std::vector<std::string> bench_decode(const InferenceBenchOptions& options,
                                      const c10::Device& device, const LineSink& emit = {});
std::vector<std::string> bench_prefill(const InferenceBenchOptions& options,
                                       const c10::Device& device, const LineSink& emit = {});

}  // namespace qlora::bench
