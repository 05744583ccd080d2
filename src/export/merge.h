// MergedView: a lazy merged view of a Hugging Face Llama folder (dense safetensors or the
// bitsandbytes-4bit layout qlora-quantize writes) or a llama.cpp GGUF (its blocks dequantized,
// model/gguf_model.h) plus a PEFT LoRA adapter, read one tensor at a time as W = deq(NF4(W0)) +
// s·B·A (the weights the adapter was trained against) or W0 + s·B·A.
#pragma once

#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "lora/peft_adapter.h"
#include "model/llama_config.h"
#include "quant/quant4_tensor.h"

namespace qlora::model {
class GgufLlamaFile;
}

namespace qlora::exporting {

// What the adapter's deltas are added to: the 4-bit round trip of the base (as trained) or the
// original 16/32-bit base weights.
enum class MergeBase { kNf4, kFp };
MergeBase parse_merge_base(const std::string& name);  // "nf4" | "fp"
std::string merge_base_name(MergeBase base);

// The quantization a base was under while the adapter trained, and where that was read.
struct TrainedQuant {
    bool enabled = true;  // false: the run trained over a dense base (quant.enabled: false)
    quant::Quant4Options options;
    // The weights were rounded to this dtype before quantizing (a bf16/fp16 run); unset: as stored.
    std::optional<c10::ScalarType> dtype;
    std::string
        source;  // ".../qlora_adapter.json", "the base's quantization_config" or "defaults; ..."
};

// What the adapter's qlora_adapter.json (lora/adapter_metadata.h) says the base was; without one
// (an adapter PEFT saved) the documented defaults: nf4, blocksize 64, double quant, as stored.
TrainedQuant find_trained_quant(const std::string& adapter_dir);

struct MergeOptions {
    std::optional<MergeBase> base;  // unset: nf4, or fp when the run trained unquantized
    std::optional<quant::Quant4Options> quant;  // unset: find_trained_quant / the 4-bit base's own
};

class MergedView {
  public:
    // Reads config.json and the adapter and checks every lora_A/lora_B against the base's shapes;
    // qlora::Error naming the file, the tensor, what was expected and what was found otherwise.
    MergedView(std::string base_dir, std::string adapter_dir, const MergeOptions& options = {});

    // HF names in model order (embeddings, layer by layer, final norm, lm_head when untied).
    const std::vector<std::string>& names() const { return names_; }
    // The merged tensor as an owned float32 CPU tensor; loads and merges this one tensor only.
    at::Tensor tensor(const std::string& name) const;
    // The dtype the base stores `name` in (a 4-bit weight: the dtype its quant_state records).
    c10::ScalarType base_dtype(const std::string& name) const;
    // True when the adapter has lora_A/lora_B for this weight
    // ("model.layers.0.mlp.up_proj.weight").
    bool has_adapter(const std::string& weight_name) const;

    // The base's config; tie_word_embeddings is false when an lm_head adapter unties lm_head.
    const model::LlamaConfig& config() const { return config_; }
    const lora::PeftAdapter& adapter() const { return adapter_; }
    double scale() const { return adapter_.config.scale(); }
    MergeBase merge_base() const { return merge_base_; }
    // The 4-bit settings of deq(NF4(W0)) (and of an hf-nf4 requantization).
    const TrainedQuant& quant() const { return quant_; }
    bool base_is_4bit() const { return base_is_4bit_; }
    // The base folder, or the .gguf file.
    const std::string& base_dir() const { return base_dir_; }
    // The GGUF the base is read from; nullptr for a Hugging Face folder.
    const model::GgufLlamaFile* gguf() const { return gguf_.get(); }
    const std::string& adapter_dir() const { return adapter_dir_; }
    // One line for logs: what goes into what, with the quant settings and their source.
    std::string describe() const;

  private:
    struct Delta {
        std::string a_name, b_name;  // PEFT names in adapter_.tensors
    };
    void resolve_quant(const MergeOptions& options);
    void add_layer_names();  // embeddings, layers, final norm with their shapes from config.json
    void check_adapter();
    void check_base_tensors() const;
    at::Tensor base_weight(const std::string& name) const;

    std::string base_dir_;
    std::string adapter_dir_;
    model::LlamaConfig config_;
    std::optional<io::SafetensorsFolder> files_;        // a Hugging Face base folder
    std::shared_ptr<const model::GgufLlamaFile> gguf_;  // or a GGUF base
    lora::PeftAdapter adapter_;
    MergeBase merge_base_ = MergeBase::kNf4;
    TrainedQuant quant_;
    bool base_is_4bit_ = false;
    bool untied_lm_head_ = false;
    std::vector<std::string> names_;
    std::map<std::string, std::vector<int64_t>>
        shapes_;                           // every name -> its shape from config.json
    std::map<std::string, Delta> deltas_;  // weight name -> its adapter pair
};

}  // namespace qlora::exporting
