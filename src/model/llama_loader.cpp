// The HF name table (torchtune's _FROM_HF idea: one entry per tensor, layer index filled in) and
// the streaming load: read one tensor, convert or quantize it on the target device, drop the copy.
// An hf-int4 folder's linears (quant/int4_format.h) are dequantized to dense weights as they load.
#include "model/llama_loader.h"

#include <filesystem>
#include <functional>
#include <set>

#include "core/error.h"
#include "core/limits.h"
#include "core/log.h"
#include "io/bnb_format.h"
#include "io/finite_check.h"
#include "io/safetensors.h"
#include "model/gguf_model.h"
#include "model/llama_layout.h"
#include "quant/int4_format.h"

namespace qlora::model {
namespace {

constexpr const char* kNamePatterns =
    "model.embed_tokens.weight, model.layers.N.{input,post_attention}_layernorm.weight, "
    "model.layers.N.self_attn.{q,k,v,o}_proj.{weight,bias}, "
    "model.layers.N.mlp.{gate,up,down}_proj.weight, "
    "model.norm.weight, lm_head.weight";

// Where one checkpoint tensor goes.
struct Slot {
    std::vector<int64_t> shape;
    Linear linear{nullptr};  // set for linear weights and biases
    bool is_bias = false;
    std::function<void(const at::Tensor&)> assign;  // for embeddings and norms
};

std::map<std::string, Slot> make_slots(LlamaImpl& m) {
    const LlamaConfig& c = m.config();
    std::map<std::string, Slot> slots;
    slots["model.embed_tokens.weight"] =
        Slot{{c.vocab_size, c.hidden_size}, nullptr, false, [&m](const at::Tensor& t) {
                 m.set_embedding(t);
             }};
    auto norm_slot = [&](RMSNorm n) {
        return Slot{
            {c.hidden_size}, nullptr, false, [n](const at::Tensor& t) { n->weight.set_data(t); }};
    };
    slots["model.norm.weight"] = norm_slot(m.norm);
    for (size_t l = 0; l < m.layers.size(); ++l) {
        const std::string prefix = "model.layers." + std::to_string(l) + ".";
        slots[prefix + "input_layernorm.weight"] = norm_slot(m.layers[l]->input_layernorm);
        slots[prefix + "post_attention_layernorm.weight"] =
            norm_slot(m.layers[l]->post_attention_layernorm);
    }
    for (Linear& lin : m.linears()) {
        if (lin.get() == m.lm_head.get() && c.tie_word_embeddings) continue;
        slots[lin->name() + ".weight"] =
            Slot{{lin->out_features(), lin->in_features()}, lin, false, {}};
        if (lin->has_bias())
            slots[lin->name() + ".bias"] = Slot{{lin->out_features()}, lin, true, {}};
    }
    return slots;
}

quant::Quant4Options nf4_options(const LoadOptions& options) {
    quant::Quant4Options nf4;
    if (options.quant != "none") {
        nf4.type = quant::parse_quant_type(options.quant);
        nf4.blocksize = options.blocksize;
        nf4.double_quant = options.double_quant;
    }
    return nf4;
}

// A dense checkpoint tensor into its slot, quantized when the options ask and it is a base linear.
// Returns whether it was quantized.
bool assign_dense(Slot& slot, const std::string& name, const at::Tensor& loaded,
                  const LoadOptions& options, const quant::Quant4Options& nf4,
                  const std::string& source) {
    at::Tensor t = loaded.to(options.device, options.dtype);
    // After the cast: a float32 weight beyond the fp16 range becomes Inf here, not later.
    io::check_finite(t, name, source);
    if (slot.linear && slot.is_bias) {
        slot.linear->set_bias(t);
    } else if (slot.linear && options.quant != "none" && is_quantized_weight_name(name)) {
        slot.linear->set_quantized(quant::Quant4Tensor::quantize(t, nf4, name));
        return true;
    } else if (slot.linear) {
        slot.linear->set_weight(t);
    } else {
        slot.assign(t);
    }
    return false;
}

Llama& finish_load(Llama& model, const std::map<std::string, Slot>& slots,
                   const std::set<std::string>& loaded, int64_t n_quantized,
                   const LoadOptions& options, const std::string& source) {
    const LlamaConfig& config = model->config();
    for (const auto& [name, slot] : slots) {
        QLORA_CHECK(loaded.count(name) != 0, source, ": missing tensor '", name, "' (",
                    config.model_type, " with ", config.num_hidden_layers,
                    " layers needs it; names follow ", kNamePatterns, ")");
    }
    model->inv_freq.set_data(model->inv_freq.to(options.device));
    // Norm weights were created on the CPU; those set above already live on the device.
    model->to_device(options.device);
    log_info("loaded ", source, ": ", loaded.size(), " tensors, ", n_quantized, " linears 4-bit, ",
             model->weight_nbytes() / 1024, " KiB of weights");
    return model;
}

}  // namespace

std::vector<std::string> llama_tensor_names(const LlamaConfig& config) {
    Llama m(config);
    std::vector<std::string> names;
    for (const auto& [name, slot] : make_slots(*m)) names.push_back(name);
    return names;
}

Llama load_llama(const std::string& folder, const LoadOptions& options) {
    if (folder.ends_with(".gguf")) return load_llama_gguf(folder, options);
    LlamaConfig config = LlamaConfig::load(folder);
    const bool prequantized = config.quantization_config.has_value();
    // hf-int4 (qlora-export): each linear dequantized to a dense compute-dtype weight while
    // loading.
    const bool int4 = prequantized && quant::is_int4_config(*config.quantization_config);
    const int64_t int4_group =
        int4 ? quant::int4_group_size(*config.quantization_config, folder + "/config.json") : 0;
    const bool quantize = options.quant != "none";
    QLORA_CHECK(
        !(prequantized && quantize), folder,
        " is already quantized (config.json has quantization_config); load it with --quant none");
    const quant::Quant4Options nf4 = nf4_options(options);

    io::SafetensorsFolder files(folder);
    if (options.device.is_cpu()) {
        // The weights config.json implies, at >= 1 byte per parameter even when 4-bit (packed data,
        // absmax and the dense compute copy of one layer), checked before anything is allocated.
        const uint64_t per_param = (quantize || prequantized) ? 1 : at::elementSize(options.dtype);
        limits::check_host_memory(
            limits::saturating_mul(static_cast<uint64_t>(config.num_parameters()), per_param),
            "the model of " + folder + "/config.json (" + std::to_string(config.num_parameters()) +
                " parameters)");
    }
    Llama model(config);
    std::map<std::string, Slot> slots = make_slots(*model);
    std::set<std::string> loaded;
    int64_t n_quantized = 0;
    for (const std::string& name : files.names()) {
        if (int4 && name.ends_with(".scales") &&
            files.contains(name.substr(0, name.size() - 7) + ".qweight")) {
            continue;  // read with its qweight
        }
        if (int4 && name.ends_with(".qweight")) {
            const std::string module = name.substr(0, name.size() - 8);
            auto w = slots.find(module + ".weight");
            QLORA_CHECK(w != slots.end() && w->second.linear && !w->second.is_bias, folder,
                        ": unexpected int4 tensor '", name, "': no linear '", module, "' in a ",
                        config.model_type, " model with ", config.num_hidden_layers, " layers");
            QLORA_CHECK(files.contains(module + ".scales"), folder, ": int4 tensor '", name,
                        "' has no '", module, ".scales' beside it");
            Slot& slot = w->second;
            QLORA_CHECK(
                files.info(name).shape.size() == 2 && files.info(name).shape[0] == slot.shape[0],
                folder, ": int4 tensor '", name, "' has shape ",
                c10::IntArrayRef(files.info(name).shape), ", expected [", slot.shape[0], ", ",
                (slot.shape[1] + 1) / 2, "] from config.json");
            at::Tensor t = quant::unpack_int4(files.load(name), files.load(module + ".scales"),
                                              slot.shape[1], int4_group, folder + ": " + module);
            io::check_finite(t, module + ".scales", folder);
            slot.linear->set_weight(t.to(options.device, options.dtype));
            loaded.insert(module + ".weight");
            continue;
        }
        auto it = slots.find(name);
        if (it == slots.end()) {
            // Tensors transformers itself ignores: old RoPE buffers, and a duplicate lm_head when
            // the embeddings are tied.
            if (name.find("rotary_emb.inv_freq") != std::string::npos) continue;
            if (name == "lm_head.weight" && config.tie_word_embeddings) {
                log_debug(folder, ": ignoring lm_head.weight (tie_word_embeddings is true)");
                continue;
            }
            if (prequantized && !int4 && io::is_bnb_state_key(name))
                continue;  // read with its weight
            QLORA_FAIL(folder, ": unexpected tensor '", name, "' for a ", config.model_type,
                       " model with ", config.num_hidden_layers,
                       " layers (expected names: ", kNamePatterns, ")");
        }
        Slot& slot = it->second;
        if (prequantized && !int4 && slot.linear && !slot.is_bias &&
            io::is_bnb_4bit_weight(files, name)) {
            slot.linear->set_quantized(io::read_bnb_4bit(files, name).to(options.device));
            loaded.insert(name);
            ++n_quantized;
            continue;
        }
        const io::TensorInfo& info = files.info(name);
        QLORA_CHECK(info.shape == slot.shape, folder, ": tensor '", name, "' has shape ",
                    c10::IntArrayRef(info.shape), ", expected ", c10::IntArrayRef(slot.shape),
                    " from config.json");
        n_quantized += assign_dense(slot, name, files.load(name), options, nf4, folder) ? 1 : 0;
        loaded.insert(name);
    }
    return finish_load(model, slots, loaded, n_quantized, options, folder);
}

Llama load_llama_tensors(const LlamaConfig& config, const std::vector<std::string>& names,
                         const std::function<at::Tensor(const std::string&)>& load,
                         const LoadOptions& options, const std::string& source) {
    const quant::Quant4Options nf4 = nf4_options(options);
    Llama model(config);
    std::map<std::string, Slot> slots = make_slots(*model);
    std::set<std::string> loaded;
    int64_t n_quantized = 0;
    for (const std::string& name : names) {
        auto it = slots.find(name);
        QLORA_CHECK(it != slots.end(), source, ": unexpected tensor '", name, "' for a ",
                    config.model_type, " model with ", config.num_hidden_layers,
                    " layers (expected names: ", kNamePatterns, ")");
        QLORA_CHECK(loaded.insert(name).second, source, ": tensor '", name, "' is given twice");
        at::Tensor t = load(name);
        QLORA_CHECK(t.sizes() == c10::IntArrayRef(it->second.shape), source, ": tensor '", name,
                    "' has shape ", t.sizes(), ", expected ", c10::IntArrayRef(it->second.shape),
                    " from the config");
        n_quantized += assign_dense(it->second, name, t, options, nf4, source) ? 1 : 0;
    }
    return finish_load(model, slots, loaded, n_quantized, options, source);
}

}  // namespace qlora::model
