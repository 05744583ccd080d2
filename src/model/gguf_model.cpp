// Tensors are decoded one at a time from the mapping, so loading holds at most one float32 copy of
// a tensor beyond the model itself.
#include "model/gguf_model.h"

#include "core/error.h"
#include "model/gguf_config.h"
#include "model/gguf_names.h"

namespace qlora::model {

GgufLlamaFile::GgufLlamaFile(const std::string& path)
    : reader_(path),
      hf_config_(gguf_hf_config(reader_)),
      config_(LlamaConfig::from_json(hf_config_, path)) {
    for (const io::GgufTensorInfo& t : reader_.tensors()) {
        const std::optional<std::string> hf = hf_name_for_gguf(t.name);
        QLORA_CHECK(
            hf.has_value(), path, ": tensor '", t.name,
            "' has no place in a llama model (expected token_embd, blk.N.{attn_norm, attn_q, "
            "attn_k, "
            "attn_v, attn_output, ffn_norm, ffn_gate, ffn_up, ffn_down}, output_norm, output)");
        if (hf->starts_with("model.layers.")) {
            const int64_t layer = std::stoll(hf->substr(13));
            QLORA_CHECK(layer < config_.num_hidden_layers, path, ": tensor '", t.name,
                        "' is beyond llama.block_count (", config_.num_hidden_layers, ")");
        }
        hf_names_.push_back(*hf);
        gguf_name_of_[*hf] = t.name;
    }
}

const std::string& GgufLlamaFile::gguf_name(const std::string& hf_name) const {
    auto it = gguf_name_of_.find(hf_name);
    QLORA_CHECK(it != gguf_name_of_.end(), reader_.path(), ": no tensor for '", hf_name, "'");
    return it->second;
}

at::Tensor GgufLlamaFile::load(const std::string& hf_name) const {
    at::Tensor t = reader_.dequantize(gguf_name(hf_name));
    const int64_t heads =
        rope_permute_heads(hf_name, config_.num_attention_heads, config_.num_key_value_heads);
    if (heads > 0) {
        QLORA_CHECK(t.size(0) % (2 * heads) == 0, reader_.path(), ": tensor '", gguf_name(hf_name),
                    "' has ", t.size(0), " rows, which do not split into ", heads,
                    " heads of an even size");
        t = unpermute_rope_rows(t, heads);
    }
    return t;
}

Llama load_llama_gguf(const std::string& path, const LoadOptions& options) {
    GgufLlamaFile file(path);
    return load_llama_tensors(
        file.config(), file.hf_names(), [&](const std::string& name) { return file.load(name); },
        options, path);
}

}  // namespace qlora::model
