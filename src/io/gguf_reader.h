// GGUF files (ggml's docs/gguf.md), versions 2 and 3: "GGUF", version, tensor and key-value counts,
// typed key-value metadata (scalars, strings, arrays, arrays of arrays), tensor infos (name, ggml
// dims, ggml type, offset), padding to general.alignment, then the tensor data. The reader
// validates the whole header against the file size before allocating anything a count or length
// claims, and maps the file read-only; every error is one line naming the file and the field.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "quant/ggml_quants.h"

namespace qlora::io {

// gguf_type numbers of metadata values (ggml's gguf.h).
enum class GgufValueType : uint32_t {
    kUint8 = 0,
    kInt8 = 1,
    kUint16 = 2,
    kInt16 = 3,
    kUint32 = 4,
    kInt32 = 5,
    kFloat32 = 6,
    kBool = 7,
    kString = 8,
    kArray = 9,
    kUint64 = 10,
    kInt64 = 11,
    kFloat64 = 12,
};
const char* gguf_value_type_name(GgufValueType t);  // "uint32", "string", "array", ...

// Limits beyond which a file is taken as corrupt rather than read (ggml's gguf.cpp refuses the
// same shapes: at most 4 dims, names shorter than 64 bytes).
inline constexpr uint32_t kGgufMaxDims = 4;
inline constexpr uint64_t kGgufMaxNameBytes = 63;
inline constexpr uint64_t kGgufMaxKeyBytes = 65535;
inline constexpr int kGgufMaxArrayDepth = 8;

// One metadata value. Numeric arrays keep their little-endian bytes (a file of N one-byte values
// costs N bytes here, not N objects); string arrays and arrays of arrays hold their elements.
class GgufValue {
  public:
    GgufValueType type() const { return type_; }
    bool is_array() const { return type_ == GgufValueType::kArray; }
    bool is_integer() const;  // any of the 8 integer types (not bool)
    bool is_float() const {
        return type_ == GgufValueType::kFloat32 || type_ == GgufValueType::kFloat64;
    }

    // Scalars. Each throws qlora::Error prefixed by `what` (e.g. "model.gguf: key 'x'") when the
    // value has another type or, for integers, does not fit.
    int64_t as_int(const std::string& what) const;
    uint64_t as_uint(const std::string& what) const;
    double as_float(const std::string& what) const;  // float32/float64 (an integer converts)
    bool as_bool(const std::string& what) const;
    const std::string& as_string(const std::string& what) const;

    // Arrays: element type, length, elements.
    GgufValueType element_type() const { return element_type_; }
    uint64_t size() const;
    std::vector<std::string> strings(const std::string& what) const;  // a string array
    std::vector<int64_t> ints(const std::string& what) const;         // an integer array
    std::vector<double> floats(const std::string& what) const;        // a float (or int) array
    const std::vector<GgufValue>& arrays() const { return arrays_; }  // an array of arrays
    const std::vector<std::string>& string_elements() const { return strings_; }

    // A short readable form for messages: 42, "llama", [string x 49152].
    std::string describe() const;

  private:
    friend class GgufParser;
    GgufValueType type_ = GgufValueType::kUint8;
    GgufValueType element_type_ = GgufValueType::kUint8;
    uint64_t bits_ = 0;   // a scalar number or bool, little-endian, zero-extended
    std::string string_;  // a string scalar
    std::string raw_;     // a numeric array's bytes
    uint64_t count_ = 0;  // a numeric array's length
    std::vector<std::string> strings_;
    std::vector<GgufValue> arrays_;
};

struct GgufTensorInfo {
    std::string name;
    quant::GgmlType type = quant::GgmlType::kF32;
    std::vector<int64_t> ne;  // ggml order: ne[0] is the row (fastest-varying) length
    uint64_t offset = 0;      // from the start of the data section
    uint64_t nbytes = 0;
    // torch order (rows last): ne reversed, e.g. a [n_out, n_in] weight has ne = {n_in, n_out}.
    std::vector<int64_t> torch_shape() const { return {ne.rbegin(), ne.rend()}; }
    int64_t numel() const;
};

class GgufReader {
  public:
    explicit GgufReader(const std::string& path);

    const std::string& path() const { return path_; }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // file offset of the data section

    // Metadata, in file order.
    const std::vector<std::string>& keys() const { return keys_; }
    bool contains(const std::string& key) const { return metadata_.count(key) != 0; }
    const GgufValue* find(const std::string& key) const;
    // Throws naming the file and the key when it is missing.
    const GgufValue& get(const std::string& key) const;
    // Typed getters: "<path>: key '<key>'" prefixes any type error.
    std::string get_string(const std::string& key) const;
    uint64_t get_uint(const std::string& key) const;
    double get_float(const std::string& key) const;
    bool get_bool(const std::string& key) const;
    std::string key_context(const std::string& key) const;

    // Tensors, in file order.
    const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
    bool has_tensor(const std::string& name) const { return tensor_index_.count(name) != 0; }
    const GgufTensorInfo& tensor(const std::string& name) const;
    // The tensor's bytes in the mapping (valid while the reader lives).
    const uint8_t* tensor_data(const std::string& name) const;
    // Zero-copy uint8 view of the bytes; keeps the mapping alive.
    at::Tensor tensor_bytes(const std::string& name) const;
    // Decoded to float32 in torch order (quant::ggml_decode); an undecodable type is an error
    // naming the file, the tensor and its type.
    at::Tensor dequantize(const std::string& name) const;

  private:
    struct Mapping;
    std::string path_;
    std::shared_ptr<const Mapping> mapping_;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::string> keys_;
    std::map<std::string, GgufValue> metadata_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

}  // namespace qlora::io
