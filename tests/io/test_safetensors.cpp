// safetensors round trips (every dtype, empty and 0-d tensors, metadata), the exact header layout,
// zero-copy views, writer argument checks, and the real stories260K checkpoint.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace qlora::io {
namespace {

namespace fs = std::filesystem;
using qlora::test::tensors_identical;

std::string read_bytes(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Random bit patterns (NaNs and denormals included): a round trip must keep every bit.
at::Tensor random_tensor(c10::ScalarType dtype, const std::vector<int64_t>& shape) {
    if (dtype == at::kBool) return at::randint(0, 2, shape).to(at::kBool);
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    if (numel == 0) return at::empty(shape, at::TensorOptions().dtype(dtype));
    auto bytes = at::randint(0, 256, {numel * static_cast<int64_t>(c10::elementSize(dtype))},
                             at::TensorOptions().dtype(at::kByte));
    return bytes.view(dtype).reshape(shape);
}

const std::vector<c10::ScalarType> kAllDtypes = {
    at::kDouble, at::kFloat,  at::kHalf,   at::kBFloat16,      at::kLong,
    at::kInt,    at::kShort,  at::kChar,   at::kByte,          at::kBool,
    at::kUInt16, at::kUInt32, at::kUInt64, at::kFloat8_e4m3fn, at::kFloat8_e5m2,
};

TEST(SafetensorsDtype, CodesMapBothWays) {
    EXPECT_EQ(safetensors_dtype("F32", "x"), at::kFloat);
    EXPECT_EQ(safetensors_dtype("BF16", "x"), at::kBFloat16);
    EXPECT_EQ(safetensors_dtype("I16", "x"), at::kShort);
    EXPECT_EQ(safetensors_dtype_code(at::kHalf), "F16");
    EXPECT_EQ(safetensors_dtype_code(at::kBool), "BOOL");
    for (auto t : kAllDtypes) EXPECT_EQ(safetensors_dtype(safetensors_dtype_code(t), "x"), t);
}

TEST(SafetensorsDtype, UnknownCodeAndUnsupportedTypeAreErrors) {
    try {
        safetensors_dtype("F99", "a.safetensors: tensor 'w'");
        FAIL() << "no throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("a.safetensors: tensor 'w': unknown dtype 'F99'"),
                  std::string::npos)
            << e.what();
    }
    EXPECT_THROW(safetensors_dtype_code(at::kComplexFloat), Error);
}

TEST(SafetensorsRoundTrip, EveryDtypeBitExactIncludingEmptyAndScalar) {
    at::manual_seed(7);
    const std::vector<std::vector<int64_t>> shapes = {{}, {0}, {3, 0, 2}, {5}, {2, 3, 4}};
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (auto dtype : kAllDtypes) {
        for (size_t s = 0; s < shapes.size(); ++s) {
            std::string name = safetensors_dtype_code(dtype) + ".s" + std::to_string(s);
            tensors.emplace_back(name, random_tensor(dtype, shapes[s]));
        }
    }
    std::string path = qlora::test::scratch_dir("st_roundtrip") + "/all.safetensors";
    save_safetensors(path, tensors);

    SafetensorsReader reader(path);
    ASSERT_EQ(reader.names().size(), tensors.size());
    for (const auto& [name, expected] : tensors) {
        SCOPED_TRACE(name);
        EXPECT_TRUE(tensors_identical(expected, reader.load(name)));
        EXPECT_TRUE(tensors_identical(expected, reader.view(name)));
        EXPECT_EQ(reader.info(name).dtype, expected.scalar_type());
        EXPECT_EQ(reader.info(name).shape, expected.sizes().vec());
    }
    EXPECT_TRUE(reader.metadata().empty());
}

TEST(SafetensorsRoundTrip, MetadataAndNamesInDataOrder) {
    std::map<std::string, std::string> metadata = {
        {"format", "pt"}, {"note", "quotes \" and unicode \u00e9"}, {"empty", ""}};
    std::vector<std::pair<std::string, at::Tensor>> tensors = {
        {"c", at::ones({2})}, {"a", at::zeros({3}, at::kHalf)}, {"b", at::arange(4)}};
    std::string path = qlora::test::scratch_dir("st_metadata") + "/m.safetensors";
    save_safetensors(path, tensors, metadata);
    SafetensorsReader reader(path);
    EXPECT_EQ(reader.metadata(), metadata);
    EXPECT_EQ(reader.names(), (std::vector<std::string>{"c", "a", "b"}));
    EXPECT_EQ(reader.info("a").begin, 8u);
    EXPECT_EQ(reader.info("a").end, 14u);
    EXPECT_EQ(reader.path(), path);
}

TEST(SafetensorsRoundTrip, NonContiguousInputIsWrittenInLogicalOrder) {
    auto base = at::arange(12, at::kFloat).reshape({3, 4});
    auto transposed = base.t();
    std::string path = qlora::test::scratch_dir("st_noncontig") + "/t.safetensors";
    save_safetensors(path, {{"t", transposed}, {"slice", base.index({at::indexing::Slice(), 1})}});
    SafetensorsReader reader(path);
    EXPECT_TRUE(tensors_identical(transposed.contiguous(), reader.load("t")));
    EXPECT_TRUE(tensors_identical(at::tensor({1.f, 5.f, 9.f}), reader.load("slice")));
}

TEST(SafetensorsLayout, HeaderIsExactCompactJsonPaddedWithSpacesTo8) {
    std::string path = qlora::test::scratch_dir("st_layout") + "/x.safetensors";
    save_safetensors(path, {{"x", at::arange(6, at::kFloat).reshape({2, 3})}}, {{"format", "pt"}});
    std::string bytes = read_bytes(path);
    uint64_t header_len = 0;
    for (int i = 7; i >= 0; --i)
        header_len = (header_len << 8) | static_cast<unsigned char>(bytes[i]);
    EXPECT_EQ(header_len % 8, 0u);
    EXPECT_EQ(bytes.size(), 8 + header_len + 24);
    std::string json_text =
        R"({"__metadata__":{"format":"pt"},"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
    std::string header = bytes.substr(8, header_len);
    EXPECT_EQ(header.substr(0, json_text.size()), json_text);
    EXPECT_EQ(header.substr(json_text.size()), std::string(header_len - json_text.size(), ' '));
    float third = 0;
    std::memcpy(&third, bytes.data() + 8 + header_len + 8, 4);
    EXPECT_EQ(third, 2.0f);
}

TEST(SafetensorsLayout, HeaderPaddingForEveryRemainder) {
    // Names of growing length move the JSON length through all remainders mod 8.
    std::string dir = qlora::test::scratch_dir("st_padding");
    for (int len = 1; len <= 8; ++len) {
        std::string path = dir + "/p" + std::to_string(len) + ".safetensors";
        save_safetensors(path, {{std::string(len, 'n'), at::ones({1}, at::kByte)}});
        std::string bytes = read_bytes(path);
        EXPECT_EQ((bytes.size() - 1) % 8, 0u) << "name length " << len;
        EXPECT_EQ(SafetensorsReader(path).load(std::string(len, 'n')).item<uint8_t>(), 1);
    }
}

TEST(SafetensorsReader, ViewIsZeroCopyAndOutlivesReader) {
    std::string path = qlora::test::scratch_dir("st_view") + "/v.safetensors";
    auto w = at::arange(10, at::kFloat);
    save_safetensors(path, {{"w", w}});
    at::Tensor view;
    {
        SafetensorsReader reader(path);
        view = reader.view("w");
        EXPECT_EQ(view.data_ptr(), reader.view("w").data_ptr());
        EXPECT_NE(view.data_ptr(), reader.load("w").data_ptr());
    }
    EXPECT_TRUE(tensors_identical(w, view));  // the mapping is still alive
}

TEST(SafetensorsReader, UnalignedRangeLoadsCorrectly) {
    // Legal but unusual: a 1-byte tensor pushes an F32 to data offset 1.
    std::string header = R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                         R"("b":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}})";
    std::string file(8, '\0');
    file[0] = static_cast<char>(header.size());
    float value = 3.25f;
    file += header + '\x2a' + std::string(reinterpret_cast<const char*>(&value), 4);
    std::string path = qlora::test::scratch_dir("st_unaligned") + "/u.safetensors";
    std::ofstream(path, std::ios::binary) << file;
    SafetensorsReader reader(path);
    EXPECT_EQ(reader.load("a").item<uint8_t>(), 42);
    EXPECT_EQ(reader.load("b").item<float>(), 3.25f);
}

TEST(SafetensorsReader, MissingTensorNamesFileAndTensor) {
    std::string path = qlora::test::scratch_dir("st_missing") + "/m.safetensors";
    save_safetensors(path, {{"present", at::ones({1})}});
    SafetensorsReader reader(path);
    EXPECT_FALSE(reader.contains("absent"));
    try {
        reader.info("absent");
        FAIL() << "no throw";
    } catch (const Error& e) {
        std::string msg = e.what();
        EXPECT_NE(msg.find(path), std::string::npos) << msg;
        EXPECT_NE(msg.find("no tensor named 'absent'"), std::string::npos) << msg;
    }
    EXPECT_THROW(reader.load("absent"), Error);
}

TEST(SafetensorsReader, MissingFileIsAnError) {
    try {
        SafetensorsReader reader("/nonexistent/dir/x.safetensors");
        FAIL() << "no throw";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("/nonexistent/dir/x.safetensors"), std::string::npos);
    }
}

TEST(SafetensorsWriter, RejectsBadArgumentsAndLeavesNoFile) {
    std::string dir = qlora::test::scratch_dir("st_writer_errors");
    std::string path = dir + "/bad.safetensors";
    auto expect_error = [&](const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                            const std::string& needle) {
        try {
            save_safetensors(path, tensors);
            ADD_FAILURE() << "no throw for " << needle;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
        }
    };
    expect_error({{"a", at::ones({1})}, {"a", at::ones({1})}}, "tensor 'a' is given twice");
    expect_error({{"__metadata__", at::ones({1})}}, "'__metadata__' is reserved");
    expect_error({{"c", at::ones({1}, at::kComplexFloat)}}, "tensor 'c'");
    expect_error({{"u", at::Tensor()}}, "tensor 'u' is undefined");
    EXPECT_TRUE(fs::is_empty(dir)) << "a failed save must leave neither the file nor a temp file";
}

TEST(SafetensorsWriter, OverwritesAtomicallyAndLeavesNoTempFiles) {
    std::string dir = qlora::test::scratch_dir("st_overwrite");
    std::string path = dir + "/w.safetensors";
    save_safetensors(path, {{"v", at::zeros({4})}});
    save_safetensors(path, {{"v", at::ones({2})}});
    EXPECT_TRUE(tensors_identical(at::ones({2}), SafetensorsReader(path).load("v")));
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
}

TEST(SafetensorsRealFile, Stories260K) {
    SafetensorsReader reader(qlora::test::shared_data("stories260K/hf/model.safetensors"));
    auto names = reader.names();
    ASSERT_EQ(names.size(), 47u);
    EXPECT_EQ(names.front(), "model.embed_tokens.weight");
    EXPECT_EQ(reader.metadata().at("format"), "pt");
    uint64_t previous_end = 0;
    for (const auto& name : names) {
        const TensorInfo& info = reader.info(name);
        EXPECT_EQ(info.dtype, at::kFloat) << name;
        EXPECT_GE(info.begin, previous_end) << name;
        previous_end = info.end;
    }
    EXPECT_EQ(reader.data_offset() + previous_end,
              fs::file_size(qlora::test::shared_data("stories260K/hf/model.safetensors")));

    auto embed = reader.load("model.embed_tokens.weight");
    EXPECT_EQ(embed.sizes(), (std::vector<int64_t>{512, 64}));
    // Reference values printed by the Python safetensors package.
    EXPECT_EQ(embed[0][0].item<float>(), -0.29474878311157227f);
    EXPECT_EQ(embed[0][1].item<float>(), 0.5618956089019775f);
    EXPECT_NEAR(embed.to(at::kDouble).sum().item<double>(), -752.3677446640068, 1e-9);
    auto norm = reader.view("model.norm.weight");
    EXPECT_EQ(norm.sizes(), (std::vector<int64_t>{64}));
    EXPECT_EQ(norm[0].item<float>(), 2.4583089351654053f);
    EXPECT_EQ(reader.info("model.layers.0.mlp.down_proj.weight").shape,
              (std::vector<int64_t>{64, 172}));
}

}  // namespace
}  // namespace qlora::io
