// GGUF <-> HF names through the Llama layout table (model/llama_layout.h, which follows llama.cpp's
// gguf-py tensor_mapping for MODEL_ARCH.LLAMA); the permutation is a reshape and a transpose.
#include "model/gguf_names.h"

#include <string_view>
#include <vector>

#include "model/llama_layout.h"

namespace qlora::model {

std::optional<std::string> hf_name_for_gguf(const std::string& gguf_name) {
    int64_t layer = -1;
    std::string pattern = gguf_name;  // the name with its layer index replaced by "{}"
    if (gguf_name.starts_with("blk.")) {
        const size_t dot = gguf_name.find('.', 4);
        if (dot == std::string::npos || dot == 4 || dot > 10) return std::nullopt;
        const std::string digits = gguf_name.substr(4, dot - 4);
        if (digits.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
        layer = std::stoll(digits);
        pattern = "blk.{}" + gguf_name.substr(dot);
    }
    for (const TensorRole& r : llama_roles()) {
        if (r.per_layer == (layer >= 0) && r.gguf_pattern == pattern)
            return fill_layer(r.hf_pattern, layer);
    }
    return std::nullopt;
}

int64_t rope_permute_heads(const std::string& hf_name, int64_t n_heads, int64_t n_kv_heads) {
    for (const TensorRole& r : llama_roles()) {
        const std::string_view suffix = r.hf_pattern.substr(r.hf_pattern.find('}') + 1);
        if (r.rope == RopePermute::kNone || !std::string_view(hf_name).ends_with(suffix)) continue;
        return r.rope == RopePermute::kQueryHeads ? n_heads : n_kv_heads;
    }
    return 0;
}

at::Tensor permute_rope_rows(const at::Tensor& w, int64_t n_heads) {
    TORCH_CHECK(w.dim() >= 1 && w.size(0) % (2 * n_heads) == 0, "permute_rope_rows: ", w.size(0),
                " rows do not split into ", n_heads, " heads of an even size");
    std::vector<int64_t> split = {n_heads, 2, w.size(0) / n_heads / 2};
    for (int64_t i = 1; i < w.dim(); ++i) split.push_back(w.size(i));
    return w.reshape(split).transpose(1, 2).reshape(w.sizes()).contiguous();
}

at::Tensor unpermute_rope_rows(const at::Tensor& w, int64_t n_heads) {
    TORCH_CHECK(w.dim() >= 1 && w.size(0) % (2 * n_heads) == 0, "unpermute_rope_rows: ", w.size(0),
                " rows do not split into ", n_heads, " heads of an even size");
    std::vector<int64_t> split = {n_heads, w.size(0) / n_heads / 2, 2};
    for (int64_t i = 1; i < w.dim(); ++i) split.push_back(w.size(i));
    return w.reshape(split).transpose(1, 2).reshape(w.sizes()).contiguous();
}

}  // namespace qlora::model
