// qlora-convert end to end on a small GGUF (our f16 export of stories260K): the folder it writes
// loads as the same model, and bad input is exit code 2 with one clear line, leaving nothing
// behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "export/gguf_export.h"
#include "io/safetensors.h"
#include "model/llama_loader.h"
#include "support/gguf_import.h"
#include "support/test_support.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;

std::string stories_gguf(const std::string& dir) {
    return test::stories_gguf(dir, exporting::GgufType::kQ8_0, "stories260K-q8_0.gguf");
}

int64_t line_count(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

TEST(ConvertCli, WritesAFolderThatLoadsAsTheSameModel) {
    const std::string dir = test::scratch_dir("convert_cli_ok");
    const std::string gguf = stories_gguf(dir);
    const std::string out = dir + "/hf";
    auto r = test::run_command("{ " + test::tool("qlora-convert") + " " + gguf + " " + out +
                               " 2>/dev/null; }");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_EQ(r.output.rfind("wrote " + out + ": 47 tensors", 0), 0u) << r.output;
    for (const char* f : {"config.json", "generation_config.json", "tokenizer.json",
                          "tokenizer_config.json", "model.safetensors"}) {
        EXPECT_TRUE(fs::is_regular_file(fs::path(out) / f)) << f;
    }
    nlohmann::json tok_config =
        nlohmann::json::parse(std::ifstream(out + "/tokenizer_config.json"));
    EXPECT_EQ(tok_config["bos_token"], "<s>");
    EXPECT_EQ(tok_config["eos_token"], "</s>");
    nlohmann::json tok = nlohmann::json::parse(std::ifstream(out + "/tokenizer.json"));
    EXPECT_EQ(tok["model"]["byte_fallback"], true);  // the SentencePiece ("llama") path
    torch::NoGradGuard no_grad;
    at::Tensor tokens = at::tensor({1, 100, 200, 300, 50}, at::kLong).unsqueeze(0);
    EXPECT_TRUE(test::tensors_identical(model::load_llama(gguf)->forward(tokens),
                                        model::load_llama(out)->forward(tokens)));
}

TEST(ConvertCli, BadInputIsOneLineAndExitCode2) {
    const std::string dir = test::scratch_dir("convert_cli_bad");
    const std::string gguf = stories_gguf(dir);
    const std::string tool = test::tool("qlora-convert");

    fs::create_directories(dir + "/exists");
    auto exists = test::run_command(tool + " " + gguf + " " + dir + "/exists");
    EXPECT_EQ(exists.exit_code, 2);
    EXPECT_EQ(exists.output,
              "qlora-convert: error: output " + dir +
                  "/exists already exists; choose a new folder (conversion never overwrites)\n");

    auto inside = test::run_command(tool + " " + gguf + " " + gguf + "/hf");
    EXPECT_EQ(inside.exit_code, 2);
    EXPECT_NE(inside.output.find("would be written over or inside the input"), std::string::npos)
        << inside.output;
    EXPECT_EQ(line_count(inside.output), 1);

    const std::string not_gguf = dir + "/model.gguf";
    std::ofstream(not_gguf) << "this is not a gguf file at all, just text";
    auto bad = test::run_command(tool + " " + not_gguf + " " + dir + "/out");
    EXPECT_EQ(bad.exit_code, 2);
    EXPECT_EQ(bad.output, "qlora-convert: error: " + not_gguf +
                              ": not a GGUF file (the first 4 bytes are not \"GGUF\")\n");
    EXPECT_FALSE(fs::exists(dir + "/out"));

    auto missing = test::run_command(tool + " " + dir + "/none.gguf " + dir + "/out2");
    EXPECT_EQ(missing.exit_code, 2);
    EXPECT_EQ(line_count(missing.output), 1) << missing.output;
}

}  // namespace
}  // namespace qlora
