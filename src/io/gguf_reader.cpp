// GGUF reader: the file is mapped read-only, then the header is parsed with a cursor that checks
// every length and count against the bytes left before it allocates or reads, and the tensor table
// is checked as a whole (types, shapes, alignment, ranges inside the data section, no overlaps).
#include "io/gguf_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <sstream>

#include "core/error.h"

namespace qlora::io {

namespace {

struct ValueTypeRow {
    GgufValueType type;
    const char* name;
    uint64_t bytes;  // 0 for string and array
};

constexpr ValueTypeRow kValueTypes[] = {
    {GgufValueType::kUint8, "uint8", 1},     {GgufValueType::kInt8, "int8", 1},
    {GgufValueType::kUint16, "uint16", 2},   {GgufValueType::kInt16, "int16", 2},
    {GgufValueType::kUint32, "uint32", 4},   {GgufValueType::kInt32, "int32", 4},
    {GgufValueType::kFloat32, "float32", 4}, {GgufValueType::kBool, "bool", 1},
    {GgufValueType::kString, "string", 0},   {GgufValueType::kArray, "array", 0},
    {GgufValueType::kUint64, "uint64", 8},   {GgufValueType::kInt64, "int64", 8},
    {GgufValueType::kFloat64, "float64", 8},
};

const ValueTypeRow* value_type_row(uint32_t t) {
    for (const auto& row : kValueTypes) {
        if (static_cast<uint32_t>(row.type) == t) return &row;
    }
    return nullptr;
}

bool is_signed(GgufValueType t) {
    return t == GgufValueType::kInt8 || t == GgufValueType::kInt16 || t == GgufValueType::kInt32 ||
           t == GgufValueType::kInt64;
}

bool is_integer_type(GgufValueType t) {
    const uint64_t bytes = value_type_row(static_cast<uint32_t>(t))->bytes;
    return bytes > 0 && t != GgufValueType::kBool && t != GgufValueType::kFloat32 &&
           t != GgufValueType::kFloat64;
}

// Reads element `i` of little-endian numeric data of type t as the raw bits, sign-extended for
// signed types so the int64 reinterpretation is the value.
uint64_t load_bits(const char* p, GgufValueType t) {
    const uint64_t bytes = value_type_row(static_cast<uint32_t>(t))->bytes;
    uint64_t v = 0;
    std::memcpy(&v, p, bytes);
    if (is_signed(t) && bytes < 8 && (v >> (8 * bytes - 1)) != 0) v |= ~0ULL << (8 * bytes);
    return v;
}

double bits_to_double(uint64_t bits, GgufValueType t) {
    if (t == GgufValueType::kFloat32) {
        float f;
        uint32_t b = static_cast<uint32_t>(bits);
        std::memcpy(&f, &b, 4);
        return f;
    }
    if (t == GgufValueType::kFloat64) {
        double d;
        std::memcpy(&d, &bits, 8);
        return d;
    }
    return is_signed(t) ? static_cast<double>(static_cast<int64_t>(bits))
                        : static_cast<double>(bits);
}

// A string from the file quoted in a one-line message: short, no control bytes.
std::string printable(const std::string& s) {
    std::string out = s.size() > 80 ? s.substr(0, 77) + "..." : s;
    for (char& c : out) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    }
    return out;
}

}  // namespace

const char* gguf_value_type_name(GgufValueType t) {
    const ValueTypeRow* row = value_type_row(static_cast<uint32_t>(t));
    return row ? row->name : "unknown";
}

// ---- GgufValue ---------------------------------------------------------------------------------

bool GgufValue::is_integer() const { return is_integer_type(type_); }

int64_t GgufValue::as_int(const std::string& what) const {
    QLORA_CHECK(is_integer(), what, ": expected an integer, found ", describe());
    QLORA_CHECK(is_signed(type_) || bits_ <= static_cast<uint64_t>(INT64_MAX), what, ": ", bits_,
                " does not fit in int64");
    return static_cast<int64_t>(bits_);
}

uint64_t GgufValue::as_uint(const std::string& what) const {
    QLORA_CHECK(is_integer(), what, ": expected an unsigned integer, found ", describe());
    QLORA_CHECK(!is_signed(type_) || static_cast<int64_t>(bits_) >= 0, what,
                ": expected a non-negative integer, found ", static_cast<int64_t>(bits_));
    return bits_;
}

double GgufValue::as_float(const std::string& what) const {
    QLORA_CHECK(is_float() || is_integer(), what, ": expected a number, found ", describe());
    return bits_to_double(bits_, type_);
}

bool GgufValue::as_bool(const std::string& what) const {
    QLORA_CHECK(type_ == GgufValueType::kBool, what, ": expected a bool, found ", describe());
    return bits_ != 0;
}

const std::string& GgufValue::as_string(const std::string& what) const {
    QLORA_CHECK(type_ == GgufValueType::kString, what, ": expected a string, found ", describe());
    return string_;
}

uint64_t GgufValue::size() const {
    if (element_type_ == GgufValueType::kString) return strings_.size();
    if (element_type_ == GgufValueType::kArray) return arrays_.size();
    return count_;
}

std::vector<std::string> GgufValue::strings(const std::string& what) const {
    QLORA_CHECK(is_array() && element_type_ == GgufValueType::kString, what,
                ": expected an array of strings, found ", describe());
    return strings_;
}

std::vector<int64_t> GgufValue::ints(const std::string& what) const {
    QLORA_CHECK(is_array() && is_integer_type(element_type_), what,
                ": expected an array of integers, found ", describe());
    const uint64_t bytes = value_type_row(static_cast<uint32_t>(element_type_))->bytes;
    std::vector<int64_t> out(count_);
    for (uint64_t i = 0; i < count_; ++i) {
        const uint64_t bits = load_bits(raw_.data() + i * bytes, element_type_);
        QLORA_CHECK(is_signed(element_type_) || bits <= static_cast<uint64_t>(INT64_MAX), what,
                    ": element ", i, " = ", bits, " does not fit in int64");
        out[i] = static_cast<int64_t>(bits);
    }
    return out;
}

std::vector<double> GgufValue::floats(const std::string& what) const {
    const bool numeric =
        is_array() && (is_integer_type(element_type_) || element_type_ == GgufValueType::kFloat32 ||
                       element_type_ == GgufValueType::kFloat64);
    QLORA_CHECK(numeric, what, ": expected an array of numbers, found ", describe());
    const uint64_t bytes = value_type_row(static_cast<uint32_t>(element_type_))->bytes;
    std::vector<double> out(count_);
    for (uint64_t i = 0; i < count_; ++i) {
        out[i] = bits_to_double(load_bits(raw_.data() + i * bytes, element_type_), element_type_);
    }
    return out;
}

std::string GgufValue::describe() const {
    std::ostringstream out;
    if (is_array()) {
        out << '[' << gguf_value_type_name(element_type_) << " x " << size() << ']';
    } else if (type_ == GgufValueType::kString) {
        out << '"' << printable(string_) << "\" (string)";
    } else if (type_ == GgufValueType::kBool) {
        out << (bits_ ? "true" : "false") << " (bool)";
    } else if (is_float()) {
        out << bits_to_double(bits_, type_) << " (" << gguf_value_type_name(type_) << ')';
    } else if (is_signed(type_)) {
        out << static_cast<int64_t>(bits_) << " (" << gguf_value_type_name(type_) << ')';
    } else {
        out << bits_ << " (" << gguf_value_type_name(type_) << ')';
    }
    return out.str();
}

int64_t GgufTensorInfo::numel() const {
    int64_t n = 1;
    for (int64_t d : ne) n *= d;
    return n;
}

// ---- parsing -----------------------------------------------------------------------------------

// A bounds-checked cursor over the mapped header.
class GgufParser {
  public:
    GgufParser(const std::string& path, const char* data, uint64_t size)
        : path_(path), data_(data), size_(size) {}

    uint64_t pos() const { return pos_; }
    uint64_t left() const { return size_ - pos_; }

    void need(uint64_t n, const std::string& field) const {
        QLORA_CHECK(n <= left(), path_, ": ", field, " at byte ", pos_, " needs ", n,
                    " bytes but only ", left(), " remain (file of ", size_,
                    " bytes is truncated or corrupt)");
    }

    template <typename T>
    T read(const std::string& field) {
        need(sizeof(T), field);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }

    std::string read_string(const std::string& field, uint64_t max_bytes) {
        const uint64_t n = read<uint64_t>(field + " length");
        QLORA_CHECK(n <= max_bytes, path_, ": ", field, " at byte ", pos_ - 8, " claims ", n,
                    " bytes, over the limit of ", max_bytes);
        need(n, field);
        std::string s(data_ + pos_, n);
        pos_ += n;
        return s;
    }

    // type already read; `field` names the key (and element) for messages.
    GgufValue read_value(uint32_t type, const std::string& field, int depth) {
        const ValueTypeRow* row = value_type_row(type);
        QLORA_CHECK(row != nullptr, path_, ": ", field, " has unknown value type ", type,
                    " (expected 0..12)");
        GgufValue v;
        v.type_ = row->type;
        if (row->type == GgufValueType::kString) {
            v.string_ = read_string(field, left());
        } else if (row->type == GgufValueType::kArray) {
            read_array(v, field, depth);
        } else {
            need(row->bytes, field);
            v.bits_ = load_bits(data_ + pos_, row->type);
            pos_ += row->bytes;
            QLORA_CHECK(row->type != GgufValueType::kBool || v.bits_ <= 1, path_, ": ", field,
                        " is a bool with byte value ", v.bits_, " (expected 0 or 1)");
        }
        return v;
    }

  private:
    void read_array(GgufValue& v, const std::string& field, int depth) {
        QLORA_CHECK(depth < kGgufMaxArrayDepth, path_, ": ", field, " nests arrays more than ",
                    kGgufMaxArrayDepth, " deep");
        const uint32_t elem = read<uint32_t>(field + " element type");
        const ValueTypeRow* row = value_type_row(elem);
        QLORA_CHECK(row != nullptr, path_, ": ", field, " is an array of unknown value type ", elem,
                    " (expected 0..12)");
        v.element_type_ = row->type;
        const uint64_t count = read<uint64_t>(field + " array length");
        // Every element takes at least this many bytes of the file: a string its 8-byte length,
        // an array its 4-byte type and 8-byte length.
        const uint64_t min_bytes = row->bytes ? row->bytes : (elem == 8 ? 8 : 12);
        QLORA_CHECK(count <= left() / min_bytes, path_, ": ", field, " at byte ", pos_ - 8,
                    " claims ", count, " ", row->name, " elements but only ", left(),
                    " bytes remain (truncated or corrupt)");
        if (row->bytes) {
            v.count_ = count;
            v.raw_.assign(data_ + pos_, count * row->bytes);
            pos_ += count * row->bytes;
            for (uint64_t i = 0; elem == 7 && i < count; ++i) {
                QLORA_CHECK(static_cast<uint8_t>(v.raw_[i]) <= 1, path_, ": ", field, " element ",
                            i, " is a bool with byte value ",
                            static_cast<int>(static_cast<uint8_t>(v.raw_[i])));
            }
        } else if (row->type == GgufValueType::kString) {
            v.strings_.reserve(count);
            for (uint64_t i = 0; i < count; ++i) {
                v.strings_.push_back(read_string(field + "[" + std::to_string(i) + "]", left()));
            }
        } else {
            v.arrays_.reserve(count);
            for (uint64_t i = 0; i < count; ++i) {
                v.arrays_.push_back(
                    read_value(9, field + "[" + std::to_string(i) + "]", depth + 1));
            }
        }
    }

    const std::string& path_;
    const char* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
};

struct GgufReader::Mapping {
    void* addr = nullptr;
    size_t size = 0;
    Mapping(void* a, size_t s) : addr(a), size(s) {}
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    ~Mapping() {
        if (addr) ::munmap(addr, size);
    }
    const char* bytes() const { return static_cast<const char*>(addr); }
};

namespace {

struct Fd {
    int fd = -1;
    ~Fd() {
        if (fd >= 0) ::close(fd);
    }
};

std::string tensor_field(size_t i, const std::string& name) {
    return "tensor #" + std::to_string(i) + (name.empty() ? "" : " '" + printable(name) + "'");
}

// Dims, type and byte size of one tensor info, checked on their own.
GgufTensorInfo read_tensor_info(GgufParser& p, const std::string& path, size_t i) {
    GgufTensorInfo t;
    t.name = p.read_string(tensor_field(i, "") + " name", kGgufMaxNameBytes);
    const std::string field = tensor_field(i, t.name);
    QLORA_CHECK(!t.name.empty(), path, ": ", field, " has an empty name");
    const uint32_t n_dims = p.read<uint32_t>(field + " n_dims");
    QLORA_CHECK(n_dims >= 1 && n_dims <= kGgufMaxDims, path, ": ", field, " has ", n_dims,
                " dims (expected 1..", kGgufMaxDims, ")");
    int64_t numel = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
        const uint64_t n = p.read<uint64_t>(field + " ne[" + std::to_string(d) + "]");
        QLORA_CHECK(n <= static_cast<uint64_t>(INT64_MAX) &&
                        !__builtin_mul_overflow(numel, static_cast<int64_t>(n), &numel),
                    path, ": ", field, " dim ", d, " = ", n, " makes the tensor too large");
        t.ne.push_back(static_cast<int64_t>(n));
    }
    const uint32_t type = p.read<uint32_t>(field + " type");
    const quant::GgmlTypeTraits* traits = quant::ggml_type_traits(type);
    QLORA_CHECK(traits != nullptr, path, ": ", field, " has unknown ggml type ", type);
    t.type = traits->type;
    QLORA_CHECK(t.ne[0] % traits->block_size == 0, path, ": ", field, " rows of ", t.ne[0],
                " elements are not whole ", traits->name, " blocks of ", traits->block_size);
    const uint64_t blocks = static_cast<uint64_t>(numel / traits->block_size);
    QLORA_CHECK(
        !__builtin_mul_overflow(blocks, static_cast<uint64_t>(traits->block_bytes), &t.nbytes),
        path, ": ", field, " byte size overflows");
    t.offset = p.read<uint64_t>(field + " offset");
    return t;
}

// Alignment, ranges inside the data section, and no two tensors sharing bytes.
void check_tensor_ranges(const std::string& path, const std::vector<GgufTensorInfo>& tensors,
                         uint32_t alignment, uint64_t data_size) {
    std::vector<size_t> order(tensors.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    for (size_t i : order) {
        const GgufTensorInfo& t = tensors[i];
        const std::string field = tensor_field(i, t.name);
        QLORA_CHECK(t.offset % alignment == 0, path, ": ", field, " offset ", t.offset,
                    " is not a multiple of the alignment ", alignment);
        QLORA_CHECK(t.offset <= data_size && t.nbytes <= data_size - t.offset, path, ": ", field,
                    " bytes [", t.offset, ", ", t.offset + t.nbytes,
                    ") of the data section run past its end (", data_size,
                    " bytes); the file is truncated or corrupt");
    }
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
    for (size_t k = 1; k < order.size(); ++k) {
        const GgufTensorInfo& prev = tensors[order[k - 1]];
        const GgufTensorInfo& cur = tensors[order[k]];
        QLORA_CHECK(cur.offset >= prev.offset + prev.nbytes, path, ": tensor '",
                    printable(cur.name), "' at data offset ", cur.offset, " overlaps tensor '",
                    printable(prev.name), "' [", prev.offset, ", ", prev.offset + prev.nbytes, ")");
    }
}

}  // namespace

GgufReader::GgufReader(const std::string& path) : path_(path) {
    Fd file;
    file.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    QLORA_CHECK(file.fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
    struct stat st {};
    QLORA_RUNTIME_CHECK(::fstat(file.fd, &st) == 0, "cannot stat ", path, ": ",
                        std::strerror(errno));
    QLORA_CHECK(S_ISREG(st.st_mode), path, " is not a regular file (expected a .gguf file)");
    const auto file_size = static_cast<uint64_t>(st.st_size);
    QLORA_CHECK(file_size >= 24, path, ": file is ", file_size,
                " bytes, too small for a GGUF header (magic, version and two counts: 24 bytes)");
    void* addr = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, file.fd, 0);
    QLORA_RUNTIME_CHECK(addr != MAP_FAILED, path, ": mmap of ", file_size,
                        " bytes failed: ", std::strerror(errno));
    mapping_ = std::make_shared<const Mapping>(addr, file_size);

    GgufParser p(path, mapping_->bytes(), file_size);
    const auto magic = p.read<uint32_t>("magic");
    QLORA_CHECK(std::memcmp(&magic, "GGUF", 4) == 0, path,
                ": not a GGUF file (the first 4 bytes are not \"GGUF\")");
    version_ = p.read<uint32_t>("version");
    QLORA_CHECK(version_ != 0x03000000u && version_ != 0x02000000u, path,
                ": big-endian GGUF files are not supported");
    QLORA_CHECK(version_ == 2 || version_ == 3, path, ": GGUF version ", version_,
                " is not supported (expected 2 or 3)");
    const auto n_tensors = p.read<uint64_t>("tensor_count");
    const auto n_kv = p.read<uint64_t>("metadata_kv_count");
    // A key-value takes at least 8 + 1 + 4 + 1 bytes; a tensor info at least 8 + 1 + 4 + 8 + 4 + 8.
    QLORA_CHECK(n_kv <= p.left() / 14, path, ": metadata_kv_count ", n_kv, " cannot fit in the ",
                p.left(), " bytes that follow (corrupt header)");
    QLORA_CHECK(n_tensors <= p.left() / 33, path, ": tensor_count ", n_tensors,
                " cannot fit in the ", p.left(), " bytes that follow (corrupt header)");

    for (uint64_t i = 0; i < n_kv; ++i) {
        std::string key = p.read_string("metadata key #" + std::to_string(i), kGgufMaxKeyBytes);
        const std::string field = "key '" + printable(key) + "'";
        QLORA_CHECK(!key.empty(), path, ": metadata key #", i, " is empty");
        const auto type = p.read<uint32_t>(field + " value type");
        GgufValue value = p.read_value(type, field, 0);
        QLORA_CHECK(metadata_.count(key) == 0, path, ": ", field, " appears twice");
        metadata_.emplace(key, std::move(value));
        keys_.push_back(std::move(key));
    }
    if (const GgufValue* a = find("general.alignment")) {
        QLORA_CHECK(a->type() == GgufValueType::kUint32, path,
                    ": key 'general.alignment' must be a uint32, found ", a->describe());
        const uint64_t v = a->as_uint(key_context("general.alignment"));
        QLORA_CHECK(v != 0 && (v & (v - 1)) == 0, path, ": key 'general.alignment' = ", v,
                    " is not a power of two");
        alignment_ = static_cast<uint32_t>(v);
    }

    tensors_.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
        GgufTensorInfo t = read_tensor_info(p, path, i);
        QLORA_CHECK(tensor_index_.count(t.name) == 0, path, ": tensor '", printable(t.name),
                    "' appears twice");
        tensor_index_.emplace(t.name, tensors_.size());
        tensors_.push_back(std::move(t));
    }
    data_offset_ = (p.pos() + alignment_ - 1) / alignment_ * alignment_;
    const uint64_t data_size = data_offset_ <= file_size ? file_size - data_offset_ : 0;
    QLORA_CHECK(tensors_.empty() || data_offset_ <= file_size, path, ": the data section (at byte ",
                data_offset_, ") starts past the end of the ", file_size, "-byte file");
    check_tensor_ranges(path, tensors_, alignment_, data_size);
}

const GgufValue* GgufReader::find(const std::string& key) const {
    auto it = metadata_.find(key);
    return it == metadata_.end() ? nullptr : &it->second;
}

const GgufValue& GgufReader::get(const std::string& key) const {
    const GgufValue* v = find(key);
    QLORA_CHECK(v != nullptr, path_, ": missing metadata key '", key, "'");
    return *v;
}

std::string GgufReader::key_context(const std::string& key) const {
    return path_ + ": key '" + key + "'";
}

std::string GgufReader::get_string(const std::string& key) const {
    return get(key).as_string(key_context(key));
}
uint64_t GgufReader::get_uint(const std::string& key) const {
    return get(key).as_uint(key_context(key));
}
double GgufReader::get_float(const std::string& key) const {
    return get(key).as_float(key_context(key));
}
bool GgufReader::get_bool(const std::string& key) const {
    return get(key).as_bool(key_context(key));
}

const GgufTensorInfo& GgufReader::tensor(const std::string& name) const {
    auto it = tensor_index_.find(name);
    QLORA_CHECK(it != tensor_index_.end(), path_, ": no tensor named '", name, "' (the file has ",
                tensors_.size(), " tensors)");
    return tensors_[it->second];
}

const uint8_t* GgufReader::tensor_data(const std::string& name) const {
    return reinterpret_cast<const uint8_t*>(mapping_->bytes() + data_offset_ + tensor(name).offset);
}

at::Tensor GgufReader::tensor_bytes(const std::string& name) const {
    const GgufTensorInfo& t = tensor(name);
    std::shared_ptr<const Mapping> keep_alive = mapping_;
    return at::from_blob(
        const_cast<uint8_t*>(tensor_data(name)), {static_cast<int64_t>(t.nbytes)},
        [keep_alive](void*) {}, at::TensorOptions().dtype(at::kByte));
}

at::Tensor GgufReader::dequantize(const std::string& name) const {
    const GgufTensorInfo& t = tensor(name);
    return quant::ggml_decode(tensor_data(name), static_cast<int64_t>(t.nbytes), t.type,
                              t.torch_shape(), path_ + ": tensor '" + name + "'");
}

}  // namespace qlora::io
