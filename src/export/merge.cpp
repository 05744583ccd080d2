// MergedView: the name table and shapes from config.json, the adapter checked against them,
// then one tensor at a time: load, (de)quantize as trained, add s·B·A.
#include "export/merge.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "export/quantize_model.h"
#include "io/bnb_format.h"
#include "lora/adapter_metadata.h"
#include "model/gguf_model.h"
#include "model/llama.h"
#include "model/llama_layout.h"

namespace fs = std::filesystem;

namespace qlora::exporting {
namespace {

std::string shape_str(c10::IntArrayRef shape) {
    std::ostringstream out;
    out << shape;
    return out.str();
}

// Fields of adapter_config.json that lora::PeftLoraConfig does not keep but that change what a
// merge must do: per-module ranks/alphas and a subset of layers.
nlohmann::json read_adapter_json(const std::string& adapter_dir) {
    std::ifstream in(fs::path(adapter_dir) / "adapter_config.json");
    return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

bool non_empty(const nlohmann::json& j, const char* key) {
    return j.is_object() && j.contains(key) && !j[key].is_null() && !j[key].empty();
}

}  // namespace

MergeBase parse_merge_base(const std::string& name) {
    QLORA_CHECK(name == "nf4" || name == "fp", "--merge-base must be nf4 or fp, got '", name, "'");
    return name == "nf4" ? MergeBase::kNf4 : MergeBase::kFp;
}

std::string merge_base_name(MergeBase base) { return base == MergeBase::kNf4 ? "nf4" : "fp"; }

TrainedQuant find_trained_quant(const std::string& adapter_dir) {
    TrainedQuant q;
    const std::optional<lora::AdapterMetadata> m = lora::load_adapter_metadata(adapter_dir);
    if (!m) {
        q.source = std::string("defaults; ") + adapter_dir + " has no " +
                   lora::kAdapterMetadataFile + " (an adapter not trained by qlora-train)";
        return q;
    }
    q.enabled = m->base_quantized;
    q.options = m->quant;
    if (m->compute_dtype == at::kBFloat16 || m->compute_dtype == at::kHalf)
        q.dtype = m->compute_dtype;
    q.source = (fs::path(adapter_dir) / lora::kAdapterMetadataFile).string();
    return q;
}

MergedView::MergedView(std::string base_dir, std::string adapter_dir, const MergeOptions& options)
    : base_dir_(std::move(base_dir)),
      adapter_dir_(std::move(adapter_dir)),
      adapter_(lora::load_peft_adapter(adapter_dir_)) {
    if (base_dir_.ends_with(".gguf")) {
        gguf_ = std::make_shared<const model::GgufLlamaFile>(base_dir_);
        config_ = gguf_->config();
    } else {
        config_ = model::LlamaConfig::load(base_dir_);
        files_.emplace(base_dir_);
    }
    base_is_4bit_ = config_.quantization_config.has_value();
    resolve_quant(options);
    add_layer_names();
    check_adapter();
    untied_lm_head_ = config_.tie_word_embeddings && deltas_.count("lm_head.weight") != 0;
    if (!config_.tie_word_embeddings || untied_lm_head_) {
        names_.push_back("lm_head.weight");
        shapes_["lm_head.weight"] = {config_.vocab_size, config_.hidden_size};
    }
    if (untied_lm_head_) config_.tie_word_embeddings = false;
    check_base_tensors();
    log_info(describe());
}

void MergedView::resolve_quant(const MergeOptions& options) {
    if (base_is_4bit_) {
        const std::string config_path = (fs::path(base_dir_) / "config.json").string();
        quant_.options =
            io::parse_bnb_quantization_config(*config_.quantization_config, config_path);
        quant_.source = "the base's quantization_config";
        for (const std::string& name : files_->names()) {  // the blocksize is in each quant_state
            if (model::is_quantized_weight_name(name) && io::is_bnb_4bit_weight(*files_, name)) {
                quant_.options.blocksize = io::read_bnb_4bit(*files_, name).blocksize();
                break;
            }
        }
    } else {
        quant_ = find_trained_quant(adapter_dir_);
    }
    if (options.quant) quant_.options = *options.quant;
    merge_base_ = options.base.value_or(quant_.enabled ? MergeBase::kNf4 : MergeBase::kFp);
    if (options.base && *options.base == MergeBase::kNf4 && !quant_.enabled) {
        log_warn(
            quant_.source,
            " trained over a dense base (quant.enabled: false), yet --merge-base nf4 was asked");
    }
    QLORA_CHECK(!(base_is_4bit_ && merge_base_ == MergeBase::kFp),
                "--merge-base fp needs the original 16-bit ", "weights, but ", base_dir_,
                " is a bitsandbytes 4-bit checkpoint (give the folder it was quantized from)");
}

void MergedView::add_layer_names() {
    // lm_head is added by the constructor once the adapter says whether it unties a tied head.
    for (const model::LlamaTensor& t : model::llama_tensors(config_)) {
        if (t.role->role == model::Role::kLmHead) continue;
        names_.push_back(t.hf_name);
        shapes_[t.hf_name] = t.shape;
    }
}

void MergedView::check_base_tensors() const {
    // The base must hold exactly names_ (plus the 4-bit state keys and buffers transformers
    // ignores).
    std::set<std::string> expected(names_.begin(), names_.end());
    if (untied_lm_head_) expected.erase("lm_head.weight");  // comes from the embeddings
    if (gguf_) {  // names checked by GgufLlamaFile; shapes when each tensor is read
        for (const std::string& name : gguf_->hf_names()) expected.erase(name);
    }
    for (const std::string& name : files_ ? files_->names() : std::vector<std::string>{}) {
        if (expected.erase(name) != 0) {
            if (base_is_4bit_ && io::is_bnb_4bit_weight(*files_, name)) continue;
            const io::TensorInfo& info = files_->info(name);
            QLORA_CHECK(info.shape == shapes_.at(name), base_dir_, ": tensor '", name,
                        "' has shape ", shape_str(info.shape), ", expected ",
                        shape_str(shapes_.at(name)), " from config.json");
            continue;
        }
        const bool ignorable =
            name.find("rotary_emb.inv_freq") != std::string::npos ||
            (name == "lm_head.weight" && (config_.tie_word_embeddings || untied_lm_head_)) ||
            (base_is_4bit_ && io::is_bnb_state_key(name));
        QLORA_CHECK(ignorable, base_dir_, ": unexpected tensor '", name, "' for a ",
                    config_.model_type, " model with ", config_.num_hidden_layers, " layers");
    }
    QLORA_CHECK(expected.empty(), base_dir_, ": missing tensor '", *expected.begin(), "' (",
                config_.model_type, " with ", config_.num_hidden_layers, " layers needs it)");
}

void MergedView::check_adapter() {
    const std::string weights = (fs::path(adapter_dir_) / "adapter_model.safetensors").string();
    const std::string config_path = (fs::path(adapter_dir_) / "adapter_config.json").string();
    const nlohmann::json raw = read_adapter_json(adapter_dir_);
    QLORA_CHECK(!non_empty(raw, "rank_pattern") && !non_empty(raw, "alpha_pattern"), config_path,
                ": per-module rank_pattern/alpha_pattern adapters are not supported (one r and "
                "lora_alpha for all)");
    const int64_t r = adapter_.config.r;
    std::map<std::string, std::pair<int64_t, int64_t>> outs_ins;  // module -> (out, in)
    for (const auto& [name, shape] : shapes_) {
        if (name.ends_with("_proj.weight"))
            outs_ins[name.substr(0, name.size() - 7)] = {shape[0], shape[1]};
    }
    outs_ins["lm_head"] = {config_.vocab_size, config_.hidden_size};
    std::set<std::string> modules;
    for (const auto& [peft_name, t] : adapter_.tensors) {
        std::string module;
        char which = 0;
        lora::split_lora_name(peft_name, &module, &which);
        auto it = outs_ins.find(module);
        QLORA_CHECK(
            it != outs_ins.end(), weights, ": '", peft_name, "' is for module '", module,
            "', which is not a linear of ", base_dir_, " (", config_.model_type, " with ",
            config_.num_hidden_layers,
            " layers: model.layers.N.self_attn.{q,k,v,o}_proj, "
            "model.layers.N.mlp.{gate,up,down}_proj, lm_head); an adapter for another model?");
        const auto [out, in] = it->second;
        const std::vector<int64_t> want =
            which == 'A' ? std::vector<int64_t>{r, in} : std::vector<int64_t>{out, r};
        QLORA_CHECK(t.sizes().vec() == want, weights, ": '", peft_name, "' has shape ",
                    shape_str(t.sizes()), ", expected ", shape_str(want), " (r=", r, ", ", module,
                    " is [", out, ", ", in, "] in ", base_dir_,
                    "/config.json); an adapter for another model?");
        modules.insert(module);
    }
    for (const std::string& m : modules)
        deltas_[m + ".weight"] = Delta{lora::lora_name(m, 'A'), lora::lora_name(m, 'B')};

    // Every layer the config targets must have its tensors (unless it names a subset of layers).
    if (non_empty(raw, "layers_to_transform")) return;
    std::vector<std::string> kinds = adapter_.config.target_modules;
    const std::vector<std::string>& projections = model::quantized_projection_names();
    if (kinds.size() == 1 && kinds[0] == "all-linear") kinds = projections;
    for (const std::string& kind : kinds) {
        if (std::find(projections.begin(), projections.end(), kind) == projections.end()) continue;
        for (const auto& [module, shape] : outs_ins) {
            if (!module.ends_with(std::string(".") + kind)) continue;
            QLORA_CHECK(modules.count(module) != 0, weights, ": missing '",
                        lora::lora_name(module, 'A'), "' (adapter_config.json targets ", kind,
                        " and ", base_dir_, " has ", config_.num_hidden_layers, " layers)");
        }
    }
}

std::string MergedView::describe() const {
    std::ostringstream out;
    out << "merging " << adapter_dir_ << " (r=" << adapter_.config.r
        << ", lora_alpha=" << adapter_.config.lora_alpha
        << (adapter_.config.use_rslora ? ", rsLoRA" : "") << ", scale " << scale() << ", "
        << deltas_.size() << " modules) into ";
    if (merge_base_ == MergeBase::kFp) {
        out << "the original weights of " << base_dir_ << " (--merge-base fp)";
    } else {
        out << (base_is_4bit_ ? "the dequantized 4-bit weights of " : "deq(NF4(W0)) of ")
            << base_dir_ << ": " << quant::quant_type_name(quant_.options.type) << ", blocksize "
            << quant_.options.blocksize << ", double quant "
            << (quant_.options.double_quant ? "on" : "off")
            << (quant_.dtype ? std::string(", from ") + dtype_name(*quant_.dtype) : std::string())
            << " (" << quant_.source << ")";
    }
    return out.str();
}

bool MergedView::has_adapter(const std::string& weight_name) const {
    return deltas_.count(weight_name) != 0;
}

c10::ScalarType MergedView::base_dtype(const std::string& name) const {
    const std::string stored =
        untied_lm_head_ && name == "lm_head.weight" ? "model.embed_tokens.weight" : name;
    QLORA_CHECK(shapes_.count(name) != 0, base_dir_, ": no tensor '", name,
                "' in the merged checkpoint");
    if (gguf_) return at::kFloat;  // what its blocks dequantize to
    if (base_is_4bit_ && io::is_bnb_4bit_weight(*files_, stored))
        return io::read_bnb_4bit(*files_, stored).dtype();
    return files_->info(stored).dtype;
}

at::Tensor MergedView::base_weight(const std::string& name) const {
    const std::string stored =
        untied_lm_head_ && name == "lm_head.weight" ? "model.embed_tokens.weight" : name;
    if (base_is_4bit_ && io::is_bnb_4bit_weight(*files_, stored)) {
        return io::read_bnb_4bit(*files_, stored).dequantize(at::kFloat);
    }
    at::Tensor w = gguf_ ? gguf_->load(stored) : files_->load(stored);
    if (merge_base_ == MergeBase::kNf4 && !base_is_4bit_ && model::is_quantized_weight_name(name)) {
        if (quant_.dtype) w = w.to(*quant_.dtype);
        return quant::Quant4Tensor::quantize(w, quant_.options, name).dequantize(at::kFloat);
    }
    return w.to(at::kFloat);
}

at::Tensor MergedView::tensor(const std::string& name) const {
    QLORA_CHECK(shapes_.count(name) != 0, base_dir_, ": no tensor '", name,
                "' in the merged checkpoint");
    at::Tensor w = base_weight(name).contiguous();
    QLORA_CHECK(w.sizes().vec() == shapes_.at(name), base_dir_, ": '", name, "' has shape ",
                shape_str(w.sizes()), ", expected ", shape_str(shapes_.at(name)),
                " from config.json");
    auto it = deltas_.find(name);
    if (it == deltas_.end()) return w;
    const at::Tensor& a = adapter_.tensors.at(it->second.a_name);  // [r, in]
    const at::Tensor& b = adapter_.tensors.at(it->second.b_name);  // [out, r]
    return w.addmm_(b.to(at::kFloat), a.to(at::kFloat), /*beta=*/1.0, /*alpha=*/scale());
}

}  // namespace qlora::exporting
