// Class "the user's own files destroyed" and "leftovers": no tool writes over, into or around one
// of its inputs (resolved paths, symlinks followed), whatever --overwrite says; --overwrite
// replaces an old output only once the new one is complete; a failed export/quantize leaves no
// folder it created.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/path_guard.h"
#include "robustness/robustness_support.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;

std::string quantize(const std::string& model, const std::string& out,
                     const std::string& extra = "") {
    return test::tool("qlora-quantize") + " --model " + model + " --out " + out + " --device cpu " +
           extra;
}

TEST(InputsPreserved, GuardRefusesSameContainingAndInsidePaths) {
    const std::string dir = test::scratch_dir("guard_unit");
    fs::create_directories(dir + "/model/sub");
    const io::NamedPath model{"--model", dir + "/model"};
    auto refused = [&](const std::string& out) {
        return test::error_of([&] { io::check_output_not_input({"--out", out}, {model}); });
    };
    EXPECT_NE(refused(dir + "/model").find(" is --model"), std::string::npos);
    EXPECT_NE(refused(dir + "/model/").find(" is --model"), std::string::npos);
    EXPECT_NE(refused(dir + "/model/../model").find(" is --model"), std::string::npos);
    EXPECT_NE(refused(dir).find(" contains --model"), std::string::npos);
    EXPECT_NE(refused(dir + "/model/sub/new").find(" lies inside --model"), std::string::npos);
    fs::create_directory_symlink(dir + "/model", dir + "/link");
    EXPECT_NE(refused(dir + "/link").find(" is --model"), std::string::npos);
    EXPECT_NE(refused(dir + "/link/nf4").find(" lies inside --model"), std::string::npos);
    EXPECT_EQ(refused(dir + "/model-nf4"), "(no error)");  // a sibling sharing the prefix is fine
    EXPECT_EQ(refused(dir + "/other/x"), "(no error)");
    EXPECT_NE(refused(dir + "/model").find("even with --overwrite"), std::string::npos);
}

TEST(InputsPreserved, QuantizeNeverWritesOverItsModel) {
    const std::string dir = test::scratch_dir("keep_quantize");
    const std::string model = test::copy_stories_model(dir);
    const auto before = test::tree_digest(model);
    fs::create_directory_symlink(model, dir + "/alias");
    for (const std::string& out : {model, model + "/nf4", dir, dir + "/alias"}) {
        auto r = test::run_command(quantize(model, out, "--overwrite"));
        EXPECT_EQ(r.exit_code, 2) << out << "\n" << r.output;
        EXPECT_EQ(test::error_lines(r.output).size(), 1u) << r.output;
        EXPECT_NE(r.output.find("would destroy the input"), std::string::npos) << r.output;
    }
    EXPECT_EQ(test::tree_digest(model), before);
}

TEST(InputsPreserved, ExportNeverWritesOverBaseOrAdapter) {
    const std::string dir = test::scratch_dir("keep_export");
    const std::string model = test::copy_stories_model(dir);
    test::write_small_adapter(dir + "/adapter");
    const auto model_before = test::tree_digest(model);
    const auto adapter_before = test::tree_digest(dir + "/adapter");
    const std::string base =
        test::tool("qlora-export") + " --base " + model + " --adapter " + dir + "/adapter";
    for (const std::string& out : {model, dir + "/adapter", dir, model + "/merged"}) {
        auto r = test::run_command(base + " --format hf-bf16 --overwrite --out " + out);
        EXPECT_EQ(r.exit_code, 2) << out << "\n" << r.output;
        EXPECT_NE(r.output.find("would destroy the input"), std::string::npos) << r.output;
    }
    auto gguf =
        test::run_command(base + " --format gguf-f16 --overwrite --out " + model + "/x.gguf");
    EXPECT_EQ(gguf.exit_code, 2) << gguf.output;
    EXPECT_EQ(test::tree_digest(model), model_before);
    EXPECT_EQ(test::tree_digest(dir + "/adapter"), adapter_before);
}

TEST(InputsPreserved, TrainRefusesAnOutputDirOverItsInputs) {
    const std::string dir = test::scratch_dir("keep_train");
    const std::string model = test::copy_stories_model(dir);
    const std::string data = test::shared_data("instruct/alpaca_tiny_100.json");
    for (const std::string& out : {model, model + "/run", dir}) {
        const std::string config = dir + "/c.yaml";
        std::ofstream(config) << "model: {path: " << model << "}\ndata: {train: " << data
                              << ", format: alpaca}\ntrain: {max_steps: 1}\noutput: {dir: " << out
                              << "}\n"
                              << "hardware: {device: cpu}\n";
        auto r = test::run_command(test::tool("qlora-train") + " " + config);
        EXPECT_EQ(r.exit_code, 2) << out << "\n" << r.output;
        EXPECT_NE(r.output.find("output.dir " + out), std::string::npos) << r.output;
        EXPECT_NE(r.output.find("model.path"), std::string::npos) << r.output;
    }
}

// The second --overwrite fails half way (a NaN weight): the first output must still be whole.
TEST(InputsPreserved, OverwriteKeepsTheOldOutputUntilTheNewOneIsComplete) {
    const std::string dir = test::scratch_dir("overwrite_atomic");
    const std::string good = test::copy_stories_model(dir, "good");
    const std::string bad = test::copy_stories_model(dir, "bad");
    test::poison_tensor(bad, "model.layers.4.mlp.down_proj.weight", std::nanf(""));
    auto first = test::run_command(quantize(good, dir + "/out"));
    ASSERT_EQ(first.exit_code, 0) << first.output;
    const auto before = test::tree_digest(dir + "/out");
    auto second = test::run_command(quantize(bad, dir + "/out", "--overwrite"));
    EXPECT_EQ(second.exit_code, 2) << second.output;
    EXPECT_NE(second.output.find("model.layers.4.mlp.down_proj.weight"), std::string::npos)
        << second.output;
    EXPECT_EQ(test::tree_digest(dir + "/out"), before);
    auto third = test::run_command(quantize(good, dir + "/out", "--overwrite --blocksize 128"));
    EXPECT_EQ(third.exit_code, 0) << third.output;
    EXPECT_NE(test::tree_digest(dir + "/out"), before);  // replaced this time
    for (const auto& e : fs::directory_iterator(dir)) {
        EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    }
}

TEST(InputsPreserved, FailedQuantizeAndExportLeaveNoParentFolders) {
    const std::string dir = test::scratch_dir("no_leftovers");
    const std::string bad = test::copy_stories_model(dir, "bad");
    test::poison_tensor(bad, "model.layers.2.self_attn.v_proj.weight",
                        std::numeric_limits<float>::infinity());
    auto q = test::run_command(quantize(bad, dir + "/new/deeper/out"));
    EXPECT_EQ(q.exit_code, 2) << q.output;
    EXPECT_FALSE(fs::exists(dir + "/new")) << q.output;

    test::write_small_adapter(dir + "/adapter");
    const std::string base =
        test::tool("qlora-export") + " --base " + bad + " --adapter " + dir + "/adapter";
    for (const std::string format : {"hf-bf16", "hf-nf4", "gguf-f16"}) {
        const std::string out =
            dir + "/e/f/" + (format == std::string("gguf-f16") ? "m.gguf" : "out");
        auto r = test::run_command(base + " --format " + format + " --out " + out);
        EXPECT_EQ(r.exit_code, 2) << format << "\n" << r.output;
        EXPECT_NE(r.output.find("holds NaN or Inf"), std::string::npos) << r.output;
        EXPECT_FALSE(fs::exists(dir + "/e")) << format << "\n" << r.output;
    }
}

}  // namespace
}  // namespace qlora
