// The GGUF writer: exact header bytes, every metadata type and tensor info read back by the test
// reader (written from the spec), 32-byte alignment of the data section and of every tensor, and
// misuse refused with nothing left on disk.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>

#include "export/gguf_test_reader.h"
#include "export/gguf_writer.h"
#include "io/atomic_file.h"
#include "support/test_support.h"

namespace qlora::exporting {
namespace {

namespace fs = std::filesystem;
using qlora::test::error_of;

template <typename T>
T at_offset(const std::string& b, size_t off) {
    T v;
    std::memcpy(&v, b.data() + off, sizeof(T));
    return v;
}

size_t files_in(const std::string& dir) {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
    return n;
}

TEST(GgufWriter, HeaderBytes) {
    const std::string dir = qlora::test::scratch_dir("gguf_header");
    const std::string path = dir + "/h.gguf";
    GgufWriter w(path);
    w.add_uint32("a", 7);
    EXPECT_EQ(w.add_tensor_info("t", {1, 32}, GgmlType::kQ8_0), 34u);
    std::vector<uint8_t> block(34, 0);
    block[2] = 5;
    w.write_tensor_data("t", block.data(), block.size());
    const uint64_t size = w.finish();

    const auto f = qlora::test::read_gguf(path);
    const std::string& b = f.bytes;
    EXPECT_EQ(size, b.size());
    EXPECT_EQ(b.substr(0, 4), "GGUF");
    EXPECT_EQ(at_offset<uint32_t>(b, 4), 3u);   // version
    EXPECT_EQ(at_offset<uint64_t>(b, 8), 1u);   // tensor count
    EXPECT_EQ(at_offset<uint64_t>(b, 16), 2u);  // kv count: a + general.alignment
    // first KV: key length 1, "a", type uint32 (4), value 7
    EXPECT_EQ(at_offset<uint64_t>(b, 24), 1u);
    EXPECT_EQ(b[32], 'a');
    EXPECT_EQ(at_offset<uint32_t>(b, 33), 4u);
    EXPECT_EQ(at_offset<uint32_t>(b, 37), 7u);
    EXPECT_EQ(f.key_order, (std::vector<std::string>{"a", "general.alignment"}));
    EXPECT_EQ(f.kv.at("general.alignment").u, 32u);
    // tensor info: "t", 2 dims, ne = {32, 1} (row length first), type Q8_0 = 8, offset 0
    const auto& t = f.tensor("t");
    EXPECT_EQ(t.ne, (std::vector<uint64_t>{32, 1}));
    EXPECT_EQ(t.type, 8u);
    EXPECT_EQ(t.offset, 0u);
    EXPECT_EQ(f.data_start % 32, 0u);
    EXPECT_EQ(f.data(t)[2], 5);
    EXPECT_EQ(b.size(), f.data_start + 64);  // 34 bytes padded to 64
}

TEST(GgufWriter, EveryValueTypeAndTensorRoundTrips) {
    const std::string dir = qlora::test::scratch_dir("gguf_roundtrip");
    const std::string path = dir + "/r.gguf";
    GgufWriter w(path);
    w.add_uint32("u", 4000000000u);
    w.add_int32("i", -5);
    w.add_float32("f", 1.5e-5f);
    w.add_bool("yes", true);
    w.add_bool("no", false);
    w.add_string("s", "h\xc3\xa9llo");
    w.add_string_array("sa", {"", "\xe2\x96\x81the", "<0x0A>"});
    w.add_float32_array("fa", {-1000.0f, 0.25f});
    w.add_int32_array("ia", {1, 2, 6});
    // sizes 12, 64, 40 and 18 bytes: each starts on a multiple of 32
    at::Tensor a = at::arange(3, at::kFloat);
    at::Tensor b = at::arange(32, at::kFloat).reshape({2, 16}).to(at::kHalf);
    w.add_tensor_info("a", {3}, GgmlType::kF32);
    w.add_tensor_info("b", {2, 16}, GgmlType::kF16);
    w.add_tensor_info("c", {2, 2, 5}, GgmlType::kF32);
    w.add_tensor_info("d", {32}, GgmlType::kQ4_0);
    w.write_tensor_data("a", a.data_ptr(), 12);
    w.write_tensor_data("b", b.data_ptr(), 64);
    at::Tensor c = at::linspace(-1, 1, 20);
    w.write_tensor_data("c", c.data_ptr(), 80);
    w.write_tensor_data("d", at::full({18}, 0x88, at::kByte));
    w.finish();

    const auto f = qlora::test::read_gguf(path);
    EXPECT_EQ(f.kv.at("u").type, 4u);
    EXPECT_EQ(f.kv.at("u").u, 4000000000u);
    EXPECT_EQ(f.kv.at("i").type, 5u);
    EXPECT_EQ(f.kv.at("i").i, -5);
    EXPECT_EQ(f.kv.at("f").type, 6u);
    EXPECT_EQ(static_cast<float>(f.kv.at("f").f), 1.5e-5f);
    EXPECT_EQ(f.kv.at("yes").type, 7u);
    EXPECT_EQ(f.kv.at("yes").u, 1u);
    EXPECT_EQ(f.kv.at("no").u, 0u);
    EXPECT_EQ(f.kv.at("s").s, "h\xc3\xa9llo");
    EXPECT_EQ(f.kv.at("sa").type, 9u);
    EXPECT_EQ(f.kv.at("sa").array_type, 8u);
    EXPECT_EQ(f.kv.at("sa").strings, (std::vector<std::string>{"", "\xe2\x96\x81the", "<0x0A>"}));
    EXPECT_EQ(f.kv.at("fa").array_type, 6u);
    EXPECT_EQ(f.kv.at("fa").numbers, (std::vector<double>{-1000.0, 0.25}));
    EXPECT_EQ(f.kv.at("ia").array_type, 5u);
    EXPECT_EQ(f.kv.at("ia").numbers, (std::vector<double>{1, 2, 6}));

    ASSERT_EQ(f.tensors.size(), 4u);
    const uint64_t offsets[] = {0, 32, 96, 192};
    for (size_t k = 0; k < 4; ++k) {
        EXPECT_EQ(f.tensors[k].offset, offsets[k]) << f.tensors[k].name;
        EXPECT_EQ((f.data_start + f.tensors[k].offset) % 32, 0u);
    }
    EXPECT_EQ(f.tensor("c").ne, (std::vector<uint64_t>{5, 2, 2}));
    EXPECT_EQ(f.tensor("d").type, 2u);
    EXPECT_EQ(std::memcmp(f.data(f.tensor("a")), a.data_ptr(), 12), 0);
    EXPECT_EQ(std::memcmp(f.data(f.tensor("b")), b.data_ptr(), 64), 0);
    EXPECT_EQ(std::memcmp(f.data(f.tensor("c")), c.data_ptr(), 80), 0);
    EXPECT_EQ(static_cast<uint8_t>(f.data(f.tensor("d"))[17]), 0x88);
    // padding after the 12-byte tensor is zeros; the file ends on the alignment
    for (int p = 12; p < 32; ++p) EXPECT_EQ(f.data(f.tensor("a"))[p], 0);
    EXPECT_EQ(f.bytes.size(), f.data_start + 224);
    EXPECT_EQ(files_in(dir), 1u);
}

TEST(GgufWriter, MisuseIsRefusedAndLeavesNoFile) {
    const std::string dir = qlora::test::scratch_dir("gguf_misuse");
    const std::string path = dir + "/m.gguf";
    {
        GgufWriter w(path);
        w.add_uint32("k", 1);
        EXPECT_EQ(error_of([&] { w.add_int32("k", 2); }), path + ": metadata key 'k' added twice");
        EXPECT_NE(error_of([&] {
                      w.add_tensor_info("x", {3, 48}, GgmlType::kQ8_0);
                  }).find("rows of 48 elements cannot be Q8_0"),
                  std::string::npos);
        w.add_tensor_info("x", {2, 32}, GgmlType::kQ8_0);
        w.add_tensor_info("y", {4}, GgmlType::kF32);
        std::vector<uint8_t> bytes(68);
        EXPECT_EQ(error_of([&] { w.write_tensor_data("y", bytes.data(), 16); }),
                  path + ": expected the data of tensor 'x' next (declaration order), got 'y'");
        EXPECT_EQ(error_of([&] { w.write_tensor_data("x", bytes.data(), 67); }),
                  path + ": tensor 'x' (Q8_0) needs 68 bytes, got 67");
        w.write_tensor_data("x", bytes.data(), 68);
        EXPECT_EQ(error_of([&] { w.add_uint32("late", 1); }),
                  path + ": metadata 'late' added after tensor data started");
        EXPECT_EQ(error_of([&] { w.finish(); }),
                  path + ": 1 declared tensors have no data, the first 'y'");
        EXPECT_EQ(files_in(dir), 1u);  // the temporary file, until the writer goes away
    }
    EXPECT_EQ(files_in(dir), 0u);
    EXPECT_FALSE(fs::exists(path));
}

TEST(GgufWriter, UnwritableFolderFailsAtOnce) {
    const std::string dir = qlora::test::scratch_dir("gguf_unwritable");
    io::AtomicFileWriter blocker(dir + "/file");
    blocker.commit();
    const std::string msg = error_of([&] { GgufWriter w(dir + "/file/sub/x.gguf"); });
    EXPECT_NE(msg.find("cannot create " + dir + "/file/sub/x.gguf.tmp-"), std::string::npos) << msg;
}

}  // namespace
}  // namespace qlora::exporting
