// qlora-generate --model DIR [--adapter A] [--quant nf4|fp4|none]
//   (--prompt T | --chat [--system S]) [--max-new-tokens N] [--temperature T] [--top-p P]
//   [--top-k K] [--repetition-penalty R] [--seed S] [--device D] [--dtype T] [--threads N]
// Samples from a Llama-family model, streaming the text (prompt included) to stdout. --chat holds
// a conversation in the terminal through the model's chat template: each line read is a user turn
// ("> " prompts on a terminal), the reply streams as it is generated; EOF or /exit ends it.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "cli/cli_checks.h"
#include "cli/run_tool.h"
#include "core/device.h"
#include "core/error.h"
#include "core/limits.h"
#include "core/log.h"
#include "export/attach_adapter.h"
#include "model/chat_session.h"
#include "model/generate.h"
#include "model/llama_loader.h"
#include "model/vocab_check.h"
#include "quant/quant4_matmul.h"

namespace {

// Stop ids: config.json's eos_token_id, then the tokenizer's EOS ids (its own and
// generation_config.json's: Llama 3 instruct models list their end-of-turn ids there).
std::vector<int64_t> stop_ids(const qlora::model::LlamaConfig& config,
                              const qlora::tokenizer::Tokenizer& tok) {
    std::vector<int64_t> ids = config.eos_token_ids;
    for (int64_t id : tok.eos_ids()) {
        if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    }
    return ids;
}

// --chat: one user turn per line of stdin until EOF or "/exit"; blank lines are skipped.
void chat_loop(qlora::model::Llama& llama, const qlora::tokenizer::Tokenizer& tok,
               const qlora::model::GenerateOptions& options, const std::string& system) {
    qlora::model::ChatSession session(llama, tok, qlora::chat::ChatTemplate::of_tokenizer(tok),
                                      options, system);
    const bool terminal = isatty(STDIN_FILENO) != 0;
    std::string line;
    while (true) {
        if (terminal) std::cout << "> " << std::flush;
        if (!std::getline(std::cin, line) || line == "/exit") break;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        session.reply(line, [](const std::string& text) { std::cout << text << std::flush; });
        std::cout << '\n' << std::flush;
    }
    if (terminal) std::cout << '\n';
}

}  // namespace

int main(int argc, char** argv) {
    using namespace qlora;
    CLI::App app{"qlora-generate: sample text from a Llama-family model (greedy at temperature 0)"};
    app.set_version_flag("--version", QLORA_VERSION);
    std::string model_dir, adapter, quant = "none", prompt, device_name = "auto", dtype_name_arg;
    int64_t max_new_tokens = 256;
    model::SamplingOptions sampling;
    bool no_bos = false, stats = false;
    app.add_option("--model", model_dir,
                   "Hugging Face model folder (config.json, *.safetensors, tokenizer.json or "
                   "tokenizer.model), or a .gguf file")
        ->required()
        ->check(cli::ModelPath());
    app.add_option("--adapter", adapter, "PEFT LoRA adapter folder");
    app.add_option("--quant", quant, "quantize the base linears while loading")
        ->check(CLI::IsMember({"none", "nf4", "fp4"}));
    auto* prompt_opt =
        app.add_option("--prompt", prompt, "the text to continue (may be empty: BOS only)");
    bool chat = false;
    std::string system;
    auto* chat_opt = app.add_flag("--chat", chat,
                                  "a conversation in the terminal through the model's chat "
                                  "template (one user turn per line; EOF or /exit ends it)")
                         ->excludes(prompt_opt);
    app.add_option("--system", system, "with --chat: an opening system message")->needs(chat_opt);
    app.add_option("--max-new-tokens,-n", max_new_tokens,
                   "stop after this many new tokens (at most 1048576)")
        ->check(CLI::Range(int64_t{0}, limits::kMaxNewTokens));
    app.add_option("--temperature,-t", sampling.temperature, "0 = greedy")
        ->check(cli::FiniteRange(0.0, 1e6));
    app.add_option("--top-p,-p", sampling.top_p, "nucleus sampling mass (1 = off)")
        ->check(cli::FiniteRange(0.0, 1.0));
    app.add_option("--top-k,-k", sampling.top_k, "keep the k most likely tokens (0 = off)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--repetition-penalty", sampling.repetition_penalty,
                   "> 1 discourages repeats (1 = off)")
        ->check(cli::FiniteRange(1e-6, 1e6));
    app.add_option("--seed,-s", sampling.seed, "random seed (xorshift64*, as llama2.c)");
    app.add_option("--device", device_name, "auto, cpu, cuda or cuda:N");
    int threads = 0;
    app.add_option("--threads", threads,
                   "CPU threads for LibTorch (default: one per core; 1 is fastest for "
                   "tiny models on a busy machine)")
        ->check(CLI::NonNegativeNumber);
    app.add_option(
        "--dtype", dtype_name_arg,
        "compute dtype: auto, float32, bfloat16, float16 (auto: bf16 on CUDA, fp32 on CPU)");
    bool int8_activations = false;
    app.add_flag(
        "--int8-activations", int8_activations,
        "CPU, 4-bit base: quantize the activations (prompt and decode) to int8 and use VNNI "
        "integer dot products (faster, approximate; needs AVX-512 VNNI, else exact)");
    app.add_flag("--no-bos", no_bos, "do not prepend BOS to the prompt");
    app.add_flag("--stats", stats, "print token counts and tokens/s to stderr at the end");
    return cli::run_tool("qlora-generate", app, argc, argv, [&] {
        QLORA_CHECK(prompt_opt->count() + chat_opt->count() == 1, "give --prompt or --chat");
        if (threads > 0) at::set_num_threads(threads);
        quant::quant4_matmul_tuning().int8_activations = int8_activations;
        model::LoadOptions load;
        load.device = resolve_device(device_name);
        load.dtype = resolve_dtype(dtype_name_arg.empty() ? "auto" : dtype_name_arg, load.device);
        load.quant = quant;
        tokenizer::Tokenizer tok(model_dir);
        model::Llama llama = model::load_llama(model_dir, load);
        // The adapter first: one for another model is the likelier mistake, and its message says
        // so.
        if (!adapter.empty()) exporting::attach_peft_adapter(*llama, adapter);
        model::check_vocab_fits(tok.vocab_size(), model_dir, llama->config(), model_dir);

        model::GenerateOptions options;
        options.max_new_tokens = max_new_tokens;
        options.sampling = sampling;
        options.stop_ids = stop_ids(llama->config(), tok);
        if (chat) {
            chat_loop(llama, tok, options, system);
            return;
        }
        std::vector<int64_t> ids = tok.encode(prompt, /*add_bos=*/!no_bos);

        model::TextStreamer streamer(tok);
        std::cout << streamer.push(ids) << std::flush;
        model::GenerateResult r = model::generate(llama, ids, options, [&](int64_t id) {
            std::cout << streamer.push({id}) << std::flush;
        });
        std::cout << streamer.finish() << '\n' << std::flush;
        if (stats) {
            std::fprintf(
                stderr,
                "prompt %lld tokens, generated %lld%s; prefill %.3fs, decode %.1f tokens/s\n",
                static_cast<long long>(r.prompt_tokens), static_cast<long long>(r.new_tokens),
                r.stopped_at_eos ? " (stopped at EOS)" : "", r.prefill_seconds,
                r.decode_tokens_per_second());
        }
    });
}
