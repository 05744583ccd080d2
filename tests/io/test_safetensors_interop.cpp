// Interop with the reference implementation: the Python safetensors package of the setup venv reads
// what we write (every dtype, metadata, sharded folders) and we read what it writes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace qlora::io {
namespace {

using qlora::test::python;

using qlora::test::run_command;
using qlora::test::tensors_identical;

// Writes the script beside the data and runs it; quoting a program through `python -c` is fragile.
qlora::test::CommandResult run_python(const std::string& dir, const std::string& script,
                                      const std::string& args) {
    std::string path = dir + "/script.py";
    std::ofstream(path) << script;
    std::ostringstream command;  // streams: GCC 12 misreports "'" + std::string as an overflow
    command << '\'' << python() << "' '" << path << "' " << args;
    return run_command(command.str());
}

// Lines of `output` that start with `prefix` (Python and torch may add warnings around them).
std::vector<std::string> lines_with(const std::string& output, const std::string& prefix) {
    std::vector<std::string> out;
    std::istringstream in(output);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(prefix, 0) == 0) out.push_back(line);
    }
    return out;
}

std::string torch_dtype_name(c10::ScalarType t) {
    static const std::map<c10::ScalarType, std::string> names = {
        {at::kDouble, "float64"},
        {at::kFloat, "float32"},
        {at::kHalf, "float16"},
        {at::kBFloat16, "bfloat16"},
        {at::kLong, "int64"},
        {at::kInt, "int32"},
        {at::kShort, "int16"},
        {at::kChar, "int8"},
        {at::kByte, "uint8"},
        {at::kBool, "bool"},
        {at::kUInt16, "uint16"},
        {at::kUInt32, "uint32"},
        {at::kUInt64, "uint64"},
        {at::kFloat8_e4m3fn, "float8_e4m3fn"},
        {at::kFloat8_e5m2, "float8_e5m2"}};
    return names.at(t);
}

std::string python_list(at::IntArrayRef shape) {
    std::ostringstream out;
    out << '[';
    for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
    out << ']';
    return out.str();
}

int64_t byte_sum(const at::Tensor& t) {
    return t.contiguous().reshape(-1).view(at::kByte).to(at::kLong).sum().item<int64_t>();
}

const char* kReadAndRewrite = R"(
import sys, torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
src, dst = sys.argv[1], sys.argv[2]
tensors = load_file(src)
with safe_open(src, "pt") as f:
    meta = f.metadata()
print("META", sorted(meta.items()))
for name in sorted(tensors):
    t = tensors[name]
    s = int(t.reshape(-1).view(torch.uint8).to(torch.int64).sum())
    print("T", name, str(t.dtype).replace("torch.", ""), list(t.shape), s)
save_file(tensors, dst, metadata=meta)
)";

TEST(SafetensorsInterop, PythonReadsOurFileBitExact) {
    std::string dir = qlora::test::scratch_dir("st_interop_ours");
    at::manual_seed(11);
    const std::vector<c10::ScalarType> dtypes = {
        at::kDouble, at::kFloat,  at::kHalf,   at::kBFloat16,      at::kLong,
        at::kInt,    at::kShort,  at::kChar,   at::kByte,          at::kBool,
        at::kUInt16, at::kUInt32, at::kUInt64, at::kFloat8_e4m3fn, at::kFloat8_e5m2};
    std::map<std::string, at::Tensor> tensors;
    for (auto dtype : dtypes) {
        std::string code = safetensors_dtype_code(dtype);
        auto bits =
            at::randint(0, 256, {24 * static_cast<int64_t>(c10::elementSize(dtype))}, at::kByte);
        tensors[code + ".full"] = dtype == at::kBool ? at::randint(0, 2, {2, 3, 4}).to(at::kBool)
                                                     : bits.view(dtype).reshape({2, 3, 4});
        tensors[code + ".scalar"] = tensors[code + ".full"].reshape(-1)[5].clone();
        tensors[code + ".empty"] = at::empty({3, 0}, at::TensorOptions().dtype(dtype));
    }
    std::map<std::string, std::string> metadata = {{"format", "pt"}, {"origin", "qlora-cpp"}};
    save_safetensors(dir + "/ours.safetensors", {tensors.begin(), tensors.end()}, metadata);

    auto result =
        run_python(dir, kReadAndRewrite, dir + "/ours.safetensors " + dir + "/python.safetensors");
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_EQ(lines_with(result.output, "META "),
              (std::vector<std::string>{"META [('format', 'pt'), ('origin', 'qlora-cpp')]"}))
        << result.output;
    std::vector<std::string> expected;
    for (const auto& [name, t] : tensors) {
        std::ostringstream line;
        line << "T " << name << ' ' << torch_dtype_name(t.scalar_type()) << ' '
             << python_list(t.sizes()) << ' ' << byte_sum(t);
        expected.push_back(line.str());
    }
    EXPECT_EQ(lines_with(result.output, "T "), expected) << result.output;

    // Python's rewrite of what it loaded must come back bit-identical.
    SafetensorsReader reader(dir + "/python.safetensors");
    EXPECT_EQ(reader.metadata(), metadata);
    ASSERT_EQ(reader.names().size(), tensors.size());
    for (const auto& [name, t] : tensors)
        EXPECT_TRUE(tensors_identical(t, reader.load(name))) << name;
}

const char* kWriteReference = R"(
import sys, torch
from safetensors.torch import save_file
t = {
    "f32": torch.arange(6, dtype=torch.float32).reshape(2, 3) * 0.5 - 1,
    "f16": torch.arange(5, dtype=torch.float16) / 4,
    "bf16": torch.arange(5, dtype=torch.bfloat16) * 3,
    "f64": torch.arange(3, dtype=torch.float64) / 3,
    "i64": torch.arange(4, dtype=torch.int64) * -1000000000000,
    "i32": torch.arange(4, dtype=torch.int32) - 2,
    "i16": torch.arange(4, dtype=torch.int16) * -300,
    "i8": torch.arange(4, dtype=torch.int8) - 100,
    "u8": torch.arange(4, dtype=torch.uint8) + 250,
    "bool": torch.tensor([True, False, True]),
    "scalar": torch.tensor(2.5),
    "empty": torch.zeros(0, 3),
}
save_file(t, sys.argv[1], metadata={"format": "pt", "writer": "python"})
print("OK")
)";

TEST(SafetensorsInterop, WeReadPythonWrittenFile) {
    std::string dir = qlora::test::scratch_dir("st_interop_theirs");
    auto result = run_python(dir, kWriteReference, dir + "/theirs.safetensors");
    ASSERT_EQ(result.exit_code, 0) << result.output;

    // The same formulas in LibTorch give the same bits (same torch version as the venv).
    std::map<std::string, at::Tensor> expected = {
        {"f32", at::arange(6, at::kFloat).reshape({2, 3}) * 0.5 - 1},
        {"f16", at::arange(5, at::kHalf) / 4},
        {"bf16", at::arange(5, at::kBFloat16) * 3},
        {"f64", at::arange(3, at::kDouble) / 3},
        {"i64", at::arange(4, at::kLong) * -1000000000000LL},
        {"i32", at::arange(4, at::kInt) - 2},
        {"i16", at::arange(4, at::kShort) * -300},
        {"i8", at::arange(4, at::kChar) - 100},
        {"u8", at::arange(4, at::kByte) + 250},
        {"bool", at::tensor({1, 0, 1}).to(at::kBool)},
        {"scalar", at::scalar_tensor(2.5, at::kFloat)},
        {"empty", at::zeros({0, 3})},
    };
    SafetensorsReader reader(dir + "/theirs.safetensors");
    EXPECT_EQ(reader.metadata(),
              (std::map<std::string, std::string>{{"format", "pt"}, {"writer", "python"}}));
    ASSERT_EQ(reader.names().size(), expected.size());
    for (const auto& [name, t] : expected) {
        EXPECT_TRUE(tensors_identical(t, reader.load(name))) << name;
        EXPECT_TRUE(tensors_identical(t, reader.view(name))) << name;
    }
    EXPECT_EQ(reader.load("f32")[1][2].item<float>(), 1.5f);  // non-zero guard on the formulas
}

const char* kReadShardedFolder = R"(
import json, os, sys
from safetensors import safe_open
folder = sys.argv[1]
index = json.load(open(os.path.join(folder, "model.safetensors.index.json")))
total = 0
for name, file in sorted(index["weight_map"].items()):
    with safe_open(os.path.join(folder, file), "pt") as f:
        t = f.get_tensor(name)
        total += t.numel() * t.element_size()
        print("T", name, file, float(t.double().sum()))
print("TOTAL", index["metadata"]["total_size"], total)
)";

TEST(SafetensorsInterop, PythonReadsOurShardedFolder) {
    std::string dir = qlora::test::scratch_dir("st_interop_sharded");
    ShardedSafetensorsWriter writer(dir, "model", 64);
    const char* names[] = {"w0", "w1", "w2", "w3"};
    for (int i = 0; i < 4; ++i) writer.add(names[i], at::full({10}, 1.0f + i));
    writer.finish();
    auto result = run_python(dir, kReadShardedFolder, dir);
    ASSERT_EQ(result.exit_code, 0) << result.output;
    EXPECT_EQ(lines_with(result.output, "T "),
              (std::vector<std::string>{"T w0 model-00001-of-00004.safetensors 10.0",
                                        "T w1 model-00002-of-00004.safetensors 20.0",
                                        "T w2 model-00003-of-00004.safetensors 30.0",
                                        "T w3 model-00004-of-00004.safetensors 40.0"}))
        << result.output;
    EXPECT_EQ(lines_with(result.output, "TOTAL "), (std::vector<std::string>{"TOTAL 160 160"}));
}

}  // namespace
}  // namespace qlora::io
