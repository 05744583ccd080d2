// safetensors files: an 8-byte little-endian header length, a JSON header (name -> dtype, shape,
// byte range; "__metadata__" -> string map), then the raw data. The reader validates the whole
// header before touching data and maps the file read-only; the writers are atomic (temp file +
// rename).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace qlora::io {

struct TensorInfo {
    std::string name;
    c10::ScalarType dtype = c10::ScalarType::Float;
    std::vector<int64_t> shape;
    uint64_t begin = 0, end = 0;  // byte range inside the data section (after the header)
};

// "F32" <-> kFloat, "F16" <-> kHalf, "BF16" <-> kBFloat16, "F64" <-> kDouble, "U8" <-> kByte,
// "I8" <-> kChar, "I16" <-> kShort, "I32" <-> kInt, "I64" <-> kLong, "BOOL" <-> kBool, plus
// "U16"/"U32"/"U64" and "F8_E4M3"/"F8_E5M2". An unknown code throws, prefixed by
// context_for_errors.
c10::ScalarType safetensors_dtype(const std::string& code, const std::string& context_for_errors);
// Throws for a dtype safetensors cannot hold (complex, quantized, ...).
std::string safetensors_dtype_code(c10::ScalarType t);

// The header refuses claims above this, as the Python package does: a larger one is a corrupt file.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

// One file, mapped read-only.
class SafetensorsReader {
  public:
    explicit SafetensorsReader(const std::string& path);

    const std::string& path() const { return path_; }
    std::vector<std::string> names() const { return names_; }  // in data-offset order
    bool contains(const std::string& name) const { return infos_.count(name) != 0; }
    // Throws qlora::Error naming the file and the tensor when it is missing.
    const TensorInfo& info(const std::string& name) const;
    // Owned, contiguous CPU copy.
    at::Tensor load(const std::string& name) const;
    // Zero-copy CPU view into the mapping. Read-only: the pages are mapped PROT_READ, so writing
    // through it crashes. The view keeps the mapping alive, even past the reader's lifetime.
    at::Tensor view(const std::string& name) const;
    const std::map<std::string, std::string>& metadata() const {
        return metadata_;
    }                                                      // "__metadata__"
    uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

  private:
    struct Mapping;
    std::string path_;
    std::shared_ptr<const Mapping> mapping_;
    uint64_t data_offset_ = 0;
    std::map<std::string, TensorInfo> infos_;
    std::vector<std::string> names_;
    std::map<std::string, std::string> metadata_;
};

// A Hugging Face model/adapter folder: <stem>.safetensors, or shards listed by
// <stem>.safetensors.index.json ("weight_map"). The single file wins when both exist (as in
// transformers). `folder` may also be the path of one .safetensors file. Tensors load one at a
// time; shard readers are opened (and their headers validated) on first use. Thread-safe.
class SafetensorsFolder {
  public:
    explicit SafetensorsFolder(const std::string& folder, const std::string& stem = "model");

    std::vector<std::string> names() const { return names_; }  // sorted by name
    bool contains(const std::string& name) const { return shard_of_.count(name) != 0; }
    const TensorInfo& info(const std::string& name) const;
    at::Tensor load(const std::string& name) const;
    at::Tensor view(const std::string& name) const;
    // Full paths of the safetensors files, sorted, each once.
    std::vector<std::string> files() const { return files_; }
    const std::string& folder() const { return folder_; }

  private:
    const SafetensorsReader& reader_for(const std::string& name) const;

    std::string folder_;
    std::map<std::string, std::string> shard_of_;  // tensor name -> full path of its file
    std::vector<std::string> names_;
    std::vector<std::string> files_;
    std::unique_ptr<std::mutex> mutex_ = std::make_unique<std::mutex>();  // a pointer: movable
    mutable std::map<std::string, std::unique_ptr<SafetensorsReader>> readers_;  // by full path
};

// Writes header (8-byte little-endian length + JSON, padded with spaces to a multiple of 8), then
// the data in the given order. Atomic: temp file + fsync + rename. Tensors may live on any device
// and be non-contiguous; names must be unique and not "__metadata__".
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Streams tensors into shards of at most max_shard_bytes of tensor data (a larger tensor gets a
// shard of its own), named as Hugging Face does: <stem>-00001-of-0000N.safetensors plus
// <stem>.safetensors.index.json ({"metadata": {"total_size": N}, "weight_map": {...}}); a single
// <stem>.safetensors when everything fits in one shard. Holds at most one shard's tensors in memory
// (owned copies, so callers may reuse their tensors after add()). Shards are written under
// temporary names and renamed by finish(), which also removes files of an earlier save with the
// same stem.
class ShardedSafetensorsWriter {
  public:
    ShardedSafetensorsWriter(std::string folder, std::string stem = "model",
                             uint64_t max_shard_bytes = 5'000'000'000ULL,
                             std::map<std::string, std::string> metadata = {{"format", "pt"}});
    ShardedSafetensorsWriter(const ShardedSafetensorsWriter&) = delete;
    ShardedSafetensorsWriter& operator=(const ShardedSafetensorsWriter&) = delete;
    ~ShardedSafetensorsWriter();  // removes pending shards when finish() was not called

    void add(const std::string& name, const at::Tensor& t);
    // Returns the full paths of the files written (shards, then the index when sharded).
    std::vector<std::string> finish();

  private:
    void flush_shard();

    std::string folder_;
    std::string stem_;
    uint64_t max_shard_bytes_;
    std::map<std::string, std::string> metadata_;
    std::vector<std::pair<std::string, at::Tensor>> current_;  // the open shard's tensors
    uint64_t current_bytes_ = 0;
    uint64_t total_bytes_ = 0;
    std::vector<std::string> pending_files_;               // flushed shards, temporary names
    std::vector<std::vector<std::string>> pending_names_;  // tensor names per flushed shard
    std::set<std::string> seen_;                           // every name added so far
    bool finished_ = false;
};

}  // namespace qlora::io
