// Llama -> GGUF v3 for llama.cpp, as its convert_hf_to_gguf.py (LlamaModel) writes it: llama.*
// hyperparameters, the vocabulary (tokenizer.ggml.*: SentencePiece "llama", or byte-level BPE
// "gpt2" from tokenizer.json), tensors renamed to
// token_embd / blk.N.* / output_norm / output with Q and K rows permuted back to llama.cpp's
// interleaved RoPE order, in F16, Q8_0 or Q4_0. Tensors stream one at a time from load_tensor.
//
// Tensor types (what llama.cpp's converter and llama-quantize pick, within the types we write):
//   1-D tensors (norms, rope_freqs)       F32 always
//   f16                                   every matrix F16
//   q8_0                                  every matrix Q8_0, token_embd and output included
//   q4_0                                  matrices Q4_0; output.weight (token_embd when tied) Q8_0:
//                                         llama-quantize gives it Q6_K, or Q8_0 when its rows are
//                                         not a multiple of 256; we have no Q6_K, so always Q8_0
//   rows not a multiple of 32             F16 (the converter's fallback; llama-quantize refuses)
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "export/gguf_writer.h"
#include "model/gguf_names.h"
#include "model/llama_config.h"

namespace qlora::exporting {

enum class GgufType { kF16, kQ8_0, kQ4_0 };

// "f16" | "q8_0" | "q4_0"; qlora::Error naming the accepted values otherwise.
GgufType parse_gguf_type(const std::string& s);
const char* gguf_type_name(GgufType t);  // "f16", "q8_0", "q4_0"
// general.file_type: llama.cpp's LLAMA_FTYPE_MOSTLY_F16 = 1, _Q4_0 = 2, _Q8_0 = 7.
uint32_t gguf_file_type(GgufType t);

struct GgufExportInputs {
    model::LlamaConfig config;
    std::string tokenizer_model;  // the model folder, a tokenizer.json or a tokenizer.model
    std::vector<std::string>
        tensor_names;  // Hugging Face names, model.layers.0.self_attn.q_proj.weight
    std::function<at::Tensor(const std::string&)> load_tensor;  // HF name -> float32 CPU tensor
    GgufType type = GgufType::kF16;
    std::string out_file;
    std::string model_name = "llama";
    bool overwrite = false;
};

struct GgufExportSummary {
    int64_t tensors = 0;
    int64_t bytes = 0;                               // file size
    std::map<std::string, int64_t> tensors_by_type;  // "F32" -> 11, "Q4_0" -> 30, ...
    std::vector<std::string> fallbacks;              // matrices kept F16: rows not a multiple of 32
    std::string out_file;
};

// tokenizer.ggml.* as convert_hf_to_gguf builds it, one entry per id up to config.vocab_size.
// SentencePiece (_create_vocab_sentencepiece, model "llama"): ids past the model are
// "[PAD<id>]", score -10000, UNUSED; tokenizer_config.json's added_tokens_decoder entries
// override theirs (score -1000, CONTROL when special, else USER_DEFINED).
// tokenizer.json BPE (_set_vocab_gpt2, model "gpt2"): byte-level token strings, no scores, the
// merges, ids no token has "[PAD<id>]" UNUSED, added tokens CONTROL when special (or looking
// special, like <|...|>) else USER_DEFINED; `pre` is llama.cpp's name for the pre-tokenizer.
// Both: the chat template(s) of tokenizer_config.json (or chat_template.jinja).
struct GgufVocab {
    std::string model = "llama";  // tokenizer.ggml.model
    std::string pre = "default";  // tokenizer.ggml.pre
    std::vector<std::string> tokens;
    std::vector<float> scores;        // empty for "gpt2"
    std::vector<std::string> merges;  // "left right", rank order ("gpt2" only)
    // ("", template) for tokenizer.chat_template, (name, template) for tokenizer.chat_template.NAME
    std::vector<std::pair<std::string, std::string>> chat_templates;
    std::vector<int32_t> types;  // NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6
    int64_t bos_id = -1, eos_id = -1, unk_id = -1, pad_id = -1;  // -1: not written
    bool add_bos = true;   // tokenizer_config.json's add_bos_token, else llama's default
    bool add_eos = false;  // tokenizer_config.json's add_eos_token, else false
};
// `tokenizer_model`: a model folder (tokenizer.json first, else tokenizer.model, and maybe
// tokenizer_config.json), or one of those files, or a .gguf (its tokenizer.ggml.* as they are).
// Special ids: the tokenizer's (tokenizer_config.json first), else config's.
GgufVocab load_gguf_vocab(const std::string& tokenizer_model, const model::LlamaConfig& config);

// llama.cpp's tokenizer.ggml.pre for a tokenizer.json "pre_tokenizer" section: "llama-bpe"
// (Llama 3's Split regex), "qwen2" (the same with single digits), "smollm" (Digits + ByteLevel),
// "gpt-2" (ByteLevel's own regex); anything else is an error naming what was found.
std::string llama_cpp_pre_tokenizer(const nlohmann::json& pre_tokenizer, const std::string& source);

// One tensor of the export plan (exposed for tests and for a CLI's --dry-run).
struct GgufTensorPlan {
    std::string gguf_name;       // blk.0.attn_q.weight
    std::string hf_name;         // model.layers.0.self_attn.q_proj.weight ("" when generated)
    std::vector<int64_t> shape;  // torch order, [out, in] for matrices
    GgmlType type = GgmlType::kF32;
    int64_t permute_heads = 0;  // > 0: rows permuted from rotate-half to interleaved RoPE order
};
std::vector<GgufTensorPlan> plan_gguf_tensors(const model::LlamaConfig& config, GgufType type);

// Q/K rows to llama.cpp's interleaved RoPE order and back (model/gguf_names.h).
using model::permute_rope_rows;
using model::unpermute_rope_rows;
// rope_freqs.weight for llama3 rope scaling: [head_dim / 2] per-frequency divisors.
at::Tensor llama3_rope_freqs(const model::LlamaConfig& config);

// Writes in.out_file atomically; on any error nothing is left at out_file (an existing file is
// kept unless overwrite). Errors (qlora::Error) name the file or tensor, expected vs found.
GgufExportSummary export_gguf(const GgufExportInputs& in);

}  // namespace qlora::exporting
