// GGUF export of stories260K against llama.cpp's gguf Python package (setup venv): it parses our
// f16 / q8_0 / q4_0 files, finds every key and tensor, dequantizes our Q8_0/Q4_0 blocks to exactly
// our values (and its quantizer gives our bytes), F16 equals the source, the vocab round-trips.
#include <gtest/gtest.h>

#include <filesystem>
#include <iterator>
#include <tuple>

#include "export/gguf_export.h"
#include "export/gguf_test_reader.h"
#include "io/safetensors.h"
#include "support/test_support.h"

namespace qlora::exporting {
namespace {

namespace fs = std::filesystem;
using qlora::test::python;

GgufExportInputs stories_inputs(const io::SafetensorsFolder& model, GgufType type,
                                const std::string& out) {
    const std::string base = qlora::test::shared_data("stories260K/hf");
    GgufExportInputs in;
    in.config = model::LlamaConfig::load(base);
    in.tokenizer_model = base + "/tokenizer.model";
    in.tensor_names = model.names();
    in.load_tensor = [&model](const std::string& name) { return model.load(name).to(at::kFloat); };
    in.type = type;
    in.out_file = out;
    in.model_name = "stories260K";
    return in;
}

// Our own decode of every tensor in the file, keyed by GGUF name, for the Python side to compare.
void save_our_decode(const std::string& gguf_path, const std::string& out) {
    const auto f = qlora::test::read_gguf(gguf_path);
    std::vector<std::pair<std::string, at::Tensor>> tensors;
    for (const auto& t : f.tensors) {
        std::vector<int64_t> shape(t.ne.rbegin(), t.ne.rend());
        const auto bytes = static_cast<int64_t>(qlora::test::gguf_tensor_bytes(t.type, t.ne));
        at::Tensor raw = at::from_blob(const_cast<char*>(f.data(t)), {bytes}, at::kByte).clone();
        tensors.emplace_back(t.name, ggml_decode(raw, static_cast<GgmlType>(t.type), shape));
    }
    io::save_safetensors(out, tensors);
}

class GgufExportStories : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufExportStories, GgufPackageReadsItExactly) {
    const std::string type = GetParam();
    const std::string base = qlora::test::shared_data("stories260K/hf");
    const std::string dir = qlora::test::scratch_dir("gguf_stories_" + type);
    const std::string out = dir + "/stories260K-" + type + ".gguf";
    io::SafetensorsFolder model(base);
    GgufExportSummary s = export_gguf(stories_inputs(model, parse_gguf_type(type), out));

    EXPECT_EQ(s.tensors, 2 + 5 * 9);  // token_embd, output_norm, 9 per layer (tied: no output)
    EXPECT_EQ(s.bytes, static_cast<int64_t>(fs::file_size(out)));
    std::cout << "[ measured ] " << type << ": " << s.bytes << " bytes;";
    for (const auto& [name, n] : s.tensors_by_type) std::cout << " " << n << " " << name;
    std::cout << "\n";
    EXPECT_EQ(s.tensors_by_type.at("F32"), 11);
    if (type != "f16") {
        EXPECT_EQ(s.fallbacks.size(), 5u);  // ffn_down: rows of 172 are not a multiple of 32
        EXPECT_EQ(s.fallbacks[0], "blk.0.ffn_down.weight");
    }
    if (type == "q4_0") {
        EXPECT_EQ(s.tensors_by_type.at("Q4_0"), 5 * 6);
        EXPECT_EQ(s.tensors_by_type.at("Q8_0"), 1);  // the tied embedding is also the output
    }
    EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()),
              1);  // no temp left

    const std::string ours = dir + "/ours.safetensors";
    save_our_decode(out, ours);
    auto r =
        qlora::test::run_command(python() + " " + QLORA_SOURCE_DIR + "/scripts/check_gguf.py " +
                                 out + " " + base + " " + type + " " + ours + " stories260K");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("all as expected"), std::string::npos) << r.output;
    std::cout << r.output;
}

INSTANTIATE_TEST_SUITE_P(Types, GgufExportStories, ::testing::Values("f16", "q8_0", "q4_0"));

TEST(GgufExportStoriesF16, QAndKPermuteBackToTheSource) {
    const std::string base = qlora::test::shared_data("stories260K/hf");
    const std::string dir = qlora::test::scratch_dir("gguf_stories_perm");
    io::SafetensorsFolder model(base);
    export_gguf(stories_inputs(model, GgufType::kF16, dir + "/m.gguf"));
    const auto f = qlora::test::read_gguf(dir + "/m.gguf");
    for (const auto& [gguf, hf, heads] :
         {std::tuple{"blk.3.attn_q.weight", "model.layers.3.self_attn.q_proj.weight", 8},
          std::tuple{"blk.3.attn_k.weight", "model.layers.3.self_attn.k_proj.weight", 4}}) {
        const auto& t = f.tensor(gguf);
        at::Tensor src = model.load(hf).to(at::kFloat);
        at::Tensor raw =
            at::from_blob(const_cast<char*>(f.data(t)), {src.numel() * 2}, at::kByte).clone();
        at::Tensor back = unpermute_rope_rows(ggml_decode(raw, GgmlType::kF16, src.sizes()), heads);
        EXPECT_TRUE(qlora::test::tensors_identical(src.to(at::kHalf).to(at::kFloat), back)) << gguf;
        EXPECT_FALSE(at::equal(ggml_decode(raw, GgmlType::kF16, src.sizes()), back))
            << "not permuted: " << gguf;
    }
}

// llama.cpp's own stories260K.gguf (its CI model, converted from the llama2.c checkpoint) is an
// independent reference for tensor names, Q/K row order and the vocab: our f16 export of the
// Hugging Face folder of the same weights must equal it up to the f16 rounding of the matrices.
TEST(GgufExportStoriesF16, EqualsLlamaCppsOwnConversion) {
    const std::string base = qlora::test::shared_data("stories260K/hf");
    const std::string dir = qlora::test::scratch_dir("gguf_stories_reference");
    io::SafetensorsFolder model(base);
    export_gguf(stories_inputs(model, GgufType::kF16, dir + "/m.gguf"));
    auto r = qlora::test::run_command(python() + " " + QLORA_SOURCE_DIR +
                                      "/scripts/check_gguf_reference.py " + dir + "/m.gguf " +
                                      qlora::test::shared_data("stories260K/stories260K.gguf"));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("48 reference tensors matched"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace qlora::exporting
