// A small GGUF v3 reader for tests, written from the format spec (ggml docs/gguf.md) and not from
// our writer: it parses a whole file into metadata values and tensor infos, checking magic,
// version, bounds, alignment and that tensors tile the data section in order.
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace qlora::test {

struct GgufValue {
    uint32_t type = 0;  // gguf_type of the value (9 = array)
    uint32_t array_type = 0;
    uint64_t u = 0;  // unsigned and bool values
    int64_t i = 0;   // signed values
    double f = 0.0;  // float values
    std::string s;
    std::vector<std::string> strings;
    std::vector<double> numbers;  // numeric array elements
};

struct GgufTensorInfo {
    std::string name;
    std::vector<uint64_t> ne;  // ggml order: ne[0] is the row length
    uint32_t type = 0;
    uint64_t offset = 0;
};

struct GgufFile {
    uint32_t version = 0;
    std::vector<std::string> key_order;
    std::map<std::string, GgufValue> kv;
    std::vector<GgufTensorInfo> tensors;
    uint64_t data_start = 0;
    std::string bytes;  // the whole file

    const GgufTensorInfo& tensor(const std::string& name) const {
        for (const auto& t : tensors) {
            if (t.name == name) return t;
        }
        throw std::runtime_error("no tensor " + name);
    }
    const char* data(const GgufTensorInfo& t) const { return bytes.data() + data_start + t.offset; }
};

namespace gguf_detail {

struct Cursor {
    const std::string& b;
    uint64_t at = 0;
    void need(uint64_t n) const {
        if (n > b.size() || at > b.size() - n)
            throw std::runtime_error("GGUF truncated at byte " + std::to_string(at));
    }
    template <typename T>
    T get() {
        need(sizeof(T));
        T v;
        std::memcpy(&v, b.data() + at, sizeof(T));
        at += sizeof(T);
        return v;
    }
    std::string str() {
        uint64_t n = get<uint64_t>();
        need(n);
        std::string s = b.substr(at, n);
        at += n;
        return s;
    }
};

// Size and kind of each gguf_type scalar: 'u' unsigned, 'i' signed, 'f' float, 'b' bool,
// 's' string (index = type number; 9, the array, is handled by the caller).
struct ScalarKind {
    int size;
    char kind;
};
inline constexpr ScalarKind kScalarKinds[13] = {{1, 'u'}, {1, 'i'}, {2, 'u'}, {2, 'i'}, {4, 'u'},
                                                {4, 'i'}, {4, 'f'}, {1, 'b'}, {0, 's'}, {0, '?'},
                                                {8, 'u'}, {8, 'i'}, {8, 'f'}};

inline void read_scalar(Cursor& c, uint32_t type, GgufValue& v, bool into_array) {
    if (type >= 13 || type == 9) throw std::runtime_error("bad value type " + std::to_string(type));
    const ScalarKind k = kScalarKinds[type];
    if (k.kind == 's') {
        std::string s = c.str();
        if (into_array)
            v.strings.push_back(s);
        else
            v.s = s;
        return;
    }
    c.need(static_cast<uint64_t>(k.size));
    uint64_t raw = 0;  // little-endian bytes, zero-extended
    std::memcpy(&raw, c.b.data() + c.at, static_cast<size_t>(k.size));
    c.at += static_cast<uint64_t>(k.size);
    double num = 0.0;
    if (k.kind == 'u' || k.kind == 'b') {
        if (k.kind == 'b' && raw > 1) throw std::runtime_error("bool value " + std::to_string(raw));
        v.u = raw;
        num = static_cast<double>(raw);
    } else if (k.kind == 'i') {
        const int shift = 64 - 8 * k.size;  // sign-extend
        v.i = static_cast<int64_t>(raw << shift) >> shift;
        num = static_cast<double>(v.i);
    } else {
        float f32 = 0.0f;
        std::memcpy(&f32, &raw, 4);
        v.f = k.size == 4 ? static_cast<double>(f32) : std::bit_cast<double>(raw);
        num = v.f;
    }
    if (into_array) v.numbers.push_back(num);
}

}  // namespace gguf_detail

inline GgufFile read_gguf(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot open " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    GgufFile f;
    f.bytes = ss.str();
    gguf_detail::Cursor c{f.bytes};
    c.need(4);
    if (f.bytes.compare(0, 4, "GGUF") != 0) throw std::runtime_error("bad magic");
    c.at = 4;
    f.version = c.get<uint32_t>();
    uint64_t n_tensors = c.get<uint64_t>();
    uint64_t n_kv = c.get<uint64_t>();
    for (uint64_t k = 0; k < n_kv; ++k) {
        std::string key = c.str();
        if (f.kv.count(key)) throw std::runtime_error("duplicate key " + key);
        GgufValue v;
        v.type = c.get<uint32_t>();
        if (v.type == 9) {
            v.array_type = c.get<uint32_t>();
            uint64_t n = c.get<uint64_t>();
            for (uint64_t e = 0; e < n; ++e) gguf_detail::read_scalar(c, v.array_type, v, true);
        } else {
            gguf_detail::read_scalar(c, v.type, v, false);
        }
        f.key_order.push_back(key);
        f.kv[key] = v;
    }
    for (uint64_t t = 0; t < n_tensors; ++t) {
        GgufTensorInfo info;
        info.name = c.str();
        uint32_t n_dims = c.get<uint32_t>();
        if (n_dims == 0 || n_dims > 4) throw std::runtime_error("n_dims " + std::to_string(n_dims));
        for (uint32_t d = 0; d < n_dims; ++d) info.ne.push_back(c.get<uint64_t>());
        info.type = c.get<uint32_t>();
        info.offset = c.get<uint64_t>();
        f.tensors.push_back(info);
    }
    uint64_t alignment = 32;
    if (f.kv.count("general.alignment")) alignment = f.kv.at("general.alignment").u;
    f.data_start = (c.at + alignment - 1) / alignment * alignment;
    for (uint64_t p = c.at; p < f.data_start; ++p) {
        if (p >= f.bytes.size() || f.bytes[p] != '\0')
            throw std::runtime_error("bad header padding");
    }
    for (const auto& t : f.tensors) {
        if (t.offset % alignment != 0) throw std::runtime_error(t.name + ": unaligned offset");
        if (f.data_start + t.offset > f.bytes.size())
            throw std::runtime_error(t.name + ": offset past the end");
    }
    return f;
}

// Bytes of a tensor of ggml type `type` with ne[]; F32 0, F16 1, Q4_0 2, Q8_0 8.
inline uint64_t gguf_tensor_bytes(uint32_t type, const std::vector<uint64_t>& ne) {
    uint64_t n = 1;
    for (uint64_t d : ne) n *= d;
    switch (type) {
        case 0:
            return n * 4;
        case 1:
            return n * 2;
        case 2:
            return n / 32 * 18;
        case 8:
            return n / 32 * 34;
    }
    throw std::runtime_error("unknown tensor type " + std::to_string(type));
}

}  // namespace qlora::test
