// GgufReader on hand-built files: a valid v2 and v3 file with every value type, then malformed
// ones (every truncation, huge counts and lengths, bad types, bad offsets, overlaps, duplicates,
// bad alignment), each a one-line qlora::Error naming the file and the field, never a crash.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "io/gguf_reader.h"
#include "support/test_support.h"

namespace qlora::io {
namespace {

using qlora::test::error_of;
using V = GgufValueType;

// Little-endian GGUF bytes, written field by field.
struct GgufBytes {
    std::string b;
    template <typename T>
    GgufBytes& put(T v) {
        b.append(reinterpret_cast<const char*>(&v), sizeof(T));
        return *this;
    }
    GgufBytes& str(const std::string& s) {
        put<uint64_t>(s.size());
        b += s;
        return *this;
    }
    GgufBytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
        b += "GGUF";
        return put(version).put(n_tensors).put(n_kv);
    }
    GgufBytes& kv_u32(const std::string& key, uint32_t v) {
        return str(key).put<uint32_t>(4).put(v);
    }
    GgufBytes& tensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                      uint64_t offset) {
        str(name).put<uint32_t>(static_cast<uint32_t>(ne.size()));
        for (uint64_t d : ne) put(d);
        return put(type).put(offset);
    }
    GgufBytes& pad(size_t alignment) {
        b.append((alignment - b.size() % alignment) % alignment, '\0');
        return *this;
    }
};

std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = qlora::test::scratch_dir("gguf_reader_" + name) + "/f.gguf";
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
}

// Every value type, an array of arrays, two F32 tensors and a Q8_0 one.
GgufBytes valid_file(uint32_t version) {
    GgufBytes g;
    g.header(version, 3, 15);
    g.str("general.architecture").put<uint32_t>(8).str("llama");
    g.str("u8").put<uint32_t>(0).put<uint8_t>(250);
    g.str("i8").put<uint32_t>(1).put<int8_t>(-5);
    g.str("u16").put<uint32_t>(2).put<uint16_t>(65000);
    g.str("i16").put<uint32_t>(3).put<int16_t>(-300);
    g.kv_u32("u32", 4000000000u);
    g.str("i32").put<uint32_t>(5).put<int32_t>(-7);
    g.str("f32").put<uint32_t>(6).put<float>(1.5f);
    g.str("bool").put<uint32_t>(7).put<uint8_t>(1);
    g.str("u64").put<uint32_t>(10).put<uint64_t>(1ULL << 63);
    g.str("i64").put<uint32_t>(11).put<int64_t>(-(1LL << 40));
    g.str("f64").put<uint32_t>(12).put<double>(-2.25);
    g.str("strs").put<uint32_t>(9).put<uint32_t>(8).put<uint64_t>(2).str("ab").str("");
    g.str("nested").put<uint32_t>(9).put<uint32_t>(9).put<uint64_t>(2);
    g.put<uint32_t>(5).put<uint64_t>(2).put<int32_t>(1).put<int32_t>(-2);  // [1, -2]
    g.put<uint32_t>(8).put<uint64_t>(1).str("x");                          // ["x"]
    g.kv_u32("general.alignment", 64);
    g.tensor("a", {4}, 0, 0);          // 16 bytes
    g.tensor("b", {32, 2}, 8, 64);     // 2 rows of one Q8_0 block: 68 bytes
    g.tensor("c", {2, 1, 1}, 0, 192);  // 8 bytes
    g.pad(64);
    std::string data(200, '\0');
    const float a[4] = {1, 2, 3, 4};
    std::memcpy(data.data(), a, 16);
    const float c[2] = {-1, 0.5};
    std::memcpy(data.data() + 192, c, 8);
    g.b += data;
    return g;
}

TEST(GgufReader, ReadsEveryValueTypeInV2AndV3) {
    for (uint32_t version : {2u, 3u}) {
        const std::string path = write("valid" + std::to_string(version), valid_file(version).b);
        GgufReader r(path);
        EXPECT_EQ(r.version(), version);
        EXPECT_EQ(r.alignment(), 64u);
        EXPECT_EQ(r.keys().size(), 15u);
        EXPECT_EQ(r.get_string("general.architecture"), "llama");
        EXPECT_EQ(r.get_uint("u8"), 250u);
        EXPECT_EQ(r.get("i8").as_int("i8"), -5);
        EXPECT_EQ(r.get_uint("u16"), 65000u);
        EXPECT_EQ(r.get("i16").as_int("i16"), -300);
        EXPECT_EQ(r.get_uint("u32"), 4000000000u);
        EXPECT_EQ(r.get("i32").as_int("i32"), -7);
        EXPECT_EQ(r.get_float("f32"), 1.5);
        EXPECT_TRUE(r.get_bool("bool"));
        EXPECT_EQ(r.get_uint("u64"), 1ULL << 63);
        EXPECT_EQ(r.get("i64").as_int("i64"), -(1LL << 40));
        EXPECT_EQ(r.get_float("f64"), -2.25);
        EXPECT_EQ(r.get("strs").strings("strs"), (std::vector<std::string>{"ab", ""}));
        const auto& nested = r.get("nested").arrays();
        ASSERT_EQ(nested.size(), 2u);
        EXPECT_EQ(nested[0].ints("n0"), (std::vector<int64_t>{1, -2}));
        EXPECT_EQ(nested[1].strings("n1"), (std::vector<std::string>{"x"}));
        EXPECT_EQ(r.get("nested").describe(), "[array x 2]");

        ASSERT_EQ(r.tensors().size(), 3u);
        EXPECT_EQ(r.data_offset() % 64, 0u);
        EXPECT_EQ(r.tensor("b").type, quant::GgmlType::kQ8_0);
        EXPECT_EQ(r.tensor("b").nbytes, 68u);
        EXPECT_EQ(r.tensor("b").torch_shape(), (std::vector<int64_t>{2, 32}));
        EXPECT_TRUE(at::equal(r.dequantize("a"), at::arange(1, 5, at::kFloat)));
        at::Tensor c = r.dequantize("c");
        EXPECT_EQ(c.sizes(), (std::vector<int64_t>{1, 1, 2}));
        EXPECT_EQ(c.flatten()[0].item<float>(), -1.0f);
        EXPECT_TRUE(at::equal(r.dequantize("b"), at::zeros({2, 32})));  // d = 0
    }
}

TEST(GgufReader, TypeErrorsNameTheFileAndKey) {
    const std::string path = write("types", valid_file(3).b);
    GgufReader r(path);
    EXPECT_EQ(error_of([&] { r.get_string("u32"); }),
              path + ": key 'u32': expected a string, found 4000000000 (uint32)");
    EXPECT_EQ(error_of([&] { r.get_uint("i8"); }),
              path + ": key 'i8': expected a non-negative integer, found -5");
    EXPECT_EQ(error_of([&] { r.get("missing"); }), path + ": missing metadata key 'missing'");
    EXPECT_EQ(error_of([&] { r.get("strs").ints("k"); }),
              "k: expected an array of integers, found [string x 2]");
    EXPECT_EQ(error_of([&] { r.tensor("zz"); }),
              path + ": no tensor named 'zz' (the file has 3 tensors)");
}

TEST(GgufReader, EveryTruncationIsAnErrorNotACrash) {
    const std::string full = valid_file(3).b;
    // Cutting anywhere in the header or inside a tensor's bytes must fail cleanly; the only
    // prefixes that may still parse are those that keep every tensor's bytes.
    const std::string path = qlora::test::scratch_dir("gguf_reader_trunc") + "/f.gguf";
    int64_t errors = 0;
    for (size_t n = 0; n < full.size(); ++n) {
        std::ofstream(path, std::ios::binary | std::ios::trunc) << full.substr(0, n);
        const std::string e = error_of([&] { GgufReader r(path); });
        ASSERT_NE(e, "(no error)") << "prefix of " << n << " bytes parsed";
        ASSERT_EQ(e.rfind(path, 0), 0u) << e;
        ASSERT_EQ(e.find('\n'), std::string::npos) << e;
        ++errors;
    }
    EXPECT_EQ(errors, static_cast<int64_t>(full.size()));
}

// A file whose header ends after `g`, padded with some data.
std::string error_for(const std::string& name, GgufBytes g, size_t data = 64) {
    g.pad(32);
    g.b.append(data, '\0');
    const std::string path = write(name, g.b);
    std::string e = error_of([&] { GgufReader r(path); });
    EXPECT_EQ(e.rfind(path + ": ", 0), 0u) << e;
    return e.substr(std::min(e.size(), path.size() + 2));
}

TEST(GgufReader, MalformedHeadersAreOneLineErrors) {
    EXPECT_EQ(error_for("magic", GgufBytes()
                                     .put<uint32_t>(0x46554746)
                                     .put<uint32_t>(3)
                                     .put<uint64_t>(0)
                                     .put<uint64_t>(0)),
              "not a GGUF file (the first 4 bytes are not \"GGUF\")");
    EXPECT_EQ(error_for("v1", GgufBytes().header(1, 0, 0)),
              "GGUF version 1 is not supported (expected 2 or 3)");
    EXPECT_EQ(error_for("bigendian", GgufBytes().header(0x03000000u, 0, 0)),
              "big-endian GGUF files are not supported");
    EXPECT_NE(error_for("kvcount", GgufBytes().header(3, 0, 1ULL << 60))
                  .find("metadata_kv_count 1152921504606846976 cannot fit"),
              std::string::npos);
    EXPECT_NE(error_for("tcount", GgufBytes().header(3, ~0ULL, 0)).find("tensor_count"),
              std::string::npos);
    // A key whose length claims far more than the file holds: refused before allocating it.
    EXPECT_NE(error_for("keylen", GgufBytes().header(3, 0, 1).put<uint64_t>(1ULL << 62))
                  .find("metadata key #0 at byte 24 claims 4611686018427387904 bytes"),
              std::string::npos);
    GgufBytes strlen_bad;
    strlen_bad.header(3, 0, 1).str("k").put<uint32_t>(8).put<uint64_t>(1ULL << 40);
    EXPECT_NE(error_for("strlen", strlen_bad).find("key 'k' at byte"), std::string::npos);
    GgufBytes arr;
    arr.header(3, 0, 1).str("k").put<uint32_t>(9).put<uint32_t>(6).put<uint64_t>(1ULL << 61);
    EXPECT_NE(error_for("arrlen", arr).find("claims 2305843009213693952 float32 elements"),
              std::string::npos);
    GgufBytes bad_type;
    bad_type.header(3, 0, 1).str("k").put<uint32_t>(13);
    EXPECT_EQ(error_for("vtype", bad_type), "key 'k' has unknown value type 13 (expected 0..12)");
    GgufBytes bad_elem;
    bad_elem.header(3, 0, 1).str("k").put<uint32_t>(9).put<uint32_t>(99).put<uint64_t>(1);
    EXPECT_EQ(error_for("etype", bad_elem),
              "key 'k' is an array of unknown value type 99 (expected 0..12)");
    GgufBytes deep;
    deep.header(3, 0, 1).str("k").put<uint32_t>(9);
    for (int i = 0; i < 9; ++i) deep.put<uint32_t>(9).put<uint64_t>(1);
    EXPECT_NE(error_for("deep", deep).find("nests arrays more than 8 deep"), std::string::npos);
    GgufBytes dup;
    dup.header(3, 0, 2).kv_u32("k", 1).kv_u32("k", 2);
    EXPECT_EQ(error_for("dupkey", dup), "key 'k' appears twice");
    GgufBytes boolean;
    boolean.header(3, 0, 1).str("k").put<uint32_t>(7).put<uint8_t>(2);
    EXPECT_EQ(error_for("bool", boolean), "key 'k' is a bool with byte value 2 (expected 0 or 1)");
    GgufBytes align;
    align.header(3, 0, 1).kv_u32("general.alignment", 48);
    EXPECT_EQ(error_for("align", align), "key 'general.alignment' = 48 is not a power of two");
    GgufBytes align_type;
    align_type.header(3, 0, 1).str("general.alignment").put<uint32_t>(8).str("32");
    EXPECT_EQ(error_for("aligntype", align_type),
              "key 'general.alignment' must be a uint32, found \"32\" (string)");
}

TEST(GgufReader, MalformedTensorInfosAreOneLineErrors) {
    auto with_tensor = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                          uint64_t offset, size_t data = 64) {
        GgufBytes g;
        g.header(3, 1, 0).tensor(name, std::move(ne), type, offset);
        return error_for("t_" + std::to_string(type) + "_" + std::to_string(offset), g, data);
    };
    EXPECT_EQ(with_tensor("w", {4}, 77, 0), "tensor #0 'w' has unknown ggml type 77");
    EXPECT_EQ(with_tensor("w", {1, 1, 1, 1, 1}, 0, 0), "tensor #0 'w' has 5 dims (expected 1..4)");
    EXPECT_EQ(with_tensor("w", {48}, 8, 0),
              "tensor #0 'w' rows of 48 elements are not whole Q8_0 blocks of 32");
    EXPECT_EQ(with_tensor("w", {4}, 0, 8),
              "tensor #0 'w' offset 8 is not a multiple of the alignment 32");
    EXPECT_EQ(with_tensor("w", {64}, 0, 0),
              "tensor #0 'w' bytes [0, 256) of the data section run past its end (64 bytes); the "
              "file is truncated or corrupt");
    EXPECT_EQ(with_tensor("w", {4}, 0, 1ULL << 63 /* aligned, far past the end */).substr(0, 40),
              "tensor #0 'w' bytes [9223372036854775808");
    EXPECT_NE(with_tensor("w", {1ULL << 40, 1ULL << 40}, 0, 0).find("makes the tensor too large"),
              std::string::npos);
    EXPECT_NE(with_tensor(std::string(64, 'n'), {4}, 0, 0).find("over the limit of 63"),
              std::string::npos);
    EXPECT_EQ(with_tensor("", {4}, 0, 0), "tensor #0 has an empty name");

    GgufBytes overlap;
    overlap.header(3, 2, 0).tensor("a", {16}, 0, 0).tensor("b", {4}, 0, 32);
    EXPECT_EQ(error_for("overlap", overlap),
              "tensor 'b' at data offset 32 overlaps tensor 'a' [0, 64)");
    GgufBytes twice;
    twice.header(3, 2, 0).tensor("a", {4}, 0, 0).tensor("a", {4}, 0, 32);
    EXPECT_EQ(error_for("twice", twice), "tensor 'a' appears twice");
}

TEST(GgufReader, UndecodableTypesNameTheTensorAndType) {
    GgufBytes g;
    g.header(3, 2, 0).tensor("blk.0.attn_q.weight", {256}, 16 /* IQ2_XXS */, 0);
    g.tensor("t", {256}, 35 /* TQ2_0 */, 96);
    g.pad(32);
    g.b.append(256, '\0');
    const std::string path = write("iq", g.b);
    GgufReader r(path);
    EXPECT_EQ(r.tensor("blk.0.attn_q.weight").nbytes, 66u);
    const std::string e = error_of([&] { r.dequantize("blk.0.attn_q.weight"); });
    EXPECT_EQ(e, path +
                     ": tensor 'blk.0.attn_q.weight': ggml type IQ2_XXS is not supported (we "
                     "decode " +
                     quant::ggml_decodable_type_names() + ")");
    EXPECT_NE(error_of([&] { r.dequantize("t"); }).find("ggml type TQ2_0 is not supported"),
              std::string::npos);
}

TEST(GgufReader, RefusesNonFiles) {
    const std::string dir = qlora::test::scratch_dir("gguf_reader_dir");
    EXPECT_EQ(error_of([&] { GgufReader r(dir); }),
              dir + " is not a regular file (expected a .gguf file)");
    EXPECT_EQ(error_of([&] { GgufReader r(dir + "/none.gguf"); }),
              "cannot open " + dir + "/none.gguf: No such file or directory");
    const std::string tiny = write("tiny", "GGUF");
    EXPECT_EQ(error_of([&] { GgufReader r(tiny); }),
              tiny +
                  ": file is 4 bytes, too small for a GGUF header (magic, version and two "
                  "counts: 24 bytes)");
}

}  // namespace
}  // namespace qlora::io
