// The folder is filled in a temporary sibling (io::AtomicDir) and renamed into place at the end;
// tensors stream one at a time from the mapped GGUF into the shard writer.
#include "convert/gguf_to_hf.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/gguf_model.h"
#include "tokenizer/gguf_tokenizer_json.h"

namespace qlora::convert {
namespace fs = std::filesystem;
namespace {

using nlohmann::json;

void check_paths(const GgufToHfOptions& o) {
    QLORA_CHECK(!o.in_file.empty() && !o.out_dir.empty(),
                "GGUF conversion needs an input .gguf file and an output folder");
    QLORA_CHECK(fs::is_regular_file(o.in_file), "input ", o.in_file,
                " is not a file (expected a .gguf file)");
    QLORA_CHECK(!fs::exists(o.out_dir), "output ", o.out_dir,
                " already exists; choose a new folder (conversion never overwrites)");
    const fs::path in = fs::weakly_canonical(o.in_file);
    const fs::path out = fs::weakly_canonical(o.out_dir);
    // out == in, or out below in (a path through the input file): the output would replace or
    // sit inside the input. (out above in cannot happen: out does not exist.)
    const bool inside =
        std::mismatch(in.begin(), in.end(), out.begin(), out.end()).first == in.end();
    QLORA_CHECK(!inside, "output ", o.out_dir, " would be written over or inside the input ",
                o.in_file, "; choose a folder elsewhere");
    QLORA_CHECK(o.max_shard_bytes > 0, "the shard size must be > 0");
}

// transformers' GenerationConfig.from_model_config: the special ids.
json generation_config(const json& config) {
    json g = {{"_from_model_config", true}};
    for (const char* key : {"bos_token_id", "eos_token_id", "pad_token_id"}) {
        if (config.contains(key)) g[key] = config[key];
    }
    return g;
}

std::string dump(const json& j) {
    return j.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace

void write_gguf_side_files(const model::GgufLlamaFile& file, const tokenizer::HfTokenizerJson& tok,
                           const std::string& dir) {
    const fs::path root(dir);
    io::write_file_atomic((root / "generation_config.json").string(),
                          dump(generation_config(file.hf_config())));
    io::write_file_atomic((root / "tokenizer.json").string(), dump(tok.tokenizer));
    io::write_file_atomic((root / "tokenizer_config.json").string(), dump(tok.tokenizer_config));
}

GgufToHfSummary convert_gguf_to_hf(const GgufToHfOptions& o) {
    check_paths(o);
    const model::GgufLlamaFile file(o.in_file);
    const tokenizer::HfTokenizerJson tok =
        tokenizer::gguf_hf_tokenizer(file.reader());  // fails before any writing

    io::AtomicDir dir(o.out_dir);
    GgufToHfSummary summary;
    {
        io::ShardedSafetensorsWriter writer(dir.path(), "model", o.max_shard_bytes);
        for (const std::string& name : file.hf_names()) {
            at::Tensor t = file.load(name);
            summary.tensor_bytes += static_cast<uint64_t>(t.nbytes());
            writer.add(name, t);
            ++summary.tensors;
        }
        writer.finish();
    }
    const fs::path root(dir.path());
    io::write_file_atomic((root / "config.json").string(), dump(file.hf_config()));
    write_gguf_side_files(file, tok, dir.path());
    for (const auto& entry : fs::directory_iterator(root)) {
        summary.files.push_back(entry.path().filename().string());
    }
    std::sort(summary.files.begin(), summary.files.end());
    dir.commit();
    log_info("wrote ", o.out_dir, ": ", summary.tensors, " tensors (",
             summary.tensor_bytes / (1024 * 1024), " MiB float32), ", summary.files.size(),
             " files");
    return summary;
}

}  // namespace qlora::convert
