// Bit-compatibility with bitsandbytes: golden vectors written by scripts/gen_nf4_golden.py from
// bitsandbytes.functional.quantize_4bit / dequantize_4bit on the CPU (tests/data/nf4/).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "quant/dynamic_map.h"
#include "quant/quant4_ops.h"
#include "quant/quant4_tensor.h"
#include "support/test_support.h"

namespace qlora::quant {
namespace {

using qlora::test::tensors_identical;

struct GoldenCase {
    std::string name;
    QuantType type;
    int64_t blocksize;
    bool double_quant;
};

const io::SafetensorsReader& golden() {
    static io::SafetensorsReader reader(qlora::test::test_data("nf4/golden.safetensors"));
    return reader;
}

std::vector<GoldenCase> golden_cases() {
    std::vector<GoldenCase> out;
    auto cases = nlohmann::json::parse(golden().metadata().at("cases"));
    for (auto& [name, c] : cases.items()) {
        out.push_back({name, parse_quant_type(c.at("quant_type").get<std::string>()),
                       c.at("blocksize").get<int64_t>(), c.at("double_quant").get<bool>()});
    }
    return out;
}

TEST(Nf4Golden, CoversTheHardCases) {
    auto cases = golden_cases();
    EXPECT_GE(cases.size(), 30u);
    std::set<int64_t> blocksizes;
    for (auto& c : cases) blocksizes.insert(c.blocksize);
    EXPECT_EQ(blocksizes, (std::set<int64_t>{32, 64, 128, 256, 512, 1024, 2048, 4096}));
}

TEST(Nf4Golden, DynamicMapEqualsBitsandbytes) {
    EXPECT_TRUE(tensors_identical(golden().load("dynamic_map"), dynamic_map(/*is_signed=*/true)));
}

// Packed codes and first-level absmax: identical bytes for every case.
TEST(Nf4Golden, QuantizeMatchesBitsandbytesBytes) {
    for (const auto& c : golden_cases()) {
        SCOPED_TRACE(c.name);
        at::Tensor x = golden().load(c.name + ".input");
        Quant4Tensor t = Quant4Tensor::quantize(x, {c.type, c.blocksize, c.double_quant}, c.name);
        EXPECT_TRUE(tensors_identical(golden().load(c.name + ".packed").reshape(-1), t.packed()));
        if (!c.double_quant) {
            EXPECT_TRUE(tensors_identical(golden().load(c.name + ".absmax"), t.absmax()));
            continue;
        }
        Quantized4bit first = quantize_4bit(x, c.type, c.blocksize);
        EXPECT_TRUE(tensors_identical(golden().load(c.name + ".first_absmax"), first.absmax));
        EXPECT_TRUE(tensors_identical(golden().load(c.name + ".offset"),
                                      at::tensor({t.nested_offset()}, at::kFloat)));
        EXPECT_TRUE(tensors_identical(golden().load(c.name + ".nested_absmax"), t.nested_absmax()));
        // bitsandbytes' exact nearest rule (its CUDA kernel and default backend): identical.
        EXPECT_TRUE(tensors_identical(golden().load(c.name + ".absmax_nearest"), t.absmax()));
    }
}

// bitsandbytes' native CPU library picks nested codes through a 65536-bin table, an approximation
// of the nearest rule: where it differs from ours it is by one code, and rarely.
TEST(Nf4Golden, NestedCodesAgreeWithBitsandbytesCpuTableUpToOneStep) {
    int64_t total = 0, differ = 0;
    for (const auto& c : golden_cases()) {
        if (!c.double_quant) continue;
        SCOPED_TRACE(c.name);
        at::Tensor ours = golden().load(c.name + ".absmax_nearest").to(at::kInt);
        at::Tensor theirs = golden().load(c.name + ".absmax").to(at::kInt);
        EXPECT_LE((ours - theirs).abs().max().item<int>(), 1);
        total += ours.numel();
        differ += (ours != theirs).sum().item<int64_t>();
    }
    EXPECT_GT(total, 1000);
    EXPECT_LE(static_cast<double>(differ) / static_cast<double>(total), 0.01)
        << differ << " of " << total << " nested codes differ";
}

// Reading a bitsandbytes state (its own bytes) dequantizes to exactly bitsandbytes' floats. The one
// liberty: bitsandbytes' own CPU paths disagree on the sign of FP4's zero (code 8 gives -0.0 in its
// native kernel and CUDA, +0.0 in its torch fallback), so zeros are compared without their sign.
at::Tensor unsigned_zeros(const at::Tensor& t) { return t + 0.0; }

TEST(Nf4Golden, DequantizeOfBitsandbytesStateIsExact) {
    for (const auto& c : golden_cases()) {
        SCOPED_TRACE(c.name);
        at::Tensor x = golden().load(c.name + ".input");
        // bitsandbytes returns 1-D weights as [1, n]: compare elements in order.
        at::Tensor expected = golden().load(c.name + ".dequant").reshape(x.sizes());
        at::Tensor map = dynamic_map(/*is_signed=*/true);
        Quant4Tensor t = Quant4Tensor::from_parts(
            golden().load(c.name + ".packed"), golden().load(c.name + ".absmax"),
            c.double_quant ? golden().load(c.name + ".nested_absmax") : at::Tensor(),
            c.double_quant ? map : at::Tensor(),
            c.double_quant ? golden().load(c.name + ".offset").item<float>() : 0.0f,
            x.sizes().vec(), x.scalar_type(), c.type, c.blocksize, c.name);
        EXPECT_TRUE(tensors_identical(unsigned_zeros(expected), unsigned_zeros(t.dequantize())));
        // float32 output too: the same products before rounding to the input dtype.
        EXPECT_TRUE(
            tensors_identical(unsigned_zeros(expected),
                              unsigned_zeros(t.dequantize(at::kFloat).to(x.scalar_type()))));
    }
}

}  // namespace
}  // namespace qlora::quant
