// A corpus of broken safetensors files, built byte by byte: each must be rejected before any data
// is touched, with a one-line message naming the file and the specific problem.
#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace qlora::io {
namespace {

std::string le64(uint64_t v) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return out;
}

// A file whose header is `header` (length prefix computed) followed by `data_bytes` zero bytes.
std::string file_with(const std::string& header, size_t data_bytes) {
    return le64(header.size()) + header + std::string(data_bytes, '\0');
}

struct Case {
    const char* name;
    std::string bytes;
    std::vector<std::string> needles;  // substrings the message must contain
};

const std::string kGood = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";

std::vector<Case> corpus() {
    return {
        {"empty", "", {"file is 0 bytes", "at least 8 bytes"}},
        {"truncated_length", std::string("\x10\x00\x00", 3), {"file is 3 bytes", "too small"}},
        {"header_past_eof",
         le64(1000) + "{}",
         {"header length 1000 bytes runs past the end", "file is 10 bytes"}},
        {"header_over_limit",
         le64(200'000'000) + std::string(64, ' '),
         {"header length 200000000 bytes exceeds the 100000000-byte limit"}},
        {"truncated_data",
         file_with(kGood, 20),
         {"tensor 'w': data range [0, 24) ends past the data section (20 bytes"}},
        {"not_json", file_with("{\"w\": nope}", 0), {"header (11 bytes) is not valid JSON"}},
        {"binary_garbage", file_with(std::string("\x01\xff\n\x00", 4), 0), {"is not valid JSON"}},
        {"empty_header", file_with("", 0), {"header (0 bytes) is not valid JSON"}},
        {"json_array", file_with("[1, 2, 3]", 0), {"header must be a JSON object, found array"}},
        {"entry_not_object",
         file_with(R"({"w": 5})", 0),
         {"tensor 'w': entry must be an object", "found number"}},
        {"missing_dtype",
         file_with(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4),
         {"tensor 'w' has no 'dtype' field"}},
        {"missing_offsets",
         file_with(R"({"w":{"dtype":"F32","shape":[1]}})", 4),
         {"tensor 'w' has no 'data_offsets' field"}},
        {"dtype_not_string",
         file_with(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 4),
         {"tensor 'w': dtype must be a string, found 7"}},
        {"unknown_dtype",
         file_with(R"({"w":{"dtype":"F99","shape":[1],"data_offsets":[0,4]}})", 4),
         {"tensor 'w': unknown dtype 'F99'", "expected one of F64, F32"}},
        {"shape_not_array",
         file_with(R"({"w":{"dtype":"F32","shape":4,"data_offsets":[0,16]}})", 16),
         {"tensor 'w': shape must be an array of integers, found number 4"}},
        {"float_dim",
         file_with(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8),
         {"tensor 'w': shape [2.5] has dim 0 = 2.5, expected an integer"}},
        {"negative_dim",
         file_with(R"({"w":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,24]}})", 24),
         {"tensor 'w': shape [2,-3] has negative dim 1 = -3"}},
        {"size_mismatch",
         file_with(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 24),
         {"tensor 'w' has shape [2, 3] (6 x F32 = 24 bytes) but its data range [0, 20) holds 20 "
          "bytes"}},
        {"shape_overflow",
         file_with(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}})",
                   4),
         {"tensor 'w' has shape [4294967296, 4294967296] whose byte size overflows 64 bits"}},
        {"offsets_wrong_arity",
         file_with(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", 4),
         {"tensor 'w': data_offsets must be [begin, end]", "found [0]"}},
        {"negative_offset",
         file_with(R"({"w":{"dtype":"U8","shape":[4],"data_offsets":[-4,0]}})", 4),
         {"tensor 'w': data_offsets must be [begin, end] with non-negative integers, found "
          "[-4,0]"}},
        {"reversed_offsets",
         file_with(R"({"w":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", 8),
         {"tensor 'w': data_offsets [8, 4) ends before it begins"}},
        {"range_beyond_data",
         file_with(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[16,24]}})", 20),
         {"tensor 'w': data range [16, 24) ends past the data section (20 bytes"}},
        {"overlap",
         file_with(R"({"a":{"dtype":"F32","shape":[6],"data_offsets":[0,24]},)"
                   R"("b":{"dtype":"F32","shape":[4],"data_offsets":[16,32]}})",
                   32),
         {"tensors 'a' [0, 24) and 'b' [16, 32) overlap"}},
        {"same_range",
         file_with(R"({"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},)"
                   R"("b":{"dtype":"I8","shape":[4],"data_offsets":[0,4]}})",
                   4),
         {"tensors 'a' [0, 4) and 'b' [0, 4) overlap"}},
        {"metadata_not_object",
         file_with(R"({"__metadata__":["pt"]})", 0),
         {"__metadata__ must be a JSON object of strings, found array"}},
        {"metadata_non_string",
         file_with(R"({"__metadata__":{"format":"pt","step":3}})", 0),
         {"__metadata__ value for 'step' must be a string, found number 3"}},
        {"duplicate_tensor",
         file_with(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                   R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                   2),
         {"header has duplicate key 'w'"}},
        {"duplicate_field",
         file_with(R"({"w":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}})", 1),
         {"header has duplicate field 'dtype'"}},
    };
}

TEST(SafetensorsMalformed, EveryCorruptFileIsRejectedWithASpecificMessage) {
    std::string dir = qlora::test::scratch_dir("st_malformed");
    for (const Case& c : corpus()) {
        SCOPED_TRACE(c.name);
        std::string path = dir + "/" + c.name + ".safetensors";
        std::ofstream(path, std::ios::binary) << c.bytes;
        try {
            SafetensorsReader reader(path);
            ADD_FAILURE() << "accepted " << c.name;
        } catch (const Error& e) {
            std::string msg = e.what();
            EXPECT_EQ(msg.rfind(path + ":", 0), 0u) << "message must start with the file: " << msg;
            EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
            for (const auto& needle : c.needles) {
                EXPECT_NE(msg.find(needle), std::string::npos)
                    << "missing '" << needle << "' in: " << msg;
            }
            EXPECT_EQ(e.code(), ExitCode::kBadInput);
        }
    }
}

TEST(SafetensorsMalformed, ValidVariantsAreAccepted) {
    // Guards the corpus: the same shapes written correctly must load.
    std::string dir = qlora::test::scratch_dir("st_malformed_ok");
    const std::vector<std::pair<const char*, std::string>> ok = {
        {"good", file_with(kGood, 24)},
        {"empty_object", file_with("{}", 0)},
        {"trailing_spaces", file_with(kGood + "    ", 24)},
        {"zero_size_shared_offset",
         file_with(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[4,4]},)"
                   R"("b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                   R"("c":{"dtype":"F32","shape":[0,7],"data_offsets":[4,4]}})",
                   4)},
        {"gap_between_ranges", file_with(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                                         R"("b":{"dtype":"U8","shape":[1],"data_offsets":[3,4]}})",
                                         4)},
    };
    for (const auto& [name, bytes] : ok) {
        std::string path = dir + "/" + name + ".safetensors";
        std::ofstream(path, std::ios::binary) << bytes;
        EXPECT_NO_THROW(SafetensorsReader reader(path)) << name;
    }
    SafetensorsReader reader(dir + "/zero_size_shared_offset.safetensors");
    EXPECT_EQ(reader.names(), (std::vector<std::string>{"b", "a", "c"}));
    EXPECT_EQ(reader.load("c").sizes(), (std::vector<int64_t>{0, 7}));
}

TEST(SafetensorsMalformed, FolderInsteadOfFile) {
    std::string dir = qlora::test::scratch_dir("st_malformed_dir");
    try {
        SafetensorsReader reader(dir);
        FAIL() << "accepted a folder";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("is not a regular file"), std::string::npos)
            << e.what();
    }
}

}  // namespace
}  // namespace qlora::io
