// The four models of the --eval-data table, built one at a time: two through the regular loader
// (as qlora-eval would load them), two from the merged checkpoint stream.
#include "export/export_eval.h"

#include <cmath>
#include <cstdio>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "core/parse_int.h"
#include "data/documents.h"
#include "export/attach_adapter.h"
#include "export/quantize_model.h"
#include "model/llama_layout.h"
#include "model/llama_loader.h"
#include "tokenizer/tokenizer.h"

namespace qlora::exporting {
namespace {

// "model.layers.12.input_layernorm.weight" -> 12; -1 when not a layer tensor.
int64_t layer_of(const std::string& name) {
    const std::string prefix = "model.layers.";
    if (name.rfind(prefix, 0) != 0) return -1;
    return parse_int64(name.substr(prefix.size(), name.find('.', prefix.size()) - prefix.size()))
        .value_or(-1);
}

}  // namespace

model::Llama build_merged_model(const MergedView& merged, c10::ScalarType dtype16, bool quantize,
                                const c10::Device& device, c10::ScalarType compute_dtype) {
    model::Llama m(merged.config());
    std::map<std::string, model::Linear> linears;
    for (model::Linear& lin : m->linears()) linears.emplace(lin->name(), lin);
    for (const std::string& name : merged.names()) {
        at::Tensor w = merged.tensor(name);
        const std::string module = name.substr(0, name.rfind('.'));
        const int64_t layer = layer_of(name);
        auto lin = linears.find(module);
        if (quantize && model::is_quantized_weight_name(name)) {
            at::Tensor exact = w.to(merged.base_dtype(name));
            lin->second->set_quantized(
                quant::Quant4Tensor::quantize(exact, merged.quant().options, name).to(device));
            continue;
        }
        w = (quantize ? w.to(merged.base_dtype(name)) : w.to(dtype16)).to(device, compute_dtype);
        if (name == "model.embed_tokens.weight") {
            m->set_embedding(w);
        } else if (name == "model.norm.weight") {
            m->norm->weight.set_data(w);
        } else if (name.ends_with(".input_layernorm.weight")) {
            m->layers[layer]->input_layernorm->weight.set_data(w);
        } else if (name.ends_with(".post_attention_layernorm.weight")) {
            m->layers[layer]->post_attention_layernorm->weight.set_data(w);
        } else if (lin != linears.end() && name.ends_with(".bias")) {
            lin->second->set_bias(w);
        } else if (lin != linears.end()) {
            lin->second->set_weight(w);
        } else {
            QLORA_FAIL("build_merged_model: no slot for '", name, "'");
        }
    }
    m->inv_freq.set_data(m->inv_freq.to(device));
    m->to_device(device);
    m->eval();
    return m;
}

ExportEval evaluate_export(const MergedView& merged, const ExportEvalOptions& options) {
    const std::string format = !options.format.empty()
                                   ? options.format
                                   : (options.data.ends_with(".jsonl") ? "jsonl" : "text");
    tokenizer::Tokenizer tok(merged.base_dir());
    const std::vector<int64_t> stream =
        data::tokenize_documents(tok, data::read_documents(options.data, format));
    const int64_t max_seq_len =
        options.max_seq_len > 0 ? options.max_seq_len : merged.config().max_position_embeddings;
    const c10::ScalarType compute = resolve_dtype("auto", options.device);
    auto score = [&](model::Llama& m) {
        at::NoGradGuard no_grad;
        return model::evaluate_stream(m, stream, max_seq_len, tok.bos_id());
    };

    model::LoadOptions load;
    load.device = options.device;
    load.dtype = compute;
    // The base as the adapter was trained against it, whatever the merge base.
    const bool nf4_base = merged.quant().enabled && !merged.base_is_4bit();
    if (nf4_base) {
        load.quant = quant::quant_type_name(merged.quant().options.type);
        load.blocksize = merged.quant().options.blocksize;
        load.double_quant = merged.quant().options.double_quant;
    }
    const std::string base_kind = nf4_base || merged.base_is_4bit()
                                      ? quant::quant_type_name(merged.quant().options.type)
                                      : "dense";
    ExportEval eval;
    {
        model::Llama base = model::load_llama(merged.base_dir(), load);
        eval.rows.push_back({std::string("base (") + base_kind + ")", score(base)});
        attach_peft_adapter(*base, merged.adapter_dir());
        eval.rows.push_back(
            {std::string("base (") + base_kind + ") + adapter, unmerged", score(base)});
    }
    {
        model::Llama m =
            build_merged_model(merged, options.merged_dtype, false, options.device, compute);
        eval.rows.push_back({std::string("merged ") + dtype_name(options.merged_dtype), score(m)});
    }
    {
        model::Llama m =
            build_merged_model(merged, options.merged_dtype, true, options.device, compute);
        eval.rows.push_back({std::string("merged ") +
                                 quant::quant_type_name(merged.quant().options.type) + " (hf-nf4)",
                             score(m)});
    }
    const double gain = eval.rows[0].result.loss - eval.rows[1].result.loss;
    eval.retained =
        gain == 0.0 ? NAN : (eval.rows[0].result.loss - eval.rows[3].result.loss) / gain;
    return eval;
}

std::string format_export_eval(const ExportEval& eval) {
    size_t width = 5;
    for (const auto& row : eval.rows) width = std::max(width, row.label.size());
    char line[96];
    std::string text = std::string("model") + std::string(width - 5, ' ');
    text += "   eval_loss  perplexity  tokens\n";
    for (const auto& row : eval.rows) {
        std::snprintf(line, sizeof line, "  %10.4f  %10.3f  %6lld\n", row.result.loss,
                      row.result.perplexity, static_cast<long long>(row.result.tokens));
        text += row.label + std::string(width - row.label.size(), ' ') + line;
    }
    std::snprintf(line, sizeof line, "%.1f%%", 100.0 * eval.retained);
    text += std::string("adapter improvement retained by the merged 4-bit model: ") +
            (std::isnan(eval.retained) ? std::string("n/a (the adapter does not change the loss)")
                                       : std::string(line)) +
            "\n";
    return text;
}

}  // namespace qlora::exporting
