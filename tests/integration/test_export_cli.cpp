// qlora-export end to end on stories260K: a few qlora-train steps, then every Hugging Face format
// with the --eval-data table, the exported folders scored again by qlora-eval, and exit code 2
// with one clear line for bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>

#include "lora/peft_adapter.h"
#include "support/test_support.h"

namespace qlora {
namespace {

namespace fs = std::filesystem;

std::string hf_dir() { return test::shared_data("stories260K/hf"); }

// stdout only (the tables and JSON lines; log lines go to stderr).
test::CommandResult run_stdout(const std::string& command) {
    return test::run_command("{ " + command + " 2>/dev/null; }");
}

// 20 Alpaca records as JSONL (instruction/input/output), the eval documents.
std::string write_eval_jsonl(const std::string& dir) {
    std::ifstream in(test::shared_data("instruct/alpaca_en_demo_999.json"));
    nlohmann::json records = nlohmann::json::parse(in);
    const std::string path = dir + "/eval.jsonl";
    std::ofstream out(path);
    for (size_t i = 500; i < 520; ++i) out << records.at(i).dump() << "\n";
    return path;
}

double eval_loss(const std::string& args) {
    auto r = run_stdout(test::tool("qlora-eval") + " " + args + " --device cpu --threads 1");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(r.output).at("loss").get<double>();
}

// "merged bfloat16 ...   3.1234 ..." -> 3.1234 for the table row that starts with `label`.
double table_loss(const std::string& table, const std::string& label) {
    std::istringstream in(table);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(label, 0) == 0) {
            std::smatch m;
            std::string rest = line.substr(label.size());
            if (std::regex_search(rest, m, std::regex(R"(([0-9]+\.[0-9]+))")))
                return std::stod(m[1]);
        }
    }
    ADD_FAILURE() << "no row '" << label << "' in:\n" << table;
    return 0.0;
}

// An adapter on self_attn.<target> of the 5 layers with constant A [r, in] and B [out, r].
void write_adapter(const std::string& dir, const std::string& target, int64_t r, int64_t in,
                   int64_t out) {
    lora::PeftAdapter adapter;
    adapter.config.r = r;
    adapter.config.target_modules = {target};
    for (int l = 0; l < 5; ++l) {
        const std::string m = "model.layers." + std::to_string(l) + ".self_attn." + target;
        adapter.tensors[lora::lora_name(m, 'A')] = at::full({r, in}, 0.01);
        adapter.tensors[lora::lora_name(m, 'B')] = at::full({out, r}, 0.01);
    }
    fs::create_directories(dir);
    lora::save_peft_adapter(dir, adapter);
}

TEST(ExportCli, TrainedAdapterToEveryHfFormatWithTheEvalTable) {
    const std::string dir = test::scratch_dir("export_cli");
    const std::string data = write_eval_jsonl(dir);
    auto train = test::run_command(
        test::tool("qlora-train") + " " + QLORA_SOURCE_DIR +
        "/configs/quickstart.yaml train.max_steps=30 eval.every=0 output.save_every=0 "
        "'eval.prompts=[]' output.dir=" +
        dir + "/run");
    ASSERT_EQ(train.exit_code, 0) << train.output;
    const std::string adapter = dir + "/run/adapter";
    const std::string common = " --base " + hf_dir() + " --adapter " + adapter + " --threads 1";

    // hf-nf4 with the table: per-layer errors, then base / base+adapter / merged 16-bit / merged
    // NF4.
    auto nf4 = run_stdout(test::tool("qlora-export") + common + " --out " + dir +
                          "/nf4 --format hf-nf4 --eval-data " + data + " --max-seq-len 256");
    ASSERT_EQ(nf4.exit_code, 0) << nf4.output;
    EXPECT_NE(
        nf4.output.find("wrote " + dir + "/nf4 (hf-nf4): 47 tensors, 35 merged with the adapter"),
        std::string::npos)
        << nf4.output;
    EXPECT_NE(nf4.output.find("35 weights: mean "), std::string::npos) << nf4.output;
    std::cout << nf4.output;
    const double base = table_loss(nf4.output, "base (nf4)  ");
    const double unmerged = table_loss(nf4.output, "base (nf4) + adapter, unmerged");
    const double merged16 = table_loss(nf4.output, "merged bfloat16");
    const double merged4 = table_loss(nf4.output, "merged nf4 (hf-nf4)");
    EXPECT_LT(unmerged, base - 0.05);       // the adapter learned something
    EXPECT_NEAR(merged16, unmerged, 0.01);  // merging in 16 bits keeps it
    EXPECT_LT(merged4, base);               // requantizing keeps part of it
    EXPECT_NE(nf4.output.find("adapter improvement retained by the merged 4-bit model: "),
              std::string::npos);

    // The table's rows are what qlora-eval says of the same models.
    const std::string eval_args = " --data " + data + " --max-seq-len 256";
    EXPECT_NEAR(eval_loss("--model " + hf_dir() + " --quant nf4" + eval_args), base, 1e-4);
    EXPECT_NEAR(eval_loss("--model " + hf_dir() + " --quant nf4 --adapter " + adapter + eval_args),
                unmerged, 1e-4);
    EXPECT_NEAR(eval_loss("--model " + dir + "/nf4" + eval_args), merged4, 1e-4);

    auto bf16 = run_stdout(test::tool("qlora-export") + common + " --out " + dir +
                           "/bf16 --format hf-bf16");
    ASSERT_EQ(bf16.exit_code, 0) << bf16.output;
    EXPECT_NEAR(eval_loss("--model " + dir + "/bf16" + eval_args), merged16, 1e-4);

    auto peft = test::run_command(test::tool("qlora-export") + common + " --out " + dir +
                                  "/peft --format peft");
    ASSERT_EQ(peft.exit_code, 0) << peft.output;
    // The quant settings of deq(NF4(W0)) were the run's.
    EXPECT_NE(peft.output.find("nf4, blocksize 64, double quant on (" + dir +
                               "/run/adapter/qlora_adapter.json)"),
              std::string::npos)
        << peft.output;
    EXPECT_EQ(
        eval_loss("--model " + hf_dir() + " --quant nf4 --adapter " + dir + "/peft" + eval_args),
        eval_loss("--model " + hf_dir() + " --quant nf4 --adapter " + adapter + eval_args));

    // Again into the same folder: refused in one line, and the folder is untouched.
    auto again = test::run_command(test::tool("qlora-export") + common + " --out " + dir +
                                   "/bf16 --format hf-bf16");
    EXPECT_EQ(again.exit_code, 2) << again.output;
    EXPECT_EQ(again.output, "qlora-export: error: " + dir +
                                "/bf16 already exists; choose another output or pass "
                                "--overwrite\n");
    auto overwrite = run_stdout(test::tool("qlora-export") + common + " --out " + dir +
                                "/bf16 --format hf-fp16 --overwrite");
    EXPECT_EQ(overwrite.exit_code, 0) << overwrite.output;
    EXPECT_NE(std::ifstream(dir + "/bf16/config.json").peek(), EOF);
}

TEST(ExportCli, GgufFileOfTheMergedModel) {
    const std::string dir = test::scratch_dir("export_cli_gguf");
    write_adapter(dir + "/adapter", "v_proj", 2, 64, 32);
    const std::string command = test::tool("qlora-export") + " --base " + hf_dir() + " --adapter " +
                                dir + "/adapter --format gguf-q8_0 --out " + dir +
                                "/model-q8_0.gguf";
    auto r = run_stdout(command);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("wrote " + dir + "/model-q8_0.gguf (gguf-q8_0): 47 tensors"),
              std::string::npos)
        << r.output;
    EXPECT_GT(fs::file_size(dir + "/model-q8_0.gguf"), 300'000u);
    auto again = test::run_command(command);
    EXPECT_EQ(again.exit_code, 2) << again.output;
    EXPECT_EQ(again.output, "qlora-export: error: " + dir +
                                "/model-q8_0.gguf already exists; choose another "
                                "output or pass --overwrite\n");
}

TEST(ExportCli, BadInputIsOneLineAndExitTwo) {
    const std::string dir = test::scratch_dir("export_cli_bad");
    // An adapter for another model: q_proj A with in_features 128 (stories260K has 64).
    write_adapter(dir + "/other", "q_proj", 4, 128, 128);
    const std::string q0a = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    auto expect_error = [&](const std::string& args, const std::string& message) {
        auto r = test::run_command(test::tool("qlora-export") + " " + args);
        EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
        EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << r.output;
        EXPECT_NE(r.output.find("qlora-export: error: " + message), std::string::npos) << r.output;
    };
    const std::string base = "--base " + hf_dir();
    expect_error(base + " --adapter " + dir + "/other --out " + dir + "/o --format hf-bf16",
                 dir + "/other/adapter_model.safetensors: '" + q0a +
                     "' has shape [4, 128], expected [4, 64] (r=4, "
                     "model.layers.0.self_attn.q_proj is [64, 64] in " +
                     hf_dir() +
                     "/config.json); an adapter for "
                     "another model?");
    expect_error(
        base + " --adapter " + dir + "/none --out " + dir + "/o --format peft",
        dir + "/none/adapter_config.json: cannot open (expected a PEFT LoRA adapter folder)");
    expect_error(
        base + " --adapter " + dir + "/other --out " + dir + "/o.bin --format gguf-q8_0",
        "--out for gguf-q8_0 is the output file and must end in .gguf, got '" + dir + "/o.bin'");
    expect_error(base + " --adapter " + dir + "/other --out " + dir + "/o --format hf-int8",
                 "--format: hf-int8 not in");
    std::ofstream(dir + "/file") << "x";
    expect_error(base + " --adapter " + dir + "/other --out " + dir + "/file/o --format hf-bf16",
                 dir + "/file/o: cannot create it, " + dir + "/file is not a folder");
    expect_error(base + " --adapter " + dir + "/other --out " + dir +
                     "/o --format hf-bf16 --max-shard-size 5XB",
                 "--max-shard-size must be a positive size like 5GB, 500MB, 2GiB or a byte count; "
                 "got '5XB'");
    EXPECT_FALSE(fs::exists(dir + "/o"));
}

}  // namespace
}  // namespace qlora
