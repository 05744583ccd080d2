// safetensors reader (mmap, full header validation first), folder view over HF shards, and the
// atomic single-file and sharded writers. Every error names the file and, where one is involved,
// the tensor, with what was expected and what was found.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <tuple>

#include "core/error.h"
#include "io/atomic_file.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace qlora::io {
namespace {

// ---- dtypes ------------------------------------------------------------------------------------

struct DtypeRow {
    const char* code;
    c10::ScalarType type;
};

constexpr DtypeRow kDtypes[] = {
    {"F64", c10::ScalarType::Double},
    {"F32", c10::ScalarType::Float},
    {"F16", c10::ScalarType::Half},
    {"BF16", c10::ScalarType::BFloat16},
    {"I64", c10::ScalarType::Long},
    {"I32", c10::ScalarType::Int},
    {"I16", c10::ScalarType::Short},
    {"I8", c10::ScalarType::Char},
    {"U64", c10::ScalarType::UInt64},
    {"U32", c10::ScalarType::UInt32},
    {"U16", c10::ScalarType::UInt16},
    {"U8", c10::ScalarType::Byte},
    {"BOOL", c10::ScalarType::Bool},
    {"F8_E4M3", c10::ScalarType::Float8_e4m3fn},
    {"F8_E5M2", c10::ScalarType::Float8_e5m2},
};

std::string known_dtype_codes() {
    std::string out;
    for (const auto& row : kDtypes) out += (out.empty() ? "" : ", ") + std::string(row.code);
    return out;
}

}  // namespace

c10::ScalarType safetensors_dtype(const std::string& code, const std::string& context_for_errors) {
    for (const auto& row : kDtypes) {
        if (code == row.code) return row.type;
    }
    QLORA_FAIL(context_for_errors, ": unknown dtype '", code, "' (expected one of ",
               known_dtype_codes(), ")");
}

std::string safetensors_dtype_code(c10::ScalarType t) {
    for (const auto& row : kDtypes) {
        if (t == row.type) return row.code;
    }
    QLORA_FAIL("dtype ", t, " cannot be stored in safetensors (supported: ", known_dtype_codes(),
               ")");
}

namespace {

// ---- header validation -------------------------------------------------------------------------

std::string shape_text(const std::vector<int64_t>& shape) {
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << ']';
    return out.str();
}

std::string range_text(uint64_t begin, uint64_t end) {
    std::ostringstream out;  // a stream: GCC 12 misreports "[" + std::to_string(...) as an overflow
    out << '[' << begin << ", " << end << ')';
    return out.str();
}

// A JSON value quoted in a one-line message: short, and with no control bytes from a corrupt file.
std::string json_text(const json& v) {
    std::string s = v.dump(-1, ' ', true, json::error_handler_t::replace);
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return s;
}

std::string printable(std::string s) {
    for (char& c : s) {
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e) c = '?';
    }
    return s.size() > 200 ? s.substr(0, 197) + "..." : s;
}

// nlohmann keeps the last of duplicate keys silently; a callback sees each key as it is parsed.
json parse_header_json(const std::string& path, const std::string& text) {
    std::vector<std::set<std::string>> open_objects;
    std::string duplicate;
    size_t duplicate_depth = 0;
    auto on_event = [&](int, json::parse_event_t event, json& parsed) {
        if (event == json::parse_event_t::object_start) open_objects.emplace_back();
        if (event == json::parse_event_t::object_end && !open_objects.empty())
            open_objects.pop_back();
        if (event == json::parse_event_t::key && !open_objects.empty() && duplicate.empty() &&
            !open_objects.back().insert(parsed.get<std::string>()).second) {
            duplicate = parsed.get<std::string>();
            duplicate_depth = open_objects.size();
        }
        return true;
    };
    json root;
    try {
        root = json::parse(text, on_event);
    } catch (const json::exception& e) {  // parse errors and number overflow (1e999999)
        std::string why = e.what();
        if (auto pos = why.find("] "); pos != std::string::npos) why = why.substr(pos + 2);
        QLORA_FAIL(path, ": header (", text.size(), " bytes) is not valid JSON: ", printable(why));
    }
    QLORA_CHECK(duplicate.empty() || duplicate_depth != 1, path, ": header has duplicate key '",
                printable(duplicate), "' (each tensor name must appear once)");
    QLORA_CHECK(duplicate.empty(), path, ": header has duplicate field '", printable(duplicate),
                "' inside one entry");
    return root;
}

std::map<std::string, std::string> parse_metadata(const std::string& path, const json& j) {
    QLORA_CHECK(j.is_object(), path, ": __metadata__ must be a JSON object of strings, found ",
                j.type_name());
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : j.items()) {
        QLORA_CHECK(value.is_string(), path, ": __metadata__ value for '", printable(key),
                    "' must be a string, found ", value.type_name(), " ", json_text(value));
        out[key] = value.get<std::string>();
    }
    return out;
}

struct EntryContext {
    const std::string& path;
    const std::string& name;
    std::string prefix() const { return path + ": tensor '" + printable(name) + "'"; }
};

const json& entry_field(const EntryContext& ctx, const json& entry, const char* field) {
    auto it = entry.find(field);
    QLORA_CHECK(it != entry.end(), ctx.prefix(), " has no '", field,
                "' field (each entry needs dtype, shape and data_offsets)");
    return *it;
}

std::vector<int64_t> parse_shape(const EntryContext& ctx, const json& j) {
    QLORA_CHECK(j.is_array(), ctx.prefix(), ": shape must be an array of integers, found ",
                j.type_name(), " ", json_text(j));
    std::vector<int64_t> shape;
    for (size_t i = 0; i < j.size(); ++i) {
        const json& d = j[i];
        bool too_big =
            d.is_number_unsigned() &&
            d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
        QLORA_CHECK(d.is_number_integer() && !too_big, ctx.prefix(), ": shape ", json_text(j),
                    " has dim ", i, " = ", json_text(d), ", expected an integer in [0, 2^63)");
        QLORA_CHECK(d.get<int64_t>() >= 0, ctx.prefix(), ": shape ", json_text(j),
                    " has negative dim ", i, " = ", d.get<int64_t>(), ", dims must be >= 0");
        shape.push_back(d.get<int64_t>());
    }
    return shape;
}

std::pair<uint64_t, uint64_t> parse_offsets(const EntryContext& ctx, const json& j) {
    bool ok =
        j.is_array() && j.size() == 2 && j[0].is_number_unsigned() && j[1].is_number_unsigned();
    QLORA_CHECK(ok, ctx.prefix(),
                ": data_offsets must be [begin, end] with non-negative integers, found ",
                json_text(j));
    uint64_t begin = j[0].get<uint64_t>(), end = j[1].get<uint64_t>();
    QLORA_CHECK(begin <= end, ctx.prefix(), ": data_offsets ", range_text(begin, end),
                " ends before it begins");
    return {begin, end};
}

// Bytes the shape needs, or nullopt when it overflows 64 bits.
std::optional<uint64_t> shape_bytes(const std::vector<int64_t>& shape, size_t element_size) {
    uint64_t bytes = element_size;
    if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
    for (int64_t d : shape) {
        if (__builtin_mul_overflow(bytes, static_cast<uint64_t>(d), &bytes)) return std::nullopt;
    }
    return bytes;
}

TensorInfo parse_entry(const EntryContext& ctx, const json& entry, uint64_t data_size) {
    QLORA_CHECK(entry.is_object(), ctx.prefix(),
                ": entry must be an object with dtype, shape and data_offsets, found ",
                entry.type_name());
    TensorInfo info;
    info.name = ctx.name;
    const json& dtype = entry_field(ctx, entry, "dtype");
    QLORA_CHECK(dtype.is_string(), ctx.prefix(), ": dtype must be a string, found ",
                json_text(dtype));
    info.dtype = safetensors_dtype(dtype.get<std::string>(), ctx.prefix());
    info.shape = parse_shape(ctx, entry_field(ctx, entry, "shape"));
    std::tie(info.begin, info.end) = parse_offsets(ctx, entry_field(ctx, entry, "data_offsets"));

    size_t element_size = c10::elementSize(info.dtype);
    auto bytes = shape_bytes(info.shape, element_size);
    QLORA_CHECK(bytes.has_value(), ctx.prefix(), " has shape ", shape_text(info.shape),
                " whose byte size overflows 64 bits");
    uint64_t numel = element_size ? *bytes / element_size : 0;
    QLORA_CHECK(*bytes == info.end - info.begin, ctx.prefix(), " has shape ",
                shape_text(info.shape), " (", numel, " x ", dtype.get<std::string>(), " = ", *bytes,
                " bytes) but its data range ", range_text(info.begin, info.end), " holds ",
                info.end - info.begin, " bytes");
    QLORA_CHECK(info.end <= data_size, ctx.prefix(), ": data range ",
                range_text(info.begin, info.end), " ends past the data section (", data_size,
                " bytes after the header)");
    return info;
}

// Sorted by begin (then end), a set of ranges is disjoint iff each starts at or after the previous
// end.
std::vector<std::string> check_disjoint(const std::string& path,
                                        const std::map<std::string, TensorInfo>& infos) {
    std::vector<const TensorInfo*> order;
    for (const auto& [name, info] : infos) order.push_back(&info);
    std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
        return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
    });
    std::vector<std::string> names;
    for (size_t i = 0; i < order.size(); ++i) {
        if (i > 0) {
            const TensorInfo& prev = *order[i - 1];
            const TensorInfo& cur = *order[i];
            QLORA_CHECK(cur.begin >= prev.end, path, ": tensors '", printable(prev.name), "' ",
                        range_text(prev.begin, prev.end), " and '", printable(cur.name), "' ",
                        range_text(cur.begin, cur.end), " overlap in the data section");
        }
        names.push_back(order[i]->name);
    }
    return names;
}

// ---- file access -------------------------------------------------------------------------------

void read_exact(int fd, const std::string& path, char* out, size_t size, uint64_t offset) {
    while (size > 0) {
        ssize_t n = ::pread(fd, out, size, static_cast<off_t>(offset));
        if (n < 0 && errno == EINTR) continue;
        QLORA_RUNTIME_CHECK(n > 0, path, ": read failed at byte ", offset, ": ",
                            n < 0 ? std::strerror(errno) : "unexpected end of file");
        out += n;
        size -= static_cast<size_t>(n);
        offset += static_cast<uint64_t>(n);
    }
}

struct FileDescriptor {
    int fd = -1;
    ~FileDescriptor() {
        if (fd >= 0) ::close(fd);
    }
};

uint64_t read_le64(const unsigned char* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

}  // namespace

// ---- SafetensorsReader -------------------------------------------------------------------------

struct SafetensorsReader::Mapping {
    void* addr = nullptr;
    size_t size = 0;
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;
    Mapping(void* a, size_t s) : addr(a), size(s) {}
    ~Mapping() { ::munmap(addr, size); }
    const char* bytes() const { return static_cast<const char*>(addr); }
};

SafetensorsReader::SafetensorsReader(const std::string& path) : path_(path) {
    FileDescriptor file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
    QLORA_CHECK(file.fd >= 0, "cannot open safetensors file ", path, ": ", std::strerror(errno));
    struct stat st {};
    QLORA_RUNTIME_CHECK(::fstat(file.fd, &st) == 0, path, ": fstat failed: ", std::strerror(errno));
    QLORA_CHECK(S_ISREG(st.st_mode), path, " is not a regular file (expected a .safetensors file)");
    auto file_size = static_cast<uint64_t>(st.st_size);
    QLORA_CHECK(
        file_size >= 8, path, ": file is ", file_size,
        " bytes, too small for a safetensors file (at least 8 bytes of header length expected)");

    unsigned char length_bytes[8];
    read_exact(file.fd, path, reinterpret_cast<char*>(length_bytes), 8, 0);
    uint64_t header_size = read_le64(length_bytes);
    QLORA_CHECK(header_size <= kSafetensorsMaxHeaderBytes, path, ": header length ", header_size,
                " bytes exceeds the ", kSafetensorsMaxHeaderBytes,
                "-byte limit (corrupt file, or not a safetensors file)");
    QLORA_CHECK(header_size <= file_size - 8, path, ": header length ", header_size,
                " bytes runs past the end of the file (file is ", file_size, " bytes, so at most ",
                file_size - 8, " header bytes fit); the file is truncated or not safetensors");

    std::string header(header_size, '\0');
    read_exact(file.fd, path, header.data(), header.size(), 8);
    data_offset_ = 8 + header_size;
    uint64_t data_size = file_size - data_offset_;

    json root = parse_header_json(path, header);
    QLORA_CHECK(root.is_object(), path, ": header must be a JSON object, found ", root.type_name());
    for (const auto& [name, entry] : root.items()) {
        if (name == "__metadata__") {
            metadata_ = parse_metadata(path, entry);
            continue;
        }
        infos_.emplace(name, parse_entry(EntryContext{path, name}, entry, data_size));
    }
    names_ = check_disjoint(path, infos_);

    void* addr = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, file.fd, 0);
    QLORA_RUNTIME_CHECK(addr != MAP_FAILED, path, ": mmap of ", file_size,
                        " bytes failed: ", std::strerror(errno));
    mapping_ = std::make_shared<const Mapping>(addr, file_size);
}

const TensorInfo& SafetensorsReader::info(const std::string& name) const {
    auto it = infos_.find(name);
    if (it == infos_.end()) {
        QLORA_FAIL(path_, ": no tensor named '", name, "' (the file has ", infos_.size(),
                   " tensors", names_.empty() ? std::string() : ", e.g. '" + names_.front() + "'",
                   ")");
    }
    return it->second;
}

at::Tensor SafetensorsReader::load(const std::string& name) const {
    const TensorInfo& ti = info(name);
    at::Tensor out = at::empty(ti.shape, at::TensorOptions().dtype(ti.dtype));
    // memcpy rather than from_blob().clone(): a range need not be aligned for its dtype.
    if (ti.end > ti.begin) {
        std::memcpy(out.data_ptr(), mapping_->bytes() + data_offset_ + ti.begin, ti.end - ti.begin);
    }
    return out;
}

at::Tensor SafetensorsReader::view(const std::string& name) const {
    const TensorInfo& ti = info(name);
    auto* data = const_cast<char*>(mapping_->bytes() + data_offset_ + ti.begin);
    std::shared_ptr<const Mapping> keep_alive = mapping_;
    return at::from_blob(
        data, ti.shape, [keep_alive](void*) {}, at::TensorOptions().dtype(ti.dtype));
}

// ---- SafetensorsFolder -------------------------------------------------------------------------

namespace {

json read_index_json(const std::string& index_path) {
    std::ifstream in(index_path, std::ios::binary);
    QLORA_CHECK(in.good(), "cannot open ", index_path, ": ", std::strerror(errno));
    std::stringstream text;
    text << in.rdbuf();
    try {
        return json::parse(text.str());
    } catch (const json::exception& e) {  // parse errors and number overflow (1e999999)
        QLORA_FAIL(index_path, ": not valid JSON: ", printable(e.what()));
    }
}

}  // namespace

SafetensorsFolder::SafetensorsFolder(const std::string& folder, const std::string& stem)
    : folder_(folder) {
    QLORA_CHECK(fs::exists(folder), folder,
                " does not exist (expected a model folder or a .safetensors file)");
    fs::path single =
        fs::is_regular_file(folder) ? fs::path(folder) : fs::path(folder) / (stem + ".safetensors");
    if (fs::is_regular_file(single)) {
        auto reader = std::make_unique<SafetensorsReader>(single.string());
        names_ = reader->names();
        for (const auto& name : names_) shard_of_[name] = single.string();
        files_ = {single.string()};
        readers_[single.string()] = std::move(reader);
        std::sort(names_.begin(), names_.end());
        return;
    }
    fs::path index = fs::path(folder) / (stem + ".safetensors.index.json");
    QLORA_CHECK(fs::is_regular_file(index), folder, ": has neither ", stem, ".safetensors nor ",
                stem, ".safetensors.index.json (expected a Hugging Face model folder)");
    json root = read_index_json(index.string());
    QLORA_CHECK(root.is_object() && root.contains("weight_map") && root["weight_map"].is_object(),
                index.string(), ": expected a JSON object with a \"weight_map\" object");
    std::set<std::string> files;
    for (const auto& [name, file] : root["weight_map"].items()) {
        QLORA_CHECK(file.is_string() && file.get<std::string>().find('/') == std::string::npos,
                    index.string(), ": weight_map entry for ", json_text(name),
                    " must be a file name in the same folder, found ", json_text(file));
        fs::path shard = fs::path(folder) / file.get<std::string>();
        // The error_code overload: a name the file system refuses (too long, ...) is a message
        // about this index, not a filesystem_error escaping.
        std::error_code ec;
        QLORA_CHECK(fs::is_regular_file(shard, ec), index.string(), ": weight_map puts ",
                    json_text(name), " in ", json_text(file), ", which ",
                    ec && ec != std::errc::no_such_file_or_directory
                        ? "cannot be opened here: " + ec.message()
                        : std::string("does not exist"));
        shard_of_[name] = shard.string();
        names_.push_back(name);
        files.insert(shard.string());
    }
    files_.assign(files.begin(), files.end());
}

const SafetensorsReader& SafetensorsFolder::reader_for(const std::string& name) const {
    auto shard = shard_of_.find(name);
    if (shard == shard_of_.end()) {
        QLORA_FAIL(folder_, ": no tensor named '", name, "' (", names_.size(), " tensors in ",
                   files_.size(), " file(s))");
    }
    std::lock_guard<std::mutex> lock(*mutex_);
    auto& reader = readers_[shard->second];
    if (!reader) reader = std::make_unique<SafetensorsReader>(shard->second);
    QLORA_CHECK(reader->contains(name), folder_, ": the index puts tensor '", name, "' in ",
                shard->second, " but that file has no such tensor");
    return *reader;
}

const TensorInfo& SafetensorsFolder::info(const std::string& name) const {
    return reader_for(name).info(name);
}

at::Tensor SafetensorsFolder::load(const std::string& name) const {
    return reader_for(name).load(name);
}

at::Tensor SafetensorsFolder::view(const std::string& name) const {
    return reader_for(name).view(name);
}

// ---- writers -----------------------------------------------------------------------------------

namespace {

void check_tensor_name(const std::string& path, const std::string& name) {
    QLORA_CHECK(!name.empty(), path, ": tensor names must not be empty");
    QLORA_CHECK(name != "__metadata__", path,
                ": '__metadata__' is reserved and cannot name a tensor");
}

void check_writable(const std::string& path, const std::string& name, const at::Tensor& t) {
    QLORA_CHECK(t.defined(), path, ": tensor '", name, "' is undefined");
    QLORA_CHECK(t.layout() == at::kStrided, path, ": tensor '", name, "' has layout ", t.layout(),
                "; only dense tensors can be saved");
    try {
        safetensors_dtype_code(t.scalar_type());
    } catch (const Error& e) {
        QLORA_FAIL(path, ": tensor '", name, "': ", e.what());
    }
}

// The header is padded with spaces so the data section starts 8-byte aligned, as the format
// advises.
std::string header_bytes(const std::string& path,
                         const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                         const std::map<std::string, std::string>& metadata) {
    nlohmann::ordered_json header = nlohmann::ordered_json::object();
    if (!metadata.empty()) header["__metadata__"] = metadata;
    uint64_t offset = 0;
    for (const auto& [name, t] : tensors) {
        check_tensor_name(path, name);
        check_writable(path, name, t);
        QLORA_CHECK(!header.contains(name), path, ": tensor '", name, "' is given twice");
        uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
        header[name] = {{"dtype", safetensors_dtype_code(t.scalar_type())},
                        {"shape", t.sizes().vec()},
                        {"data_offsets", nlohmann::ordered_json::array({offset, offset + bytes})}};
        offset += bytes;
    }
    std::string text = header.dump();
    text.append((8 - text.size() % 8) % 8, ' ');
    QLORA_CHECK(text.size() <= kSafetensorsMaxHeaderBytes, path, ": header would be ", text.size(),
                " bytes, over the ", kSafetensorsMaxHeaderBytes, "-byte limit readers accept");
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((text.size() >> (8 * i)) & 0xff);
    return out + text;
}

}  // namespace

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
    std::string header = header_bytes(path, tensors, metadata);
    AtomicFileWriter out(path);
    out.write(header);
    for (const auto& [name, t] : tensors) {
        at::Tensor host = t.detach().to(at::kCPU).contiguous();  // one tensor at a time on the host
        out.write(host.data_ptr(), host.nbytes());
    }
    out.commit();
}

// ---- ShardedSafetensorsWriter ------------------------------------------------------------------

namespace {

std::string shard_file_name(const std::string& stem, size_t k, size_t n) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "-%05zu-of-%05zu.safetensors", k, n);
    return stem + buf;
}

// "<stem>-00001-of-00003.safetensors". Matched by hand: std::regex trips GCC 12 false warnings
// under the sanitizer build.
bool is_shard_name(const std::string& file, const std::string& stem) {
    const std::string suffix = ".safetensors";
    size_t n = stem.size();
    if (file.size() != n + 15 + suffix.size() || file.compare(0, n, stem) != 0) return false;
    auto digits = [&](size_t pos) {
        return std::all_of(file.begin() + static_cast<std::ptrdiff_t>(pos),
                           file.begin() + static_cast<std::ptrdiff_t>(pos + 5),
                           [](char c) { return c >= '0' && c <= '9'; });
    };
    return file[n] == '-' && digits(n + 1) && file.compare(n + 6, 4, "-of-") == 0 &&
           digits(n + 10) && file.compare(n + 15, suffix.size(), suffix) == 0;
}

// Files an earlier save with this stem may have left: a single file, an index, or shards.
void remove_stale_files(const std::string& folder, const std::string& stem,
                        const std::set<std::string>& keep) {
    for (const auto& entry : fs::directory_iterator(folder)) {
        std::string file = entry.path().filename().string();
        bool stale = file == stem + ".safetensors" || file == stem + ".safetensors.index.json" ||
                     is_shard_name(file, stem);
        if (stale && !keep.count(file)) fs::remove(entry.path());
    }
}

}  // namespace

ShardedSafetensorsWriter::ShardedSafetensorsWriter(std::string folder, std::string stem,
                                                   uint64_t max_shard_bytes,
                                                   std::map<std::string, std::string> metadata)
    : folder_(std::move(folder)),
      stem_(std::move(stem)),
      max_shard_bytes_(max_shard_bytes),
      metadata_(std::move(metadata)) {
    QLORA_CHECK(max_shard_bytes_ > 0, folder_, ": max_shard_bytes must be > 0");
    fs::create_directories(folder_);
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() {
    if (finished_) return;
    std::error_code ec;
    for (const auto& file : pending_files_) fs::remove(file, ec);
}

void ShardedSafetensorsWriter::add(const std::string& name, const at::Tensor& t) {
    std::string where = (fs::path(folder_) / stem_).string();
    QLORA_CHECK(!finished_, where, ": add('", name, "') after finish()");
    check_tensor_name(where, name);
    check_writable(where, name, t);
    QLORA_CHECK(seen_.insert(name).second, where, ": tensor '", name, "' is added twice");
    uint64_t bytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    if (!current_.empty() && current_bytes_ + bytes > max_shard_bytes_) flush_shard();
    at::Tensor owned = t.detach().to(at::kCPU).contiguous();
    if (owned.is_alias_of(t)) owned = owned.clone();  // the caller may change its tensor later
    current_.emplace_back(name, std::move(owned));
    current_bytes_ += bytes;
    total_bytes_ += bytes;
}

void ShardedSafetensorsWriter::flush_shard() {
    std::string pending =
        (fs::path(folder_) /
         ("." + stem_ + "-" + std::to_string(pending_files_.size() + 1) + ".safetensors.pending"))
            .string();
    save_safetensors(pending, current_, metadata_);
    pending_files_.push_back(pending);
    std::vector<std::string> names;
    for (const auto& entry : current_) names.push_back(entry.first);
    pending_names_.push_back(std::move(names));
    current_.clear();
    current_bytes_ = 0;
}

std::vector<std::string> ShardedSafetensorsWriter::finish() {
    QLORA_CHECK(!finished_, folder_, ": finish() called twice");
    if (pending_files_.empty()) {
        std::string path = (fs::path(folder_) / (stem_ + ".safetensors")).string();
        save_safetensors(path, current_, metadata_);
        current_.clear();
        finished_ = true;
        remove_stale_files(folder_, stem_, {stem_ + ".safetensors"});
        return {path};
    }
    if (!current_.empty()) flush_shard();
    size_t n = pending_files_.size();
    json weight_map = json::object();
    std::set<std::string> keep;
    std::vector<std::string> written;
    for (size_t k = 0; k < n; ++k) {
        std::string file = shard_file_name(stem_, k + 1, n);
        std::string path = (fs::path(folder_) / file).string();
        QLORA_RUNTIME_CHECK(std::rename(pending_files_[k].c_str(), path.c_str()) == 0,
                            "cannot rename ", pending_files_[k], " to ", path, ": ",
                            std::strerror(errno));
        for (const auto& name : pending_names_[k]) weight_map[name] = file;
        keep.insert(file);
        written.push_back(path);
    }
    finished_ = true;
    std::string index_file = stem_ + ".safetensors.index.json";
    keep.insert(index_file);
    remove_stale_files(folder_, stem_, keep);
    json index = {{"metadata", {{"total_size", total_bytes_}}}, {"weight_map", weight_map}};
    std::string index_path = (fs::path(folder_) / index_file).string();
    write_file_atomic(index_path, index.dump(2) + "\n");
    written.push_back(index_path);
    return written;
}

}  // namespace qlora::io
