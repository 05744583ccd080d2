// qlora-eval: the loss of a model over a file, by one of two protocols, printed as one JSON line
// {"loss", "perplexity", "tokens", "protocol"}:
//   samples  the training protocol (train/eval_protocol.h): --format text|alpaca|chat [--template
//   T]
//            renders, tokenizes, masks and batches the file's records exactly as qlora-train's
//            eval;
//            --run RUN_DIR replays a run's own eval and prints the loss of its last eval line;
//   stream   document-stream perplexity (model/evaluate.h): --stream, or no --format (documents of
//   a
//            text file split on <|endoftext|> lines, or the "text" of each JSONL line).
#include <CLI/CLI.hpp>
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/cli_checks.h"
#include "cli/run_tool.h"
#include "core/device.h"
#include "core/error.h"
#include "data/documents.h"
#include "export/attach_adapter.h"
#include "model/evaluate.h"
#include "model/llama_loader.h"
#include "model/vocab_check.h"
#include "tokenizer/tokenizer.h"
#include "train/eval_protocol.h"

namespace {

struct EvalArgs {
    std::string run_dir, model_dir, adapter, quant = "none", data, format, template_name = "auto";
    std::string device = "auto", dtype;
    int64_t max_seq_len = 0, micro_batch = 1;
    bool stream = false, train_on_inputs = false;
};

void print(const char* protocol, double loss, int64_t tokens) {
    nlohmann::json out = {
        {"loss", loss}, {"perplexity", std::exp(loss)}, {"tokens", tokens}, {"protocol", protocol}};
    std::cout << out.dump() << '\n';
}

void eval_model(const EvalArgs& a) {
    using namespace qlora;
    QLORA_CHECK(!a.model_dir.empty() && !a.data.empty(),
                "qlora-eval needs --run RUN_DIR, or --model and --data");
    model::LoadOptions load;
    load.device = resolve_device(a.device);
    load.dtype = resolve_dtype(a.dtype.empty() ? "auto" : a.dtype, load.device);
    load.quant = a.quant;
    tokenizer::Tokenizer tok(a.model_dir);
    model::Llama llama = model::load_llama(a.model_dir, load);
    // The adapter first: one for another model is the likelier mistake, and its message says so.
    if (!a.adapter.empty()) exporting::attach_peft_adapter(*llama, a.adapter);
    model::check_vocab_fits(tok.vocab_size(), a.model_dir, llama->config(), a.model_dir);
    const int64_t max_seq_len =
        a.max_seq_len > 0 ? a.max_seq_len : llama->config().max_position_embeddings;
    const bool stream = a.stream || a.format.empty() || a.format == "jsonl";
    if (stream) {
        const std::string format =
            a.format == "jsonl" || (a.format.empty() && a.data.ends_with(".jsonl")) ? "jsonl"
                                                                                    : "text";
        std::vector<int64_t> ids =
            data::tokenize_documents(tok, data::read_documents(a.data, format));
        const model::EvalResult r = model::evaluate_stream(llama, ids, max_seq_len, tok.bos_id());
        print("stream", r.loss, r.tokens);
        return;
    }
    train::SampleEvalOptions o;
    o.dataset.format = data::parse_format(a.format);
    o.dataset.tmpl = data::parse_template(a.template_name);
    o.dataset.tokenize.max_seq_len = max_seq_len;
    o.dataset.tokenize.train_on_inputs = a.train_on_inputs;
    o.loader.micro_batch = a.micro_batch;
    o.loader.max_seq_len = max_seq_len;
    o.loader.pad_id = tok.pad_id() >= 0 ? tok.pad_id() : tok.eos_id();
    const train::EvalLoss r = train::evaluate_samples(*llama, tok, a.data, o, load.device);
    print("samples", r.loss, r.tokens);
}

}  // namespace

int main(int argc, char** argv) {
    using namespace qlora;
    CLI::App app{
        "qlora-eval: loss and perplexity of a Llama-family model over a file, or of a training "
        "run"};
    app.set_version_flag("--version", QLORA_VERSION);
    EvalArgs a;
    app.add_option("--run", a.run_dir,
                   "a qlora-train run folder: replay its eval (config, eval split, final adapter)")
        ->check(CLI::ExistingDirectory);
    app.add_option("--model", a.model_dir, "Hugging Face model folder, or a .gguf file")
        ->check(cli::ModelPath());
    app.add_option("--adapter", a.adapter, "PEFT LoRA adapter folder");
    app.add_option("--quant", a.quant, "quantize the base linears while loading")
        ->check(CLI::IsMember({"none", "nf4", "fp4"}));
    app.add_option("--data", a.data, "the file to score")->check(CLI::ExistingFile);
    app.add_option("--format", a.format,
                   "text, alpaca or chat: score the records as qlora-train does (jsonl, or "
                   "no --format: the document stream)")
        ->check(CLI::IsMember({"text", "alpaca", "chat", "jsonl"}));
    app.add_option("--template", a.template_name,
                   "with --format: auto (the model's chat template if it has one, else alpaca), "
                   "model, alpaca, llama2-chat, chatml or plain")
        ->capture_default_str();
    app.add_option("--micro-batch", a.micro_batch,
                   "with --format: rows per batch (the run's train.micro_batch)")
        ->check(CLI::PositiveNumber);
    app.add_flag("--train-on-inputs", a.train_on_inputs,
                 "with --format: prompt tokens are scored too");
    app.add_flag("--stream", a.stream, "document-stream perplexity (the default without --format)");
    app.add_option("--max-seq-len", a.max_seq_len,
                   "sample length / window (default: max_position_embeddings)")
        ->check(CLI::PositiveNumber);
    app.add_option("--device", a.device,
                   "auto, cpu, cuda or cuda:N (with --run: default the run's)");
    int threads = 0;
    app.add_option("--threads", threads,
                   "CPU threads for LibTorch (default: one per core; 1 is fastest for "
                   "tiny models on a busy machine)")
        ->check(CLI::NonNegativeNumber);
    app.add_option("--dtype", a.dtype, "compute dtype (default: bf16 on CUDA, fp32 on CPU)");
    return cli::run_tool("qlora-eval", app, argc, argv, [&] {
        if (threads > 0) at::set_num_threads(threads);
        if (a.run_dir.empty()) return eval_model(a);
        QLORA_CHECK(a.model_dir.empty() && a.data.empty(),
                    "--run replays the run's own model and eval data; "
                    "drop --model/--data, or drop --run");
        const bool device_given = app.count("--device") > 0;
        const train::RunEval r = train::evaluate_run(a.run_dir, device_given ? a.device : "");
        print("samples", r.loss.loss, r.loss.tokens);
    });
}
