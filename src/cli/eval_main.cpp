// qlora-eval --model DIR [--adapter A] [--quant nf4|fp4|none] --data FILE [--format text|jsonl]
//   [--max-seq-len N] [--device D] [--dtype T] [--threads N]
// Prints one JSON line: {"loss": ..., "perplexity": ..., "tokens": ...} (protocol in model/evaluate.h).
#include <CLI/CLI.hpp>

#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/run_tool.h"
#include "export/attach_adapter.h"
#include "core/device.h"
#include "core/error.h"
#include "model/evaluate.h"
#include "model/llama_loader.h"
#include "model/vocab_check.h"

int main(int argc, char** argv) {
    using namespace qlora;
    CLI::App app{"qlora-eval: loss and perplexity of a Llama-family model over a text or JSONL file"};
    app.set_version_flag("--version", QLORA_VERSION);
    std::string model_dir, adapter, quant = "none", data, format, device_name = "auto", dtype_name_arg;
    int64_t max_seq_len = 0;
    app.add_option("--model", model_dir, "Hugging Face model folder")->required()->check(CLI::ExistingDirectory);
    app.add_option("--adapter", adapter, "PEFT LoRA adapter folder");
    app.add_option("--quant", quant, "quantize the base linears while loading")
        ->check(CLI::IsMember({"none", "nf4", "fp4"}));
    app.add_option("--data", data, "documents to score")->required()->check(CLI::ExistingFile);
    app.add_option("--format", format, "text (documents split on <|endoftext|> lines) or jsonl "
                                       "(default: from the file extension)")
        ->check(CLI::IsMember({"text", "jsonl"}));
    app.add_option("--max-seq-len", max_seq_len, "window length (default: max_position_embeddings)")
        ->check(CLI::PositiveNumber);
    app.add_option("--device", device_name, "auto, cpu, cuda or cuda:N");
    int threads = 0;
    app.add_option("--threads", threads, "CPU threads for LibTorch (default: one per core; 1 is fastest for "
                                         "tiny models on a busy machine)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--dtype", dtype_name_arg, "compute dtype (default: bf16 on CUDA, fp32 on CPU)");
    return cli::run_tool("qlora-eval", app, argc, argv, [&] {
        if (format.empty()) format = data.ends_with(".jsonl") ? "jsonl" : "text";
        if (threads > 0) at::set_num_threads(threads);
        model::LoadOptions load;
        load.device = resolve_device(device_name);
        load.dtype = dtype_name_arg.empty() ? default_compute_dtype(load.device) : parse_dtype(dtype_name_arg);
        load.quant = quant;
        tokenizer::Tokenizer tok(model_dir);
        auto docs = model::read_documents(data, format);
        std::vector<int64_t> stream = model::tokenize_documents(tok, docs);
        model::Llama llama = model::load_llama(model_dir, load);
        model::check_vocab_fits(tok.vocab_size(), model_dir, llama->config(), model_dir);
        if (!adapter.empty()) exporting::attach_peft_adapter(*llama, adapter);
        if (max_seq_len == 0) max_seq_len = llama->config().max_position_embeddings;
        model::EvalResult r = model::evaluate_stream(llama, stream, max_seq_len, tok.bos_id());
        nlohmann::json out = {{"loss", r.loss}, {"perplexity", r.perplexity}, {"tokens", r.tokens}};
        std::cout << out.dump() << '\n';
    });
}
