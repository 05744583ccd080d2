// GGUF v3 serialization: little-endian scalars, strings as uint64 length + bytes (no NUL), arrays
// as element type + uint64 count + elements, tensor infos as name, n_dims, ne[] (innermost first),
// ggml type and data offset; zero padding up to the alignment before the data section and after
// every tensor (as gguf-py's GGUFWriter does).
#include "export/gguf_writer.h"

#include <bit>
#include <cstring>

#include "core/error.h"
#include "io/atomic_file.h"

namespace qlora::exporting {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF files are written little-endian");

template <typename T>
void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out.append(s);
}

uint64_t align_up(uint64_t n, uint64_t alignment) {
    return (n + alignment - 1) / alignment * alignment;
}

}  // namespace

GgufWriter::GgufWriter(std::string path, uint32_t alignment)
    : path_(std::move(path)), alignment_(alignment) {
    QLORA_CHECK(alignment_ > 0 && alignment_ % 8 == 0,
                "GGUF alignment must be a positive multiple of 8, got ", alignment_);
    file_ = std::make_unique<io::AtomicFileWriter>(path_);
}

GgufWriter::~GgufWriter() = default;  // an uncommitted AtomicFileWriter removes its temporary file

void GgufWriter::begin_kv(const std::string& key, uint32_t value_type) {
    QLORA_CHECK(!header_written_, path_, ": metadata '", key, "' added after tensor data started");
    QLORA_CHECK(!key.empty(), path_, ": empty metadata key");
    QLORA_CHECK(keys_.insert(key).second, path_, ": metadata key '", key, "' added twice");
    put_string(kv_bytes_, key);
    put<uint32_t>(kv_bytes_, value_type);
    ++kv_count_;
}

void GgufWriter::begin_array(const std::string& key, uint32_t element_type, uint64_t count) {
    begin_kv(key, GgufValueType::kArray);
    put<uint32_t>(kv_bytes_, element_type);
    put<uint64_t>(kv_bytes_, count);
}

template <typename T>
void GgufWriter::add_scalar(const std::string& key, uint32_t value_type, T v) {
    begin_kv(key, value_type);
    put<T>(kv_bytes_, v);
}

void GgufWriter::add_uint32(const std::string& key, uint32_t v) {
    add_scalar(key, GgufValueType::kUint32, v);
}
void GgufWriter::add_int32(const std::string& key, int32_t v) {
    add_scalar(key, GgufValueType::kInt32, v);
}
void GgufWriter::add_float32(const std::string& key, float v) {
    add_scalar(key, GgufValueType::kFloat32, v);
}
void GgufWriter::add_bool(const std::string& key, bool v) {
    add_scalar<uint8_t>(key, GgufValueType::kBool, v ? 1 : 0);
}

void GgufWriter::add_string(const std::string& key, const std::string& v) {
    begin_kv(key, GgufValueType::kString);
    put_string(kv_bytes_, v);
}

void GgufWriter::add_string_array(const std::string& key, const std::vector<std::string>& v) {
    begin_array(key, GgufValueType::kString, v.size());
    for (const auto& s : v) put_string(kv_bytes_, s);
}

void GgufWriter::add_float32_array(const std::string& key, const std::vector<float>& v) {
    begin_array(key, GgufValueType::kFloat32, v.size());
    for (float x : v) put<float>(kv_bytes_, x);
}

void GgufWriter::add_int32_array(const std::string& key, const std::vector<int32_t>& v) {
    begin_array(key, GgufValueType::kInt32, v.size());
    for (int32_t x : v) put<int32_t>(kv_bytes_, x);
}

uint64_t GgufWriter::add_tensor_info(const std::string& name, const std::vector<int64_t>& shape,
                                     GgmlType type) {
    QLORA_CHECK(!header_written_, path_, ": tensor '", name, "' added after tensor data started");
    QLORA_CHECK(!name.empty() && name.size() < 64, path_, ": tensor name '", name,
                "' must have 1..63 bytes (GGML_MAX_NAME)");
    QLORA_CHECK(!shape.empty() && shape.size() <= 4, path_, ": tensor '", name, "' has ",
                shape.size(), " dimensions; GGUF takes 1..4");
    int64_t numel = 1;
    for (int64_t d : shape) {
        QLORA_CHECK(d > 0, path_, ": tensor '", name, "' has a dimension of ", d);
        numel *= d;
    }
    QLORA_CHECK(shape.back() % ggml_block_size(type) == 0, path_, ": tensor '", name, "' rows of ",
                shape.back(), " elements cannot be ", ggml_type_name(type));
    QLORA_CHECK(names_.insert(name).second, path_, ": tensor '", name, "' added twice");
    const uint64_t bytes =
        static_cast<uint64_t>(ggml_row_bytes(type, shape.back()) * (numel / shape.back()));
    infos_.push_back({name, shape, type, bytes, data_end_});
    data_end_ = align_up(data_end_ + bytes, alignment_);
    return bytes;
}

void GgufWriter::write_header() {
    if (keys_.count("general.alignment") == 0) add_uint32("general.alignment", alignment_);
    std::string head;
    head.append(kGgufMagic, 4);
    put<uint32_t>(head, kGgufVersion);
    put<uint64_t>(head, infos_.size());
    put<uint64_t>(head, kv_count_);
    head += kv_bytes_;
    for (const Info& info : infos_) {
        put_string(head, info.name);
        put<uint32_t>(head, static_cast<uint32_t>(info.shape.size()));
        for (auto it = info.shape.rbegin(); it != info.shape.rend(); ++it) put<uint64_t>(head, *it);
        put<uint32_t>(head, static_cast<uint32_t>(info.type));
        put<uint64_t>(head, info.offset);
    }
    file_->write(head);
    kv_bytes_.clear();
    kv_bytes_.shrink_to_fit();
    header_written_ = true;
    pad_to_alignment();
}

void GgufWriter::pad_to_alignment() {
    const uint64_t at = file_->bytes_written();
    const std::string zeros(align_up(at, alignment_) - at, '\0');
    if (!zeros.empty()) file_->write(zeros);
}

void GgufWriter::write_tensor_data(const std::string& name, const void* data, uint64_t bytes) {
    if (!header_written_) write_header();
    QLORA_CHECK(next_tensor_ < infos_.size(), path_, ": data for '", name,
                "' but every declared tensor was already written");
    const Info& info = infos_[next_tensor_];
    QLORA_CHECK(info.name == name, path_, ": expected the data of tensor '", info.name,
                "' next (declaration order), got '", name, "'");
    QLORA_CHECK(bytes == info.bytes, path_, ": tensor '", name, "' (", ggml_type_name(info.type),
                ") needs ", info.bytes, " bytes, got ", bytes);
    file_->write(data, bytes);
    pad_to_alignment();
    ++next_tensor_;
}

void GgufWriter::write_tensor_data(const std::string& name, const at::Tensor& bytes) {
    TORCH_CHECK(bytes.scalar_type() == at::kByte && bytes.is_contiguous() && bytes.is_cpu(),
                "GgufWriter: tensor data must be contiguous CPU uint8, got ", bytes.scalar_type());
    write_tensor_data(name, bytes.data_ptr<uint8_t>(), static_cast<uint64_t>(bytes.numel()));
}

uint64_t GgufWriter::finish() {
    if (!header_written_) write_header();
    QLORA_CHECK(next_tensor_ == infos_.size(), path_, ": ", infos_.size() - next_tensor_,
                " declared tensors have no data, the first '", infos_[next_tensor_].name, "'");
    const uint64_t size = file_->bytes_written();
    file_->commit();
    return size;
}

}  // namespace qlora::exporting
