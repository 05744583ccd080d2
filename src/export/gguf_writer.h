// A streaming GGUF v3 writer (ggml's docs/gguf.md): header, typed metadata, tensor infos, then
// tensor data, each tensor aligned to general.alignment. Metadata and infos are kept until the
// first tensor's data arrives (sizes come from shape and type), then data streams one tensor at a
// time, so a model is never held whole. The file is written under a temporary name and renamed
// by finish(): a writer destroyed before finish() leaves nothing behind.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "quant/ggml_quants.h"

namespace qlora::io {
class AtomicFileWriter;
}

namespace qlora::exporting {

// The block formats live in quant/ggml_quants.h, shared with GGUF import.
using quant::ggml_block_size;
using quant::ggml_decode;
using quant::ggml_encode;
using quant::ggml_row_bytes;
using quant::ggml_type_name;
using quant::GgmlType;

inline constexpr char kGgufMagic[4] = {'G', 'G', 'U', 'F'};
inline constexpr uint32_t kGgufVersion = 3;
inline constexpr uint32_t kGgufDefaultAlignment = 32;

// gguf_type numbers of the metadata values we write (ggml's gguf.h; the 8/16/64-bit kinds unused).
struct GgufValueType {
    static constexpr uint32_t kUint32 = 4, kInt32 = 5, kFloat32 = 6, kBool = 7, kString = 8,
                              kArray = 9;
};

class GgufWriter {
  public:
    // Creates the temporary file beside `path` at once (an unwritable folder fails here).
    explicit GgufWriter(std::string path, uint32_t alignment = kGgufDefaultAlignment);
    GgufWriter(const GgufWriter&) = delete;
    GgufWriter& operator=(const GgufWriter&) = delete;
    ~GgufWriter();

    // Metadata, in the order added; keys must be unique. general.alignment is added for the
    // caller's alignment unless already present.
    void add_uint32(const std::string& key, uint32_t v);
    void add_int32(const std::string& key, int32_t v);
    void add_float32(const std::string& key, float v);
    void add_bool(const std::string& key, bool v);
    void add_string(const std::string& key, const std::string& v);
    void add_string_array(const std::string& key, const std::vector<std::string>& v);
    void add_float32_array(const std::string& key, const std::vector<float>& v);
    void add_int32_array(const std::string& key, const std::vector<int32_t>& v);

    // `shape` in torch order (outermost first, row last); the file gets ggml's order (ne[0] = row
    // length first). Returns the tensor's data size in bytes.
    uint64_t add_tensor_info(const std::string& name, const std::vector<int64_t>& shape,
                             GgmlType type);
    // The next tensor's bytes, in add_tensor_info order, exactly its size. The first call writes
    // the header, metadata and infos; no metadata or info can be added after it.
    void write_tensor_data(const std::string& name, const void* data, uint64_t bytes);
    void write_tensor_data(const std::string& name, const at::Tensor& bytes);  // uint8, contiguous

    // Checks every tensor was written, then fsyncs and renames into place. Returns the file size.
    uint64_t finish();

    const std::string& path() const { return path_; }
    uint64_t tensor_count() const { return infos_.size(); }

  private:
    struct Info {
        std::string name;
        std::vector<int64_t> shape;  // torch order
        GgmlType type;
        uint64_t bytes;
        uint64_t offset;  // from the start of the data section
    };
    void begin_kv(const std::string& key, uint32_t value_type);
    template <typename T>
    void add_scalar(const std::string& key, uint32_t value_type, T v);
    void begin_array(const std::string& key, uint32_t element_type, uint64_t count);
    void write_header();
    void pad_to_alignment();

    std::string path_;
    uint32_t alignment_;
    std::unique_ptr<io::AtomicFileWriter> file_;
    std::string kv_bytes_;  // serialized metadata, until the header is written
    uint64_t kv_count_ = 0;
    std::set<std::string> keys_;
    std::vector<Info> infos_;
    std::set<std::string> names_;
    uint64_t data_end_ = 0;  // next free offset in the data section
    bool header_written_ = false;
    size_t next_tensor_ = 0;
};

}  // namespace qlora::exporting
